"""Datasets of many objects: the statistics live in one object per tree, read lazily, and
planning over thousands of objects skips exactly the objects their statistics exclude; older
manifests with the statistics inline still read. (Timings: benchmarks/object_count.py.)"""

from __future__ import annotations

import copy
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_support import needs_slow, slow

from skyhook_dask.catalog.model import load_dataset
from skyhook_dask.formats import manifest as mf
from skyhook_dask.formats.objects import read_columns
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.plan import plan
from skyhook_dask.query.parser import parse_query
from skyhook_dask.storage import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the benchmarks/ package
from benchmarks.object_count import QUERY, synthetic_dataset


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_nanoaod(tmp_path_factory.mktemp("count") / "c.root", 2000, seed=1,
                            n_extra_branches=5)  # fmt: skip


def _check_many(count: int, source: Path) -> None:
    import skyhook_dask.dataframe as sd

    store = open_store(f"memory://count-{uuid.uuid4().hex}")
    synthetic_dataset(store, "many", count, source)
    dataset = load_dataset(store, "many")
    tree = dataset.files[0].trees["Events;1"]
    assert len(tree.objects) == count
    table = read_columns(store.read(tree.object_stats["name"]))
    keep = table.column("MET_pt/max").to_numpy() > 100  # the truth, vectorised
    planned = plan(dataset.files[0], parse_query(QUERY))
    names = [o.name for o in tree.objects]
    assert [o.first_event for o in planned.objects] == [
        o.first_event for o, k in zip(tree.objects, keep, strict=True) if k
    ]
    assert len(planned.skipped) == int((~keep).sum()) and set(planned.skipped) <= set(names)
    unfiltered = table.column("MET_pt/min").to_numpy()[keep] > 100
    assert [o.unfiltered for o in planned.objects] == unfiltered.tolist()
    frame = sd.read_skyhook(dataset, ["MET_pt"], query="select MET_pt > 100")
    assert frame.npartitions == int(keep.sum())


def test_planning_over_thousands_of_objects(source: Path) -> None:
    _check_many(3_000, source)


@slow
@needs_slow
def test_planning_over_a_hundred_thousand_objects(source: Path) -> None:
    _check_many(100_000, source)


def test_statistics_inline_in_an_older_manifest_still_plan(source: Path) -> None:
    from skyhook_dask.ingest.pipeline import write_dataset

    store = open_store(f"memory://inline-{uuid.uuid4().hex}")
    dataset = write_dataset(store, source, "new", object_size=20_000, trees=["Events"])
    tree = dataset.files[0].trees["Events;1"]
    table = read_columns(store.read(tree.object_stats["name"]))
    older: dict[str, Any] = copy.deepcopy(dataset.manifest)
    entry = older["files"][0]["trees"][0]
    for obj, stats in zip(entry["objects"], mf.stats_rows(table, tree.columns), strict=True):
        obj["stats"] = stats
    del entry["object_stats"]
    store.write(mf.manifest_name("old"), mf.dumps({**older, "name": "old"}))
    old = load_dataset(store, "old")
    assert old.files[0].trees["Events;1"].stats(["MET_pt"]) == tree.stats(["MET_pt"])
    query = parse_query(QUERY)
    new_plan, old_plan = plan(dataset.files[0], query), plan(old.files[0], query)
    assert [o.name for o in old_plan.objects] == [o.name for o in new_plan.objects]
    assert old_plan.skipped == new_plan.skipped and len(new_plan.skipped) > 0
    assert np.isfinite([s["MET_pt"]["max"] for s in tree.stats(["MET_pt"])]).all()


def test_object_size_benchmark_answers(tmp_path: Path) -> None:
    """benchmarks/object_size.py on a small file, file store only: every object size gives
    the rows uproot selects, and its JSON holds a record per size (timings are not checked)."""
    import json
    import subprocess

    import uproot

    out = tmp_path / "object_size.json"
    argv = [sys.executable, "benchmarks/object_size.py", "--events", "3000", "--sizes", "1M",
            "64K", "--repeat", "1", "--no-ceph", "--memory-events", "4000",
            "--data-dir", str(tmp_path / "data"), "--out", str(out)]  # fmt: skip
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    source = next((tmp_path / "data").glob("*-3000ev-*.root"))
    met = uproot.open(source)["Events"]["MET_pt"].array(library="np")
    records = result["stores"]["file"]["records"]
    assert [r["object_size"] for r in records] == [2**20, 64 * 2**10]
    assert records[0]["objects"] < records[1]["objects"]
    for record in records:
        assert record["ingest"]["events"] == 3000
        assert record["queries"]["headline"]["rows"] == int((met > 100).sum())
        nothing = record["queries"]["selects_nothing"]
        assert nothing["rows"] == 0 and nothing["calls"] == record["objects"]
    assert set(result["stores"]["file"]["per_object_ms"]) == {
        "ingest", "headline", "selects_nothing", "selects_nothing_serial"}  # fmt: skip
    assert [m["events"] for m in result["ingest_memory"]] == [4000]
