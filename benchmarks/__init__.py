"""Benchmarks of skyhook_dask: in-storage pushdown against client-side filtering, uproot and
Parquet on the same generated NanoAOD-like data. Run ``python benchmarks/run.py --help``."""
