"""Many clients at once on Ceph get the same answers as one client alone, without errors.

Soak variants are marked ``slow``; reliability_support.py says how to run them.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import awkward as ak
import pyarrow as pa
import pytest
import uproot
from query_support import aggregate_objects, plan_file, query_file
from reliability_support import needs_slow, slow
from reliability_support import small as small  # a module-scoped fixture

from skyhook_dask.formats.protocol import Aggregate, ScanRequest
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.query.expr import Column

LOAD_QUERIES = [
    "project event_id MET_pt",
    "select nMuon >= 2, project event_id Muon_pt Muon_eta",
    "select any(Muon_pt > 25) and MET_pt > 20, project event_id nMuon Muon_pt",
    "select count(Jet_pt > 30) >= 2 or MET_pt > 60, project Jet_pt",
    "select all(abs(Electron_eta) < 1.5) and len(Electron_pt) >= 1, project Electron_pt",
    "select sum(Jet_pt) > 2 * MET_pt, project event_id",
]
AGGREGATE_PREDICATES = ["select nMuon >= 1", "select any(Jet_pt > 40)"]


def _aggregate_request(file: Any, text: str) -> ScanRequest:
    predicate = plan_file(file, text).predicate
    aggregates = (
        Aggregate("count"),
        Aggregate("sum", Column("MET_pt")),
        Aggregate("max", Column("Muon_pt")),
        Aggregate("mean", Column("Jet_pt")),
    )
    return ScanRequest(predicate=predicate, aggregates=aggregates)


def _workload(url: str, file: Any) -> list[Callable[[], Any]]:
    names = [o.name for o in file.trees["Events;1"].objects]
    jobs: list[Callable[[], Any]] = [
        lambda q=q: query_file(url, file, q).table for q in LOAD_QUERIES
    ]
    jobs += [
        lambda p=p: aggregate_objects(url, names, _aggregate_request(file, p))
        for p in AGGREGATE_PREDICATES
    ]
    return jobs


def _run_load(url: str, file: Any, clients: int, per_client: int) -> tuple[float, list[float]]:
    jobs = _workload(url, file)
    expected = [job() for job in jobs]  # one client alone
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(per_client):
            index = (k + i) % len(jobs)
            began = time.perf_counter()
            try:
                got = jobs[index]()
                if isinstance(got, pa.Table):
                    assert got.equals(expected[index]), LOAD_QUERIES[index]
                else:
                    assert got == expected[index]
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                continue
            with lock:
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - began
    assert errors == [], errors[:3]
    assert len(latencies) == clients * per_client
    return elapsed, latencies


def _report(label: str, elapsed: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    print(
        f"\n{label}: {len(latencies)} queries in {elapsed:.2f} s = "
        f"{len(latencies) / elapsed:.1f} queries/s; latency p50 "
        f"{statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


@pytest.fixture(scope="module")
def load_file(ceph_cluster: Any, small: list[Path]) -> Any:
    name = f"load-{uuid.uuid4().hex[:8]}"
    dataset = write_dataset(ceph_cluster.url, [str(small[0])], name, object_size=60_000)
    file = dataset.files[0]
    # Ground truth for one aggregate, straight from the ROOT file.
    events = uproot.open(small[0])["Events"].arrays(["nMuon", "MET_pt"])
    total = aggregate_objects(
        ceph_cluster.url,
        [o.name for o in file.trees["Events;1"].objects],
        _aggregate_request(file, "select nMuon >= 1"),
    )
    mask = events.nMuon >= 1
    assert total[0] == int(ak.sum(mask))
    assert total[1] == pytest.approx(float(ak.sum(events.MET_pt[mask])), rel=1e-5)
    return file


@pytest.mark.ceph
def test_eight_concurrent_clients(ceph_cluster: Any, load_file: Any) -> None:
    assert len(load_file.trees["Events;1"].objects) >= 3
    elapsed, latencies = _run_load(ceph_cluster.url, load_file, clients=8, per_client=50)
    _report("8 clients x 50 queries", elapsed, latencies)


@pytest.mark.ceph
@slow
@needs_slow
def test_concurrent_clients_soak(ceph_cluster: Any, load_file: Any) -> None:
    elapsed, latencies = _run_load(ceph_cluster.url, load_file, clients=16, per_client=300)
    _report("16 clients x 300 queries", elapsed, latencies)
