"""Costs per object: one file cut into objects of 64 MiB down to 16 KiB, ingested and queried.

``python benchmarks/object_size.py [--events 200000] [--sizes 64M 8M 1M 128K 16K]
[--repeat 5] [--store URL | --no-ceph] [--memory-events 1000000 5000000]``

For every object size and store (the file store, and the OSD of a dev Ceph cluster started for
the run unless ``--store`` names one or ``--no-ceph``):

- **ingest**: wall time and peak RSS, each ingest in a child process of its own;
- **queries**, in this process without Dask (medians of ``--repeat``):
  ``select MET_pt > 100, project Muon_pt MET_pt``, and ``select MET_pt * 2 > 1e12, project
  MET_pt``, which statistics cannot skip and which selects nothing: one call per object that
  returns no row. The second also runs with one call in flight (``skyhook.max-in-flight`` 1), the
  latency of one call.

The cost per extra object is the slope between the largest and the smallest object size.
``--profile DIR`` writes ``profile-object-call-{store}.txt``: cProfile of the object calls of
the second query at the most objects, one after another on this thread.
``--memory-events`` ingests files of that many events at the default object size and reports
the peak RSS: ingest reads in bounded steps, so it should not grow with the file.

Results: ``results/object_size.json`` and ``results/object_size.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.data import default_data_dir, root_file
from benchmarks.report import save
from benchmarks.run import _size

QUERIES = {
    "headline": "select MET_pt > 100, project Muon_pt MET_pt",
    "selects_nothing": "select MET_pt * 2 > 1e12, project MET_pt",
}
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = ["64M", "8M", "1M", "128K", "16K"]


def ingest_in_child(source: Path, store_url: str, name: str, object_size: int) -> dict[str, Any]:
    """Ingest ``source`` as dataset ``name`` in a fresh Python process: wall time, and the
    peak RSS of that process (before the ingest: after the imports)."""
    job = json.dumps([str(source), store_url, name, object_size])
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--ingest-child", job],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"ingest of {source} into {store_url} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _ingest_child(job: str) -> None:
    import resource

    from skyhook_dask.ingest.pipeline import write_dataset

    source, store_url, name, object_size = json.loads(job)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    dataset = write_dataset(store_url, [source], name, object_size=object_size,
                            trees=["Events"], overwrite=True, progress=False)  # fmt: skip
    wall = time.perf_counter() - start
    tree = dataset.getFiles()[0].tree("Events")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "wall_s": wall, "objects": len(tree.objects), "events": tree.entries,
        "events_per_s": tree.entries / wall, "peak_rss_mib": peak / 1024,
        "rss_before_mib": before / 1024,
    }))  # fmt: skip


def time_queries(store_url: str, name: str, repeat: int) -> dict[str, Any]:
    """Median walls of the queries on dataset ``name``, in this process without Dask."""
    import dask

    from skyhook_dask import SkyhookDM

    client = SkyhookDM().connect(store=store_url, dask=False)
    file = client.getDataset(name).files[0]
    out: dict[str, Any] = {}
    runs = [(key, text, {}) for key, text in QUERIES.items()]
    runs.append(("selects_nothing_serial", QUERIES["selects_nothing"],
                 {"skyhook.max-in-flight": 1}))  # fmt: skip
    for key, text, settings in runs:
        walls, rows = [], 0
        with dask.config.set(settings):
            client.runQuery(file, text)  # warm: the statistics, the connection, the page cache
            for _ in range(repeat):
                start = time.perf_counter()
                rows = client.runQuery(file, text).num_rows
                walls.append(time.perf_counter() - start)
        calls = client.last_metrics.calls
        wall = statistics.median(walls)
        out[key] = {"wall_ms": wall * 1e3, "calls": calls, "rows": rows,
                    "ms_per_call": wall * 1e3 / max(calls, 1)}  # fmt: skip
    return out


def profile_calls(store_url: str, name: str, path: Path, kind: str) -> None:
    """cProfile of one object call after another (this thread) of the query that selects
    nothing: where an object call's fixed cost goes."""
    import cProfile
    import io
    import pstats

    from skyhook_dask import SkyhookDM
    from skyhook_dask.plan import plan
    from skyhook_dask.query.parser import parse_query
    from skyhook_dask.runtime.calls import call_object

    file = SkyhookDM().connect(store=store_url, dask=False).getDataset(name).files[0]
    planned = plan(file, parse_query(QUERIES["selects_nothing"]))

    def calls() -> None:
        for obj in planned.objects:
            call_object(store_url, obj.name, "scan", planned.payload(obj))

    calls()  # warm
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(calls)
    wall = time.perf_counter() - start
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(25)
    each = wall / len(planned.objects) * 1e3
    head = (f"{len(planned.objects)} object calls of {QUERIES['selects_nothing']!r} on the "
            f"{kind} store, one after another: {each:.3f} ms each, profiled\n")  # fmt: skip
    path.write_text(head + text.getvalue())


def per_object_costs(records: list[dict[str, Any]]) -> dict[str, float]:
    """Milliseconds per extra object between the fewest and the most objects."""
    few = min(records, key=lambda r: r["objects"])
    many = max(records, key=lambda r: r["objects"])
    extra = many["objects"] - few["objects"]
    if extra <= 0:
        return {}
    costs = {"ingest": (many["ingest"]["wall_s"] - few["ingest"]["wall_s"]) * 1e3 / extra}
    for key in many["queries"]:
        costs[key] = (many["queries"][key]["wall_ms"] - few["queries"][key]["wall_ms"]) / extra
    return costs


@contextlib.contextmanager
def ceph_store(work: Path, given: str | None, enabled: bool) -> Iterator[str | None]:
    """The given store, a dev Ceph cluster started for the run, or None (``--no-ceph``)."""
    if given is not None or not enabled:
        yield given
        return
    from skyhook_dask.ceph.cluster import DevCluster

    cluster = DevCluster(work / "ceph")
    try:
        print(f"starting a Ceph dev cluster in {cluster.dir}", file=sys.stderr, flush=True)
        yield cluster.up()
    finally:
        cluster.down()


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data_dir = args.data_dir or default_data_dir()
    source = root_file(data_dir, args.events, seed=1, extra_branches=50)
    stores: dict[str, str] = {"file": f"file://{work / 'store'}"}
    result: dict[str, Any] = {
        "benchmark": "object-size", "events": args.events, "branches": 108,
        "source_bytes": source.stat().st_size, "queries": QUERIES, "repeat": args.repeat,
        "cpus": os.cpu_count(), "stores": {},
    }  # fmt: skip
    with ceph_store(work, args.store, not args.no_ceph) as ceph:
        if ceph is not None:
            stores["ceph"] = ceph
        for kind, url in stores.items():
            records = []
            for size in args.sizes:
                name = f"object-size-{size}"
                record = {"object_size": size, "ingest": ingest_in_child(source, url, name, size)}
                record["objects"] = record["ingest"]["objects"]
                record["queries"] = time_queries(url, name, args.repeat)
                records.append(record)
                print(_line(kind, record), file=sys.stderr, flush=True)
            costs = per_object_costs(records)
            if args.profile is not None:
                most = max(records, key=lambda r: r["objects"])
                args.profile.mkdir(parents=True, exist_ok=True)
                profile_calls(url, f"object-size-{most['object_size']}",
                              args.profile / f"profile-object-call-{kind}.txt", kind)  # fmt: skip
            result["stores"][kind] = {"records": records, "per_object_ms": costs}
            print(f"{kind}: per extra object (ms) {costs}", file=sys.stderr, flush=True)
        result["ingest_memory"] = []
        for events in args.memory_events:
            big = root_file(data_dir, events, seed=1, extra_branches=50)
            measured = ingest_in_child(big, stores["file"], f"memory-{events}", 64 * 2**20)
            measured["source_bytes"] = big.stat().st_size
            result["ingest_memory"].append(measured)
            print(f"{events:,} events: ingest {measured['wall_s']:.1f} s, peak RSS "
                  f"{measured['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)  # fmt: skip
    return result


def _line(kind: str, record: dict[str, Any]) -> str:
    queries = ", ".join(f"{key} {q['wall_ms']:.1f} ms" for key, q in record["queries"].items())
    ingest = record["ingest"]
    size, peak = record["object_size"], ingest["peak_rss_mib"]
    return (f"{kind} {size:>9} B: {record['objects']:>5} objects, ingest "
            f"{ingest['wall_s']:.2f} s (peak {peak:.0f} MiB); {queries}")  # fmt: skip


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, store in result["stores"].items():
        records = sorted(store["records"], key=lambda r: r["objects"])
        objects = [r["objects"] for r in records]
        left.semilogx(objects, [r["ingest"]["wall_s"] for r in records], "o-", label=kind)
        for key in QUERIES:
            walls = [r["queries"][key]["wall_ms"] for r in records]
            right.loglog(objects, walls, "o-", label=f"{kind}: {key}")
    left.set_ylim(bottom=0)
    left.set(xlabel="objects (same file)", ylabel="ingest wall (s)", title="Ingest")
    right.set(xlabel="objects (same file)", ylabel="query wall (ms, median)", title="Queries")
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(f"{result['events']:,} events, 108 branches, cut into objects of 64 MiB-16 KiB")
    figure.tight_layout()
    figure.savefig(path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--ingest-child"]:
        _ingest_child(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sizes", type=_size, nargs="+",
                        default=[_size(s) for s in DEFAULT_SIZES])  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", help="a Ceph store URL to use instead of a dev cluster")
    parser.add_argument("--no-ceph", action="store_true", help="the file store only")
    parser.add_argument("--memory-events", type=int, nargs="*", default=[],
                        help="ingest peak RSS for files of these event counts")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, help="cache of generated ROOT files")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write cProfile texts")
    parser.add_argument("--out", type=Path, default=RESULTS / "object_size.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        result = run(args, Path(work))
    save(result, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
