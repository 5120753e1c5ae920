"""Ingest: ROOT files (TTrees and RNTuples) cut into Arrow IPC objects, published with a
manifest written last; dataset schemas and ``writeArrowTable``; the NanoAOD-like generator.

Layer: ingest. Imports ``catalog``, ``storage``, ``formats`` and the ground floor. The files of
one ingest run over whatever mapper the caller passes (this process, or Dask workers).
"""

from __future__ import annotations

from .pipeline import (
    IngestOptions,
    add_dataset_schema,
    collect_garbage,
    ingest_file,
    publish,
    write_arrow_table,
    write_dataset,
)

__all__ = [
    "IngestOptions",
    "add_dataset_schema",
    "collect_garbage",
    "ingest_file",
    "publish",
    "write_arrow_table",
    "write_dataset",
]
