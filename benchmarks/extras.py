"""Measurements beside the query matrix: uproot's full-read throughput (to set ingest against),
the fixed cost of one object call, Dask scaling of ``read_skyhook`` (and ``dd.read_parquet`` on
the same data), and cProfile profiles of the client side of one query."""

from __future__ import annotations

import cProfile
import io
import logging
import pstats
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uproot

from skyhook_dask.formats.objects import EVENT_ID
from skyhook_dask.formats.protocol import ScanRequest
from skyhook_dask.query.expr import Literal
from skyhook_dask.runtime.calls import call_object

from .cases import ALL_SYSTEMS
from .data import DATASET, SELECTION_BRANCH, TREE, QuerySpec, Workload
from .measure import Samples, StorageCpu, timed


def uproot_full_read(workload: Workload, repeats: int) -> dict[str, Any]:
    """Every branch of the ROOT file into awkward arrays (what ingest must at least do)."""
    samples = Samples()
    for _ in range(repeats):

        def read_all() -> int:
            with uproot.open(workload.root_path) as f:
                return len(f[TREE].arrays(library="ak"))

        timed(read_all, samples, StorageCpu())
    wall = statistics.median(samples.wall_s)
    source = workload.root_path.stat().st_size
    return {
        "wall_s": wall,
        "wall_samples": [round(s, 6) for s in samples.wall_s],
        "events_per_s": workload.events / wall,
        "source_mb_per_s": source / wall / 1e6,
    }


def call_overhead(workload: Workload, repeats: int) -> dict[str, Any]:
    """Wall time of one object call that selects nothing and reads only ``event_id``, made
    one at a time: the fixed cost of a partition (round trip, request decoding, footer read)."""
    request = ScanRequest((EVENT_ID,), Literal(False, "bool")).encode()
    names = [o.name for o in workload.tree.objects]
    walls: list[float] = []
    for _ in range(repeats):
        for name in names:
            start = time.perf_counter()
            call_object(workload.store_url, name, "scan", request)
            walls.append(time.perf_counter() - start)
    return {
        "calls": len(walls),
        "wall_per_call_s": statistics.median(walls),
        "wall_per_call_s_min": min(walls),
    }


# --- Dask scaling ------------------------------------------------------------------------------


def _read_skyhook(workload: Workload, query: QuerySpec) -> Any:
    from skyhook_dask.dataframe.reader import read_skyhook

    return read_skyhook(
        workload.file.dataset if workload.file.dataset is not None else DATASET,
        columns=list(query.columns) if query.columns else None,
        filters=[(SELECTION_BRANCH, ">=", query.threshold)],
        store=workload.store_url,
    )


def _read_parquet(workload: Workload, query: QuerySpec) -> Any:
    import dask.dataframe as dd

    return dd.read_parquet(
        str(workload.parquet_dir),
        columns=list(query.columns) if query.columns else None,
        filters=[(SELECTION_BRANCH, ">=", query.threshold)],
        dtype_backend="pyarrow",
    )


READERS: dict[str, Callable[[Workload, QuerySpec], Any]] = {
    "read_skyhook": _read_skyhook,
    "read_parquet": _read_parquet,
}


def dask_scaling(
    workload: Workload, queries: Sequence[QuerySpec], worker_counts: Sequence[int], repeats: int
) -> dict[str, Any]:
    """``.compute()`` of each query as a Dask DataFrame on LocalClusters of worker processes
    (one thread each); the wall time includes gathering the result into this process."""
    from distributed import Client, LocalCluster

    runs: list[dict[str, Any]] = []
    for workers in worker_counts:
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster),
        ):
            for query in queries:
                for reader, make in READERS.items():
                    runs.append(_scaling_run(workload, query, reader, make, workers, repeats))
    for run in runs:
        base = next(r for r in runs if (r["system"], r["query"]) == (run["system"], run["query"]))
        run["speedup"] = base["wall_s"] / run["wall_s"]
    return {"worker_counts": list(worker_counts), "runs": runs}


def _scaling_run(
    workload: Workload,
    query: QuerySpec,
    reader: str,
    make: Callable[[Workload, QuerySpec], Any],
    workers: int,
    repeats: int,
) -> dict[str, Any]:
    frame = make(workload, query)
    rows = len(frame.compute())  # warm-up: imports and connections on the workers
    samples = Samples()
    for _ in range(repeats):
        timed(frame.compute, samples, StorageCpu())
    return {
        "system": reader,
        "workers": workers,
        "selectivity": query.selectivity,
        "n_columns": query.n_columns,
        "query": query.text,
        "partitions": frame.npartitions,
        "rows_out": rows,
        "expected_rows": query.expected_rows,
        "wall_s": statistics.median(samples.wall_s),
        "wall_samples": [round(s, 6) for s in samples.wall_s],
    }


# --- profiles ----------------------------------------------------------------------------------


class _AllThreadsProfile:
    """cProfile of the calling thread and of every thread started while it is open (the object
    calls run in a thread pool, which a plain cProfile of the main thread would not see)."""

    def __init__(self) -> None:
        self.profilers: list[cProfile.Profile] = []

    def _start_in_thread(self, *_: object) -> None:
        profiler = cProfile.Profile()
        self.profilers.append(profiler)
        profiler.enable()  # replaces this hook as the thread's profile function

    def __enter__(self) -> _AllThreadsProfile:
        threading.setprofile(self._start_in_thread)
        self._main = cProfile.Profile()
        self._main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        self._main.disable()

    def stats(self, stream: io.StringIO) -> pstats.Stats:
        stats = pstats.Stats(self._main, stream=stream)
        for profiler in self.profilers:  # their threads have ended, so every entry is closed
            stats.add(profiler)
        return stats


def profile_systems(
    workload: Workload, query: QuerySpec, systems: Sequence[str], out_dir: Path, top: int = 30
) -> list[dict[str, Any]]:
    """Profile of each system answering ``query`` once (after a warm-up), as text files: the
    functions of every Python thread by cumulative time (time in C calls -- librados, Arrow --
    is charged to the Python function that made them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in systems:
        system = ALL_SYSTEMS[name]
        system.run(workload, query)
        start = time.perf_counter()
        with _AllThreadsProfile() as profile:
            result = system.run(workload, query)
        wall = time.perf_counter() - start
        del result
        text = io.StringIO()
        stats = profile.stats(text).strip_dirs().sort_stats("cumulative")
        stats.print_stats(top)
        path = out_dir / f"profile-{name}.txt"
        header = (
            f"# {name}: {query.text}\n# wall under the profiler: {wall:.4f} s; "
            f"threads profiled: {1 + len(profile.profilers)} (times add up over threads)\n"
        )
        path.write_text(header + text.getvalue())
        written.append({"system": name, "file": path.name, "profiled_wall_s": wall})
    return written
