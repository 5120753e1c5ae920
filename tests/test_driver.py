"""The Dask scheduler as SkyhookDM's driver: connecting, ingesting with one task per file,
querying with one task per object -- compared with the single-process functions and uproot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot
from distributed import Client
from query_support import query_file, query_tables

from skyhook_dask.catalog.model import list_datasets, load_dataset
from skyhook_dask.data import DATA_DIR
from skyhook_dask.exceptions import (
    DatasetExistsError,
    IngestError,
    SchedulerUnavailableError,
)
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.plan import plan
from skyhook_dask.query import parse_query
from skyhook_dask.runtime import dask as driver
from skyhook_dask.runtime.dask import connect_client, scheduler_address
from skyhook_dask.runtime.mappers import OnDask
from skyhook_dask.runtime.queries import run_plans
from skyhook_dask.storage import open_store

DATA = DATA_DIR
FILES = [DATA / "nano_dimuon.root", DATA / "nano_tree.root"]
OBJECT_SIZE = 60_000


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tmp_path_factory.mktemp("driver-store").as_uri()


@pytest.fixture(scope="module")
def dataset(client: Client, store_url: str) -> Any:
    return write_dataset(
        store_url,
        [str(f) for f in FILES],
        "nano",
        object_size=OBJECT_SIZE,
        trees=["Events"],
        mapper=OnDask(client),
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("scheduler", "tcp://scheduler:8786"),
        ("10.0.0.5:9000", "tcp://10.0.0.5:9000"),
        ("tcp://10.0.0.5", "tcp://10.0.0.5:8786"),
        ("tls://host:8800", "tls://host:8800"),
        ("[::1]:8786", "tcp://[::1]:8786"),
        ("  host  ", "tcp://host:8786"),
    ],
)
def test_scheduler_address_forms(given: str, expected: str) -> None:
    assert scheduler_address(given) == expected


@pytest.mark.parametrize("bad", ["", "   ", "host:notaport"])
def test_scheduler_address_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="address"):
        scheduler_address(bad)


def test_connect_client_by_address(client: Client) -> None:
    address = client.scheduler.address
    host_port = address.removeprefix("tcp://")
    for form in (address, host_port):
        with connect_client(form) as other:
            assert other.scheduler.address == address
            assert len(other.scheduler_info()["workers"]) == 2


def test_connect_client_without_address_uses_the_current_client(client: Client) -> None:
    assert connect_client(None) is client


def test_connect_client_starts_an_embedded_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def no_client() -> Client:
        raise ValueError("No clients found")

    monkeypatch.setattr(driver, "default_client", no_client)
    monkeypatch.setattr(driver, "Client", lambda *a, **kw: calls.append({"args": a, **kw}))
    connect_client(None)
    assert calls == [{"args": (), "processes": True, "dashboard_address": ":0"}]


def test_connect_client_unreachable() -> None:
    with pytest.raises(SchedulerUnavailableError, match=r"127\.0\.0\.1:1"):
        connect_client("127.0.0.1:1", timeout=1)


def _layout(ds: Any) -> list[tuple[Any, ...]]:
    def objects(tree: Any) -> list[tuple[int, int, int, str]]:
        return [(o.first_event, o.stop_event, o.rows, o.checksum) for o in tree.objects]

    return [(f.name, key, t.entries, objects(t)) for f in ds.files for key, t in f.trees.items()]


def test_ingest_on_dask_matches_single_process_ingest(
    dataset: Any, store_url: str, tmp_path: Path
) -> None:
    local = write_dataset(
        tmp_path.as_uri(),
        [str(f) for f in FILES],
        "nano",
        object_size=OBJECT_SIZE,
        trees=["Events"],
        progress=False,
    )
    published = load_dataset(store_url, "nano")
    assert _layout(published) == _layout(local) == _layout(dataset)
    assert sum(len(t.objects) for f in published.files for t in f.trees.values()) > 2
    for f, path in zip(published.files, FILES, strict=True):
        assert f.trees["Events;1"].entries == uproot.open(path)["Events"].num_entries


def test_ingest_on_dask_is_all_or_nothing(client: Client, tmp_path: Path, store_url: str) -> None:
    broken = tmp_path / "broken.root"
    broken.write_bytes(b"this is not a ROOT file" * 100)
    with pytest.raises(IngestError, match=r"broken\.root"):
        write_dataset(
            store_url,
            [str(FILES[1]), str(broken)],
            "half",
            object_size=OBJECT_SIZE,
            mapper=OnDask(client),
        )
    assert "half" not in list_datasets(store_url)
    assert list(open_store(store_url).list("half/")) == []


def test_ingest_on_dask_refuses_to_replace_unless_asked(
    client: Client, dataset: Any, store_url: str
) -> None:
    with pytest.raises(DatasetExistsError, match="nano"):
        write_dataset(store_url, [str(FILES[1])], "nano", mapper=OnDask(client))
    on_dask = OnDask(client)
    replaced = write_dataset(
        store_url,
        [str(FILES[1])],
        "nano2",
        object_size=OBJECT_SIZE,
        trees=["Events"],
        mapper=on_dask,
    )
    again = write_dataset(
        store_url,
        [str(FILES[1])],
        "nano2",
        object_size=OBJECT_SIZE,
        trees=["Runs"],
        overwrite=True,
        mapper=on_dask,
    )
    assert [f.name for f in replaced.files] == ["nano_tree.root"]
    assert list(load_dataset(store_url, "nano2").files[0].trees) == ["Runs;1"]
    assert again.ingest_id == load_dataset(store_url, "nano2").ingest_id
    # The replaced ingest's objects were collected.
    assert all(again.ingest_id in name for name in open_store(store_url).list("nano2/data/"))


QUERY = "select any(Muon_pt > 20) and nMuon >= 2, project nMuon, Muon_pt, MET_pt"


def test_queries_on_dask_equal_queries_in_process(
    client: Client, dataset: Any, store_url: str
) -> None:
    tables = query_tables(dataset, QUERY, OnDask(client))
    assert isinstance(tables, list) and len(tables) == len(dataset.files)
    for table, f in zip(tables, dataset.files, strict=True):
        assert table.equals(query_file(store_url, f, QUERY).table)
    one = query_file(store_url, dataset.files[0], QUERY, OnDask(client)).table
    assert one.equals(tables[0])


def test_queries_on_dask_match_uproot(client: Client, dataset: Any, store_url: str) -> None:
    tables = query_tables(dataset, QUERY, OnDask(client))
    for table, path in zip(tables, FILES, strict=True):
        events = uproot.open(path)["Events"].arrays(["nMuon", "Muon_pt", "MET_pt"])
        mask = ak.any(events.Muon_pt > np.float32(20), axis=1) & (events.nMuon >= 2)
        assert table.column_names == ["nMuon", "Muon_pt", "MET_pt"]
        assert table.column("nMuon").to_pylist() == ak.to_list(events.nMuon[mask])
        assert table.column("Muon_pt").to_pylist() == ak.to_list(events.Muon_pt[mask])
        assert table.column("MET_pt").to_pylist() == ak.to_list(events.MET_pt[mask])


def test_queries_run_as_one_task_per_object(client: Client, dataset: Any, store_url: str) -> None:
    query = parse_query("select nMuon >= 0, project run")
    plans = [plan(f, query) for f in dataset.files]
    results = run_plans(plans, OnDask(client), label="query-skyhook-nano")
    objects = [len(f.trees["Events;1"].objects) for f in dataset.files]
    assert [r.objects_scanned for r in results] == objects
    assert [r.metrics.calls for r in results] == objects
    assert [r.table.num_rows for r in results] == [
        f.trees["Events;1"].entries for f in dataset.files
    ]
    prefixes = client.run_on_scheduler(lambda dask_scheduler: set(dask_scheduler.task_prefixes))
    assert {"query-skyhook-nano", "ingest-skyhook-nano"} <= prefixes
