"""One plan, one executor: every front end runs the same ScanPlan, and every pipeline gives the
same result whichever mapper runs it.

The same query goes through ``runQuery`` in this process and on Dask, ``read_skyhook`` and the
coffea executor: the same objects are chosen, the same objects are read unfiltered, the same
requests are sent, and the answers equal uproot's. Ingest through both mappers publishes
byte-identical manifests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import dask.dataframe as dd
import pytest
import uproot
from distributed import Client

import skyhook_dask  # noqa: F401  (dd.read_skyhook)
from skyhook_dask import SkyhookDM, config
from skyhook_dask.data import DATA_DIR
from skyhook_dask.dataframe.pushdown import ReadSkyhook
from skyhook_dask.formats import manifest as mf
from skyhook_dask.ingest import pipeline, write_dataset
from skyhook_dask.plan import ScanPlan, plan
from skyhook_dask.query import parse_query
from skyhook_dask.runtime.mappers import InProcess, OnDask
from skyhook_dask.storage import open_store

SAMPLE = DATA_DIR / "nano_dimuon.root"
OBJECT_SIZE = 20_000  # bytes: several objects of a few events each


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("one-plan") / "dimuon.root"
    shutil.copy(SAMPLE, path)
    path.read_bytes()  # its access time is now settled for every later ingest
    return path


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory, source: Path) -> str:
    url = tmp_path_factory.mktemp("one-plan-store").as_uri()
    write_dataset(url, [source], "dimuon", object_size=OBJECT_SIZE, trees=["Events"])
    return url


@pytest.fixture(scope="module")
def query_text(store_url: str) -> str:
    """A cut inside the third object: two objects skipped, one filtered, the rest unfiltered."""
    objects = SkyhookDM().connect(store=store_url, dask=False).getDataset("dimuon")
    tree = objects.files[0].trees["Events;1"]
    assert len(tree.objects) >= 5
    cut = tree.objects[2].first_event + 1
    return f"select event_id >= {cut}, project event MET_pt"


def _truth(source: Path, text: str) -> list[tuple[int, float]]:
    cut = int(text.split(">=")[1].split(",")[0])
    events = uproot.open(source)["Events"].arrays(["event", "MET_pt"])[cut:]
    return list(zip(ak.to_list(events.event), ak.to_list(events.MET_pt), strict=True))


def _rows(table: Any) -> list[tuple[int, float]]:
    return list(zip(table["event"].to_pylist(), table["MET_pt"].to_pylist(), strict=True))


def _choices(scan: ScanPlan) -> list[tuple[str, bool]]:
    return [(o.name, o.unfiltered) for o in scan.objects]


def _reader_of(frame: Any) -> ReadSkyhook:
    found = [e for e in frame.optimize().expr.walk() if isinstance(e, ReadSkyhook)]
    assert len(found) == 1
    return found[0]


def test_every_front_end_runs_the_same_plan(
    client: Client, store_url: str, source: Path, query_text: str
) -> None:
    from coffea import processor

    from skyhook_dask.coffea import run, work_items

    sk = SkyhookDM().connect(store=store_url, dask=False)
    file = sk.getDataset("dimuon").files[0]
    expected = plan(file, parse_query(query_text))
    choices = _choices(expected)
    assert [u for _, u in choices].count(False) == 1 and len(expected.skipped) == 2
    truth = _truth(source, query_text)

    # runQuery, in this process and on the Dask workers
    assert _rows(sk.runQuery(file, query_text)) == truth
    assert sk.last_metrics.calls == len(choices)
    on_dask = SkyhookDM().connect(store=store_url)
    assert on_dask.client is client
    assert _rows(on_dask.runQuery(file, query_text)) == truth
    assert on_dask.last_metrics.calls == len(choices)

    # read_skyhook: the same objects and the same request bytes, one per object
    frame = dd.read_skyhook("dimuon", store=store_url, query=query_text)
    reader = _reader_of(frame)
    assert _choices(reader.scan_plan) == choices
    sent = [payload for part in reader.parts for _, payload in part.objects]
    assert sent == [expected.payload(o) for o in expected.objects]
    got = frame.compute()
    assert list(zip(got.event.tolist(), got.MET_pt.tolist(), strict=True)) == truth

    # the coffea executor: a chunk per planned object, preselection only where needed
    cut = query_text.split(",")[0].removeprefix("select ")
    items, _, skipped = work_items("dimuon", store=store_url, preselect=cut)
    assert [(i.object_name, i.preselect is None) for i in items] == choices
    assert skipped == len(expected.skipped)
    assert {i.preselect for i in items if i.preselect is not None} == {expected.predicate}

    def rows(events: Any) -> dict[str, set[tuple[int, float]]]:
        pairs = zip(ak.to_list(events.event), ak.to_list(events.MET.pt), strict=True)
        return {"rows": set(pairs)}

    out = run(
        rows, "dimuon", store=store_url, preselect=cut, executor=processor.IterativeExecutor()
    )
    assert out["rows"] == set(truth)


def _ingest(url: str, source: Path, mapper: Any, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setattr(pipeline, "new_ingest_id", lambda: "20261207T000000Z-same")
    monkeypatch.setattr(mf, "utc_now", lambda: "2026-12-07T00:00:00Z")
    # A relative path names a file of this process's working directory, wherever it is read.
    files = [source.name, str(source)]
    write_dataset(url, files, "twice", object_size=OBJECT_SIZE, mapper=mapper)
    return open_store(url).read(mf.manifest_name("twice"))


def test_ingest_publishes_the_same_manifest_through_every_mapper(
    client: Client, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(source.parent)
    here = _ingest((tmp_path / "here").as_uri(), source, None, monkeypatch)
    threads = _ingest((tmp_path / "threads").as_uri(), source, InProcess(4), monkeypatch)
    workers = _ingest((tmp_path / "workers").as_uri(), source, OnDask(client), monkeypatch)
    assert here == threads == workers
    manifest = mf.loads(here, "test")
    assert [f["url"] for f in manifest["files"]] == [str(source)] * 2


def test_tasks_on_dask_see_the_drivers_settings(client: Client) -> None:
    with dask.config.set({"skyhook.strict": True, "skyhook.retry-time": 7}):
        seen = OnDask(client)(_settings, [(), ()], store_url="memory://settings", label="settings")
    assert seen == [(True, 7)] * 2
    assert InProcess()(_settings, [()], store_url="memory://settings", label="settings") == [
        (False, 30)
    ]


def _settings() -> tuple[Any, Any]:
    return config.get("strict"), config.get("retry-time")


def test_calls_run_here_use_at_most_a_thread_per_core() -> None:
    """A file or memory store runs the object class in this process: more threads than cores
    would only contend for the GIL. Calls that wait on Ceph keep skyhook.max-in-flight."""
    import os
    import threading
    import time

    def which(_: int) -> str:
        time.sleep(0.01)  # long enough for the pool to start all its threads
        return threading.current_thread().name

    calls = [(n,) for n in range(40)]
    with dask.config.set({"skyhook.max-in-flight": 16}):
        here = set(InProcess()(which, calls, store_url="memory://threads", label="t"))
        remote = set(InProcess()(which, calls, store_url="rados://pool?conf=x", label="t"))
    assert len(here) <= (os.cpu_count() or 1)
    assert len(remote) > len(here) or (os.cpu_count() or 1) >= 16
