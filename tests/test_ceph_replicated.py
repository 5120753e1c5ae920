"""A replicated cluster: three OSDs keeping two copies of every object (``min_size`` 1).

Placement is the cluster's own (checked object by object against the monitor); a query and an
ingest survive an OSD killed (SIGKILL) in the middle and give what uproot reads from the file;
the cluster serves with one OSD down; with two down, a query fails with StoreUnavailableError
within its time budget instead of hanging. Every test leaves all three OSDs up.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import uproot

from skyhook_dask.catalog.model import load_dataset
from skyhook_dask.catalog.placement import dataset_placement
from skyhook_dask.catalog.verify import verify_dataset
from skyhook_dask.ceph.cluster import DevCluster
from skyhook_dask.exceptions import StoreUnavailableError
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.runtime.calls import process_metrics
from skyhook_dask.storage import open_store
from skyhook_dask.storage.placement import object_map, pool_map

pytestmark = pytest.mark.ceph
QUERY = "select MET_pt > 40, project event_id MET_pt nMuon"


@pytest.fixture(scope="module")
def replicated(ceph_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    DevCluster
]:  # fmt: skip
    """Three OSDs, two copies (the session cluster fixture makes the skip/CI decision)."""
    cluster = DevCluster(tmp_path_factory.mktemp("ceph-3osd"), osds=3, size=2)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replicated") / "events.root"
    return generate_nanoaod(path, 20_000, seed=5, n_extra_branches=5)


@pytest.fixture(scope="module")
def dataset(replicated: DevCluster, source: Path) -> str:
    write_dataset(replicated.url, [source], "spread", object_size=64 * 1024, overwrite=True)
    return "spread"


@pytest.fixture
def all_osds_up(replicated: DevCluster) -> Iterator[DevCluster]:
    yield replicated
    for osd in replicated.osd_ids:
        replicated.start_osd(osd)
    replicated.wait_ready()


def truth(source: Path) -> dict[str, np.ndarray]:
    events = uproot.open(source)["Events"].arrays(["MET_pt", "nMuon"], library="np")
    keep = events["MET_pt"] > 40
    return {"event_id": np.flatnonzero(keep), "MET_pt": events["MET_pt"][keep],
            "nMuon": events["nMuon"][keep]}  # fmt: skip


def assert_equal_to_truth(frame: Any, source: Path) -> None:
    expected = truth(source)
    frame = frame.sort_values("event_id")
    assert len(frame) == len(expected["event_id"]) > 100
    for column, values in expected.items():
        np.testing.assert_array_equal(frame[column].to_numpy(), values)


def read_query(url: str, name: str) -> Any:
    import skyhook_dask.dataframe as sd

    frame = sd.read_skyhook(name, store=url, query=QUERY)
    return frame.compute(scheduler="threads")


def kill_after_calls(
    cluster: DevCluster, osd: int, calls: int, killed_at: list[int]
) -> threading.Thread:
    """A thread that kills ``osd`` once this process has made ``calls`` more object calls;
    ``killed_at`` receives the number of calls made by then."""
    start = process_metrics().calls

    def kill() -> None:
        deadline = time.monotonic() + 60
        while process_metrics().calls - start < calls and time.monotonic() < deadline:
            time.sleep(0.002)
        killed_at.append(process_metrics().calls - start)
        cluster.stop_osd(osd, kill=True)  # SIGKILL at once; returns when it is marked down

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_placement_is_the_clusters_own(replicated: DevCluster, dataset: str) -> None:
    store = open_store(replicated.url)
    mapping = pool_map(store)
    names = [obj.name for _f, _t, obj in load_dataset(store, dataset).objects()]
    assert len(names) > 20
    random_names = [f"anything/{uuid.uuid4().hex}-{n}" for n in range(40)]
    for name in names + random_names:  # the hash and the groups, against `osd map`
        assert mapping.place(name) == object_map(store, name), name
    spread = dataset_placement(load_dataset(store, dataset), mapping)
    osds = spread["osds"]
    assert set(osds) == {0, 1, 2}
    assert sum(n["primary_objects"] for n in osds.values()) == len(names)
    assert sum(n["copies"] for n in osds.values()) == 2 * len(names)
    assert all(len(set(mapping.place(name).acting)) == 2 for name in names)
    assert all(n["primary_objects"] > 0 for n in osds.values())


def test_a_query_survives_an_osd_killed_mid_read(
    all_osds_up: DevCluster, dataset: str, source: Path
) -> None:
    cluster = all_osds_up
    busiest = max(dataset_placement(load_dataset(open_store(cluster.url), dataset))["osds"].items(),
                  key=lambda item: item[1]["primary_objects"])[0]  # fmt: skip
    killed_at: list[int] = []
    start = process_metrics().calls
    killer = kill_after_calls(cluster, busiest, calls=5, killed_at=killed_at)
    with dask.config.set({"skyhook.max-in-flight": 2, "skyhook.strict": True}):
        frame = read_query(cluster.url, dataset)
    killer.join(timeout=60)
    assert killed_at and not cluster.status()["osds"][busiest]["alive"]
    assert process_metrics().calls - start > killed_at[0] + 10  # the kill came mid-query
    assert_equal_to_truth(frame, source)


def test_an_ingest_survives_an_osd_killed_mid_way(
    all_osds_up: DevCluster, source: Path, tmp_path: Path
) -> None:
    cluster = all_osds_up
    writes = {"count": 0}
    store = open_store(cluster.url)
    plain_write = store.write

    def counted(name: str, data: bytes, **options: Any) -> None:
        plain_write(name, data, **options)
        writes["count"] += 1

    killed = threading.Event()

    def kill() -> None:
        deadline = time.monotonic() + 60
        while writes["count"] < 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        cluster.stop_osd(1, kill=True)
        writes["at_kill"] = writes["count"]
        killed.set()

    store.write = counted  # type: ignore[method-assign]
    threading.Thread(target=kill, daemon=True).start()
    write_dataset(store, [source], "grown", object_size=32 * 1024, overwrite=True)
    assert killed.wait(60)
    assert writes["count"] > writes["at_kill"] + 10  # the kill came mid-ingest
    report = verify_dataset(cluster.url, "grown")
    report.raise_first()
    assert report.objects > 40 and report.unreferenced == []
    assert_equal_to_truth(read_query(cluster.url, "grown"), source)


def test_one_osd_down_serves_two_down_fail_clearly(
    all_osds_up: DevCluster, dataset: str, source: Path
) -> None:
    cluster = all_osds_up
    cluster.stop_osd(0, kill=True)
    assert_equal_to_truth(read_query(cluster.url, dataset), source)  # at min_size

    cluster.stop_osd(2, kill=True)  # now some groups have no copy up
    url = f"{cluster.url}&timeout=4"  # each RADOS operation gives up after 4 s
    started = time.monotonic()
    run: Callable[[], Any] = lambda: read_query(url, dataset)  # noqa: E731
    with dask.config.set({"skyhook.retry-time": 3}), pytest.raises(StoreUnavailableError):
        run()
    assert time.monotonic() - started < 45


@contextlib.contextmanager
def workers_on_hosts(cluster: DevCluster) -> Iterator[tuple[Any, dict[str, str]]]:
    """A Dask cluster with one worker per OSD host (``node-N``), declared the way the
    Kubernetes manifests do; work stealing off, so that every task runs where it was placed.
    Yields the client and each worker address's host."""
    from distributed import Client, Nanny, Scheduler, SpecCluster

    from skyhook_dask.runtime.locality import HOST_ENV

    hosts = {f"w{n}": f"node-{n}" for n in cluster.osd_ids}
    workers = {name: {"cls": Nanny, "options": {"nthreads": 1, "env": {HOST_ENV: host}}}
               for name, host in hosts.items()}  # fmt: skip
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with (
        dask.config.set({"distributed.scheduler.work-stealing": False}),
        SpecCluster(workers=workers, scheduler=scheduler) as dask_cluster,
        Client(dask_cluster) as client,
    ):
        client.wait_for_workers(len(hosts), timeout=60)
        info = client.scheduler_info()["workers"]
        yield client, {address: hosts[str(w["name"])] for address, w in info.items()}


def test_object_tasks_run_beside_their_primary_osd(replicated: DevCluster, dataset: str) -> None:
    """Three workers, each declaring one OSD's host (the dev cluster puts osd.N on host
    node-N): every object call runs on the worker beside its object's primary OSD."""
    from distributed import get_task_stream

    from skyhook_dask.plan import plan
    from skyhook_dask.query.parser import parse_query
    from skyhook_dask.runtime.mappers import OnDask
    from skyhook_dask.runtime.queries import run_plans

    store = open_store(replicated.url)
    planned = plan(load_dataset(store, dataset).files[0], parse_query(QUERY))
    with workers_on_hosts(replicated) as (client, host_of), get_task_stream(client) as stream:
        (result,) = run_plans([planned], OnDask(client))
    ran_on = {record["key"][1]: record["worker"] for record in stream.data
              if isinstance(record["key"], tuple)}  # fmt: skip
    mapping = pool_map(store)
    assert len(ran_on) == len(planned.objects) > 20
    for n, obj in enumerate(planned.objects):
        assert host_of[ran_on[n]] == f"node-{mapping.place(obj.name).primary}", obj.name
    assert len(set(ran_on.values())) == 3
    assert result.table.num_rows == result.metrics.rows_out


def test_a_destroyed_osd_is_backfilled_and_serves_alone(
    all_osds_up: DevCluster, dataset: str, source: Path
) -> None:
    """osd.1's disk is lost and replaced by an empty OSD of the same id: Ceph copies its share
    back. Then, with osd.0 down, the objects osd.0 shared with osd.1 come from osd.1 alone."""
    cluster = all_osds_up
    cluster.recreate_osd(1)
    cluster.wait_clean()
    details = {o["name"]: o for o in cluster.status(details=True)["osds"]}
    store = open_store(cluster.url)
    mapping = pool_map(store)
    names = [obj.name for _f, _t, obj in load_dataset(store, dataset).objects()]
    held_by_1 = [n for n in names if 1 in mapping.place(n).acting]
    assert details["osd.1"]["object_copies"] >= len(held_by_1) > 0
    assert details["osd.1"]["stored_bytes"] > 0
    states = details["osd.1"]["pg_states"]
    assert all(s.endswith(("Active/Clean", "RepNotRecovering")) for s in states), states

    cluster.stop_osd(0, kill=True)
    shared = [n for n in held_by_1 if set(mapping.place(n).acting) == {0, 1}]
    assert shared
    report = verify_dataset(cluster.url, dataset)
    report.raise_first()
    assert report.objects == len(names) + 1  # and the statistics object
    assert_equal_to_truth(read_query(cluster.url, dataset), source)


def test_read_skyhook_tasks_run_beside_their_primary_osd(
    replicated: DevCluster, dataset: str, source: Path
) -> None:
    """read_skyhook on a Dask cluster whose workers declare hosts: each partition's task, fused
    with what follows it, runs on the worker beside its object's primary OSD."""
    from distributed import get_task_stream

    import skyhook_dask.dataframe as sd
    from skyhook_dask import histogram
    from skyhook_dask.plan import plan
    from skyhook_dask.query.parser import parse_query

    with workers_on_hosts(replicated) as (client, host_of):
        frame = sd.read_skyhook(dataset, store=replicated.url, query=QUERY)
        with get_task_stream(client) as stream:
            doubled = (frame.MET_pt * 2).compute()
        # a histogram filled in the storage: one task per object, its name an argument
        delayed = histogram(dataset, "MET_pt", bins=20, range=(0, 200), where="nMuon >= 1",
                            store=replicated.url, client=client, compute=False)  # fmt: skip
        read_by = {key: task.args[2] for key, task in delayed.__dask_graph__().items()
                   if str(key).startswith("_histogram_part")}  # fmt: skip
        with get_task_stream(client) as hist_stream:
            filled = client.compute(delayed).result()
    events = uproot.open(source)["Events"].arrays(["MET_pt", "nMuon"], library="np")
    expected, _ = np.histogram(events["MET_pt"][events["nMuon"] >= 1], bins=20, range=(0, 200))
    np.testing.assert_array_equal(filled.values(), expected)
    mapping = pool_map(open_store(replicated.url))
    parts = {r["key"]: r["worker"] for r in hist_stream.data if r["key"] in read_by}
    assert len(parts) == len(read_by) > 20
    for key, worker in parts.items():
        assert host_of[worker] == f"node-{mapping.place(read_by[key]).primary}", read_by[key]
    store = open_store(replicated.url)
    planned = plan(load_dataset(store, dataset).files[0], parse_query(QUERY))  # one plan
    reads = [r for r in stream.data if isinstance(r["key"], tuple) and r["key"][0][:4] == "read"]
    ran_on = {record["key"][1]: record["worker"] for record in reads}
    assert len(ran_on) == len(planned.objects) > 20
    np.testing.assert_array_equal(np.sort(doubled.to_numpy()), np.sort(truth(source)["MET_pt"] * 2))
    for n, worker in ran_on.items():
        primary = mapping.place(planned.objects[n].name).primary
        assert host_of[worker] == f"node-{primary}", planned.objects[n].name
