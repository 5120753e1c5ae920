"""Scaling with object count: how the catalog, the planner and the Dask graph cost per object.

``python benchmarks/object_count.py [--counts 1000 10000 100000] [--repeat 3]`` builds, in a
memory store, datasets of N tiny objects (the objects of one small generated file, listed over
and over with their statistics, so that only the catalog grows) and times, per N:

- **load**: ``load_dataset`` (the manifest read and parsed);
- **plan**: ``plan`` of ``select MET_pt > 100, project Muon_pt MET_pt`` (statistics read,
  objects skipped);
- **graph**: ``read_skyhook`` of the same query, its Dask graph built.

Results: ``results/object_count.json`` and ``results/object_count.png``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import save
from skyhook_dask.catalog.model import load_dataset
from skyhook_dask.formats import manifest as mf
from skyhook_dask.formats.objects import read_columns, write_object
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.plan import plan
from skyhook_dask.query.parser import parse_query
from skyhook_dask.storage import ObjectStore, open_store

QUERY = "select MET_pt > 100, project Muon_pt MET_pt"
RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_dataset(store: ObjectStore, name: str, count: int, source: Path) -> None:
    """Dataset ``name`` of ``count`` objects: ``source``'s small objects listed over and over
    (each keeps its own statistics), in one tree of one file, with one statistics object."""
    base = write_dataset(store, [source], f"{name}-base", object_size=20_000, trees=["Events"],
                         overwrite=True)  # fmt: skip
    manifest = copy.deepcopy(base.manifest)
    tree = manifest["files"][0]["trees"][0]
    objects, stop = [], 0
    for i in range(count):
        entry = dict(tree["objects"][i % len(tree["objects"])])
        entry.update(first_event=stop, stop_event=stop + entry["rows"])
        stop += entry["rows"]
        objects.append(entry)
    stats = read_columns(store.read(tree["object_stats"]["name"]))
    rows = pa.array(np.arange(count) % len(tree["objects"]))
    data = write_object(stats.take(rows), "lz4")
    stats_name = mf.stats_object_name(name, "synthetic", 0, 0)
    store.write(stats_name, data)
    tree.update(objects=objects, entries=stop,
                object_stats={"name": stats_name, "bytes": len(data),
                              "checksum": mf.checksum(data)})  # fmt: skip
    manifest["name"] = name
    store.write(mf.manifest_name(name), mf.dumps(manifest))


def measure(store: ObjectStore, name: str) -> dict[str, Any]:
    """Seconds to load, plan and build the graph of dataset ``name``, once."""
    import skyhook_dask.dataframe as sd
    from skyhook_dask.catalog import model

    model._stats_object.cache_clear()  # every repetition reads the statistics again
    start = time.perf_counter()
    dataset = load_dataset(store, name)
    loaded = time.perf_counter()
    planned = plan(dataset.files[0], parse_query(QUERY))
    planned_at = time.perf_counter()
    frame = sd.read_skyhook(dataset, ["Muon_pt", "MET_pt"], query="select MET_pt > 100")
    frame.__dask_graph__()
    built = time.perf_counter()
    return {
        "load_s": loaded - start,
        "plan_s": planned_at - loaded,
        "graph_s": built - planned_at,
        "objects_kept": len(planned.objects),
        "partitions": frame.npartitions,
        "manifest_bytes": store.stat(mf.manifest_name(name)).size,
    }


def run(counts: Sequence[int], repeat: int, work: Path) -> dict[str, Any]:
    source = generate_nanoaod(work / "object-count.root", 2000, seed=1, n_extra_branches=50)
    store = open_store(f"memory://object-count-{uuid.uuid4().hex}")
    records = []
    for count in counts:
        name = f"n{count}"
        synthetic_dataset(store, name, count, source)
        runs = [measure(store, name) for _ in range(repeat)]
        record: dict[str, Any] = {"objects": count, **runs[0]}
        for key in ("load_s", "plan_s", "graph_s"):
            record[key] = statistics.median(r[key] for r in runs)
        record["per_object_us"] = {
            key[:-2]: record[key] / count * 1e6 for key in ("load_s", "plan_s", "graph_s")
        }
        records.append(record)
        print(f"{count:>7} objects: load {record['load_s']:.3f} s, plan {record['plan_s']:.3f} s "
              f"({record['objects_kept']} kept), graph {record['graph_s']:.2f} s "
              f"({record['partitions']} partitions)", flush=True)  # fmt: skip
    return {"benchmark": "object-count", "query": QUERY, "repeat": repeat, "records": records}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [r["objects"] for r in result["records"]]
    figure, axes = plt.subplots(figsize=(6, 4))
    for key, label in (("load_s", "load manifest"), ("plan_s", "plan"), ("graph_s", "Dask graph")):
        axes.loglog(counts, [r[key] for r in result["records"]], "o-", label=label)
    axes.set_xlabel("objects in the dataset")
    axes.set_ylabel("seconds (median)")
    axes.set_title("Catalog, planning and graph cost by object count")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "object_count.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        result = run(args.counts, args.repeat, Path(work))
    save(result, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
