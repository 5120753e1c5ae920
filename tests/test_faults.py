"""Faults injected while work runs: Dask workers killed mid-ingest and mid-query, the OSD
restarted mid-query, a Ceph cluster that stays down.

Each test compares the outcome with the same work done without a fault (which itself is checked
against uproot in test_driver.py and test_client.py): a survived fault must leave no trace in
the result. The Dask tests slow the storage down (``slowfile://`` below) so that the kill lands
while tasks are running, and kill the worker process that is running one.

Soak variants (8 OSD restarts under a query loop, 5 worker kills in a row) run on demand::

    SKYHOOK_SLOW_TESTS=1 .venv/bin/pytest -m slow tests/test_faults.py
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import numpy as np
import pyarrow as pa
import pytest
import uproot
from distributed import Client, LocalCluster, WorkerPlugin
from query_support import query_file, query_tables

from skyhook_dask import storage as backends
from skyhook_dask.catalog.model import Dataset, load_dataset
from skyhook_dask.catalog.verify import verify_dataset
from skyhook_dask.exceptions import StoreUnavailableError
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.runtime.mappers import OnDask
from skyhook_dask.storage.local import LocalStore

SLOW_SCHEME = "slowfile"
SLOW_SECONDS = 0.04  # per object write or class call on a worker: kills land mid-task
SLOW_ENABLED = os.environ.get("SKYHOOK_SLOW_TESTS") == "1"
slow = pytest.mark.slow
needs_slow = pytest.mark.skipif(not SLOW_ENABLED, reason="soak test: set SKYHOOK_SLOW_TESTS=1")
QUERY = "select any(Muon_pt > 20) and nMuon >= 1, project event_id nMuon Muon_pt MET_pt"


class SlowStore(LocalStore):
    """A local store whose object writes and class calls take a little while."""

    @classmethod
    def from_url(cls, url: str) -> SlowStore:
        store = super().from_url(url)
        store.url = url
        return store  # type: ignore[return-value]

    def write(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        super().write(name, data, exclusive=exclusive)
        if "/data/" in name:
            time.sleep(SLOW_SECONDS)

    def exec(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        time.sleep(SLOW_SECONDS)
        return super().exec(name, cls, method, payload)


class RegisterSlowBackend(WorkerPlugin):
    """Makes every worker, restarted ones too, know the slow scheme."""

    name = "register-slow-backend"

    def setup(self, worker: object) -> None:
        backends.register_backend(SLOW_SCHEME, __name__, "SlowStore")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("fault-files")
    return [generate_nanoaod(folder / f"f{i}.root", 600, seed=40 + i) for i in range(3)]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    backends.register_backend(SLOW_SCHEME, __name__, "SlowStore")
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        c.register_plugin(RegisterSlowBackend())
        yield c


@pytest.fixture
def two_workers(client: Client) -> Client:
    """The module's client once both workers are up (a killed one is restarted by its nanny)."""
    client.wait_for_workers(2, timeout=60)
    return client


def _kill_a_busy_worker(client: Client, started: Callable[[], bool], timeout: float = 60) -> None:
    """Wait until ``started()`` and a worker runs a task, then SIGKILL that worker process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [address for address, keys in client.processing().items() if keys]
        if busy and started():
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.005)
    raise AssertionError("no worker was busy in time")


def _in_thread(func: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = func()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _layout(dataset: Dataset) -> list[tuple[Any, ...]]:
    return [
        (f.name, key, [(o.first_event, o.stop_event, o.checksum) for o in tree.objects])
        for f in dataset.files
        for key, tree in f.trees.items()
    ]


# --- Dask workers killed -----------------------------------------------------------------------


def test_worker_killed_during_dask_ingest(
    two_workers: Client, files: list[Path], tmp_path: Path
) -> None:
    """The killed worker's ingest task runs again elsewhere and meets its own objects."""
    url = f"{SLOW_SCHEME}://{tmp_path / 'store'}"
    store = backends.open_store(url)
    sources = [str(f) for f in files]
    thread, outcome = _in_thread(
        lambda: write_dataset(
            url, sources, "killed", object_size=40_000, mapper=OnDask(two_workers)
        )
    )
    _kill_a_busy_worker(two_workers, lambda: any(True for _ in store.list("killed/data/")))
    thread.join(120)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    reference = write_dataset(
        (tmp_path / "reference").as_uri(), sources, "killed", object_size=40_000, progress=False
    )
    published = load_dataset(url, "killed")
    assert _layout(published) == _layout(reference)
    assert sum(len(t.objects) for f in published.files for t in f.trees.values()) > 6
    report = verify_dataset(store, "killed")
    assert report.ok and report.unreferenced == [], str(report)


def test_worker_killed_during_dask_query(
    two_workers: Client, files: list[Path], tmp_path: Path
) -> None:
    directory = tmp_path / "store"
    dataset = write_dataset(directory.as_uri(), [str(f) for f in files], "q", object_size=40_000)
    expected = [query_file(directory.as_uri(), f, QUERY).table for f in dataset.files]
    assert sum(t.num_rows for t in expected) > 0
    url = f"{SLOW_SCHEME}://{directory}"
    slow = load_dataset(url, "q")
    thread, outcome = _in_thread(lambda: query_tables(slow, QUERY, OnDask(two_workers)))
    _kill_a_busy_worker(two_workers, lambda: True)
    thread.join(120)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    got = outcome["result"]
    assert len(got) == len(expected)
    for table, want in zip(got, expected, strict=True):
        assert table.equals(want)


# --- Ceph: the OSD restarted, the cluster gone -------------------------------------------------


def _truth(path: Path) -> dict[str, list[Any]]:
    """QUERY computed by uproot + awkward."""
    events = uproot.open(path)["Events"].arrays(["nMuon", "Muon_pt", "MET_pt"])
    mask = ak.any(events.Muon_pt > np.float32(20), axis=1) & (events.nMuon >= 1)
    return {
        "event_id": np.flatnonzero(ak.to_numpy(mask)).tolist(),
        "nMuon": ak.to_list(events.nMuon[mask]),
        "Muon_pt": ak.to_list(events.Muon_pt[mask]),
        "MET_pt": ak.to_list(events.MET_pt[mask]),
    }


def _queries_across_restarts(ceph_cluster: Any, path: Path, restarts: int) -> tuple[int, int]:
    """Run QUERY in a loop while the OSD restarts ``restarts`` times; every result must equal
    the one before any restart. Returns (queries run, queries that overlapped a restart).

    A short operation timeout (2 s, about the restart's length) makes calls caught by the
    restart fail with a timeout, so they come through by the retries, not by librados alone.
    """
    name = f"faults-{uuid.uuid4().hex[:8]}"
    dataset = write_dataset(ceph_cluster.url, [str(path)], name, object_size=25_000)
    file = dataset.files[0]
    assert len(file.trees["Events;1"].objects) >= 5
    expected = query_file(ceph_cluster.url, file, QUERY).table
    assert expected.to_pydict() == _truth(path)
    url = ceph_cluster.url + "&timeout=2"
    windows: list[tuple[float, float]] = []
    stop = threading.Event()

    def query_loop() -> list[pa.Table]:
        tables = []
        with dask.config.set({"skyhook.retry-time": 60, "skyhook.max-in-flight": 2}):
            while not stop.is_set():
                began = time.monotonic()
                tables.append(query_file(url, file, QUERY).table)
                windows.append((began, time.monotonic()))
        return tables

    thread, outcome = _in_thread(query_loop)
    restarted: list[tuple[float, float]] = []
    for _ in range(restarts):
        time.sleep(0.3)
        began = time.monotonic()
        ceph_cluster.restart_osd()
        restarted.append((began, time.monotonic()))
    time.sleep(0.3)
    stop.set()
    thread.join(180)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert all(table.equals(expected) for table in outcome["result"])
    overlapping = [w for w in windows if any(w[0] < end and w[1] > b for b, end in restarted)]
    assert overlapping, "no query ran while the OSD restarted"
    return len(windows), len(overlapping)


@pytest.mark.ceph
def test_osd_restart_mid_query(
    ceph_cluster: Any, files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Queries keep running while the OSD restarts; each returns the same rows."""
    caplog.set_level("WARNING", logger="skyhook_dask.retry")
    began = time.monotonic()
    queries, overlapping = _queries_across_restarts(ceph_cluster, files[0], restarts=1)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    print(
        f"\n{queries} queries in {time.monotonic() - began:.1f} s, {overlapping} during the OSD "
        f"restart, {len(retries)} calls retried"
    )


@pytest.mark.ceph
@slow
@needs_slow
def test_repeated_osd_restarts_soak(ceph_cluster: Any, files: list[Path]) -> None:
    queries, overlapping = _queries_across_restarts(ceph_cluster, files[1], restarts=8)
    print(f"\n{queries} queries, {overlapping} during one of 8 OSD restarts")


@slow
@needs_slow
def test_repeated_worker_kills_soak(two_workers: Client, files: list[Path], tmp_path: Path) -> None:
    """Five queries in a row, each with a worker killed under it."""
    directory = tmp_path / "store"
    dataset = write_dataset(directory.as_uri(), [str(f) for f in files], "q", object_size=20_000)
    expected = [query_file(directory.as_uri(), f, QUERY).table for f in dataset.files]
    slow_dataset = load_dataset(f"{SLOW_SCHEME}://{directory}", "q")
    for _ in range(5):
        two_workers.wait_for_workers(2, timeout=60)
        thread, outcome = _in_thread(lambda: query_tables(slow_dataset, QUERY, OnDask(two_workers)))
        _kill_a_busy_worker(two_workers, lambda: True)
        thread.join(120)
        assert "error" not in outcome, outcome.get("error")
        assert all(t.equals(w) for t, w in zip(outcome["result"], expected, strict=True))


@pytest.fixture(scope="module")
def doomed_cluster(ceph_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A cluster of its own (the shared one must stay up), stopped by the test that uses it."""
    from skyhook_dask.ceph.cluster import DevCluster

    cluster = DevCluster(tmp_path_factory.mktemp("ceph-doomed"), install_class=False)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.mark.ceph
def test_cluster_that_stays_down_fails_within_the_timeout(
    doomed_cluster: Any, files: list[Path]
) -> None:
    timeout, budget = 2.0, 2.0
    url = doomed_cluster.url + f"&timeout={timeout:g}"
    with pytest.warns(UserWarning, match="no 'skyhook' object class"):  # client-side fallback
        dataset = write_dataset(url, [str(files[1])], "gone", object_size=40_000)
        file = dataset.files[0]
        assert query_file(url, file, QUERY).table.to_pydict() == _truth(files[1])
    doomed_cluster.down()
    with dask.config.set({"skyhook.retry-time": budget}):
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"did not answer client\.skyhook"):
            query_file(url, file, QUERY)
        elapsed = time.monotonic() - began
    # No attempt starts after the budget; one attempt may need to connect, then to call.
    assert elapsed < budget + 2 * timeout + 3, elapsed
    # A client that never reached the cluster: its first connection times out the same way.
    fresh = doomed_cluster.url + "&timeout=1.5"
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"cannot connect to Ceph .* within 1\.5 s"):
        load_dataset(fresh, "gone")
    connect_elapsed = time.monotonic() - began
    assert connect_elapsed < 1.5 + 3, connect_elapsed
    print(
        f"\ndown cluster reported after {elapsed:.1f} s (query), {connect_elapsed:.1f} s (connect)"
    )
