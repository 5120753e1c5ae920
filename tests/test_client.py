"""The seed's client API end to end on every backend, against uproot + awkward ground truth.

Each query runs through SkyhookDM.runQuery (parse, bind, skip objects, scan in the storage:
the Python class on memory/file, the C++ class inside the OSD on rados) and is compared with
what uproot and awkward compute directly from the ROOT file.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot

from skyhook_dask import SkyhookDM
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import (
    DatasetNotFoundError,
    QuerySyntaxError,
    UnknownColumnError,
    UnknownTreeError,
)
from skyhook_dask.ingest.generate import generate_nanoaod

Mask = Callable[[ak.Array], ak.Array]

# (query, ground-truth mask over the Events tree or None, projected columns or None = all)
QUERIES: list[tuple[str, Mask | None, list[str]]] = [
    ("select event_id > 5, project Events;1.Muon_phi", lambda a: a.event_id > 5, ["Muon_phi"]),
    (
        "select event_id>5, project Events;1.Muon_eta,Events;1.Muon_phi,Events;1.Muon_mass",
        lambda a: a.event_id > 5,
        ["Muon_eta", "Muon_phi", "Muon_mass"],
    ),
    ("project nMuon MET_pt", None, ["nMuon", "MET_pt"]),
    ("select nMuon >= 2, project nMuon Muon_pt", lambda a: a.nMuon >= 2, ["nMuon", "Muon_pt"]),
    (
        "select any(Muon_pt > 20) and nMuon >= 2, project event_id Muon_pt Muon_charge",
        lambda a: ak.any(a.Muon_pt > 20, axis=1) & (a.nMuon >= 2),
        ["event_id", "Muon_pt", "Muon_charge"],
    ),
    (
        "project Jet_pt, select count(Jet_pt > 30) >= 2 || MET_pt > 50",
        lambda a: (ak.sum(a.Jet_pt > 30, axis=1) >= 2) | (a.MET_pt > 50),
        ["Jet_pt"],
    ),
    (
        "select all(abs(Muon_eta) < 2.4) && len(Muon_pt) == 2, project Muon_eta",
        lambda a: ak.all(abs(a.Muon_eta) < 2.4, axis=1) & (ak.num(a.Muon_pt) == 2),
        ["Muon_eta"],
    ),
    (
        "select sum(Jet_pt) > 2 * MET_pt and not (nJet < 1), project nJet MET_pt",
        lambda a: (ak.sum(a.Jet_pt, axis=1) > 2 * a.MET_pt) & ~(a.nJet < 1),
        ["nJet", "MET_pt"],
    ),
    (
        "select max(Muon_pt) / MET_pt > 0.5, project event_id",
        lambda a: ak.fill_none(ak.max(a.Muon_pt, axis=1) / a.MET_pt > 0.5, False),
        ["event_id"],
    ),
    (
        "select any(Muon_pt > MET_pt), project Muon_pt MET_pt",
        lambda a: ak.any(a.Muon_pt > a.MET_pt, axis=1),
        ["Muon_pt", "MET_pt"],
    ),
    ("select MET_pt > 1e9, project MET_pt", lambda a: a.MET_pt > 1e9, ["MET_pt"]),
]


@functools.cache
def _events(path: Path, tree: str = "Events") -> ak.Array:
    """The branches the queries use, read once per file with uproot, plus event_id."""
    wanted = {"nMuon", "nJet", "MET_pt", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass"}
    wanted |= {"Muon_charge", "Jet_pt"}
    with uproot.open(path) as f:
        t = f[tree]
        arrays = t.arrays(sorted(c for c in wanted if c in t), library="ak")
    return ak.with_field(arrays, np.arange(len(arrays), dtype=np.int64), "event_id")


def _truth(path: Path, mask: Mask | None, columns: list[str]) -> pa.Table:
    arrays = _events(path)
    if mask is not None:
        arrays = arrays[ak.to_numpy(mask(arrays)).astype(bool)]
    return ak.to_arrow_table(arrays[columns], extensionarray=False, list_to32=False)


def _same(actual: pa.Table, expected: pa.Table) -> None:
    assert actual.column_names == expected.column_names
    assert actual.num_rows == expected.num_rows
    for name in actual.column_names:
        assert actual.column(name).to_pylist() == expected.column(name).to_pylist(), name


@pytest.fixture
def sk(store_url: str) -> SkyhookDM:
    return SkyhookDM().connect(store=store_url, dask=False)


@pytest.fixture
def dataset_name() -> str:
    return f"ds-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_nanoaod(tmp_path_factory.mktemp("gen") / "gen.root", 3000, seed=7)


def test_seed_queries_equal_uproot(sk: SkyhookDM, dataset_name: str, generated: Path) -> None:
    sources = [sample_path("nano_dimuon.root"), sample_path("nano_dy.root"), generated]
    ds = sk.writeDataset([str(p) for p in sources], dataset_name, object_size=60_000)
    files = ds.getFiles()
    assert [f.name for f in files] == [p.name for p in sources]
    assert len(files[2].trees["Events;1"].objects) > 3  # the generated file spans many objects
    for query, mask, columns in QUERIES:
        tables = sk.runQuery(ds, query)
        assert isinstance(tables, list) and len(tables) == len(sources)
        for path, table in zip(sources, tables, strict=True):
            _same(table, _truth(path, mask, columns))
        # A File gives one table, the same as its entry in the Dataset's list.
        _same(sk.runQuery(files[0], query), tables[0])


def test_pushdown_returns_fewer_bytes_and_skips_objects(
    sk: SkyhookDM, dataset_name: str, generated: Path
) -> None:
    ds = sk.writeDataset([str(generated)], dataset_name, object_size=400_000)
    f = ds.getFiles()[0]
    everything = sk.runQuery(f, "project Muon_pt")
    all_metrics = sk.last_metrics
    few = sk.runQuery(f, "select nMuon >= 3, project Muon_pt")
    few_metrics = sk.last_metrics
    assert few.num_rows < everything.num_rows / 5
    assert few_metrics.bytes_returned < all_metrics.bytes_returned / 2
    assert few_metrics.rows_out == few.num_rows
    # Objects whose event_id range cannot match are never read.
    n_objects = len(f.trees["Events;1"].objects)
    sk.runQuery(f, "select event_id < 10, project event_id")
    assert sk.last_metrics.calls == 1 < n_objects


def test_other_trees_and_empty_results(sk: SkyhookDM, dataset_name: str) -> None:
    path = sample_path("nano_dy.root")
    ds = sk.writeDataset([str(path)], dataset_name)
    f = ds.getFiles()[0]
    with uproot.open(path) as rf:
        runs = rf["Runs"].arrays(library="ak")
    table = sk.runQuery(f, "project Runs.run Runs.genEventCount_")
    assert table.column("run").to_pylist() == ak.to_list(runs.run)
    assert table.column("genEventCount_").to_pylist() == ak.to_list(runs.genEventCount_)
    empty = sk.runQuery(f, "select nMuon > 1000, project nMuon Muon_pt")
    assert empty.num_rows == 0 and empty.column_names == ["nMuon", "Muon_pt"]


def test_catalog_api(sk: SkyhookDM, dataset_name: str) -> None:
    path = sample_path("nano_tree.root")
    ds = sk.writeDataset([str(path)], dataset_name)
    assert sk.getDataset(dataset_name).getSize() == ds.getSize() > 0
    assert dataset_name in sk.listDatasets()
    f = ds.getFiles()[0]
    attrs = f.getAttributes()
    assert attrs["name"] == path.name and attrs["size"] == path.stat().st_size
    root = f.getRoot()
    assert root.getClassType() == "TDirectory" and root.getDataType() is None
    trees = {n.getName(): n for n in root.getChildren()}
    events = next(n for name, n in trees.items() if name.startswith("Events"))
    assert events.getClassType() == "TTree" and events.getParent() is not None
    with uproot.open(path) as rf:
        expected = {k: b.typename for k, b in rf["Events"].items() if not b.branches}
    branches = {n.getName(): n.getDataType() for n in events.getChildren()}
    for name, typename in expected.items():
        if name in branches:
            assert branches[name] == typename


def test_query_errors_are_clear(sk: SkyhookDM, dataset_name: str) -> None:
    ds = sk.writeDataset([str(sample_path("nano_tree.root"))], dataset_name)
    f = ds.getFiles()[0]
    with pytest.raises(QuerySyntaxError) as err:
        sk.runQuery(f, "select nMuon >> 2")
    assert "^" in str(err.value)
    with pytest.raises(UnknownColumnError, match="Muon_ptt"):
        sk.runQuery(f, "project Muon_ptt")
    with pytest.raises(UnknownTreeError, match="Events;1"):
        sk.runQuery(f, "project Events;75.Muon_pt")
    with pytest.raises(DatasetNotFoundError, match=dataset_name):
        sk.getDataset(dataset_name + "x")
    with pytest.raises(TypeError):
        sk.runQuery("not a file", "project nMuon")  # type: ignore[arg-type]


def test_write_arrow_table_seed_example(sk: SkyhookDM) -> None:
    did = f"222:wfe.{uuid.uuid4().hex[:8]}.DAOD"
    selection = (
        "(call ResultTTree (call Select (call EventDataset (list 'localds:bogus')) "
        "(lambda (list e) (list e))) (list 'e_E' 'e_pt') 'forkme' 'dude.root')"
    )
    doc = json.dumps({"did": did, "selection": selection, "chunk-size": 1000, "workers": 17})
    assert sk.addDatasetSchema(doc) == did
    table = pa.table({"e_E": [1, 2, 3], "e_pt": [4.0, 5.0, 6.0]})
    names = sk.writeArrowTable(table, did)
    assert names and all(n.startswith(did + "/") for n in names)
    ds = sk.getDataset(did)
    out = sk.runQuery(ds.getFiles()[0], "select e_pt > 4.5, project e_E e_pt")
    assert out.column("e_E").to_pylist() == [2, 3]
    assert out.column("e_pt").to_pylist() == [5.0, 6.0]


@pytest.fixture(scope="module")
def scheduler(dask_cluster: Any) -> str:
    return str(dask_cluster.scheduler_address)


def test_dask_driver_gives_the_same_tables(
    store_url: str, scheduler: str, dataset_name: str, generated: Path
) -> None:
    if store_url.startswith("memory:"):
        pytest.skip("worker processes cannot see an in-process memory store")
    sk = SkyhookDM().connect(scheduler, store=store_url)
    try:
        assert sk.client is not None
        sources = [sample_path("nano_dimuon.root"), generated]
        ds = sk.writeDataset([str(p) for p in sources], dataset_name, object_size=200_000)
        for query, mask, columns in QUERIES[:6]:
            tables = sk.runQuery(ds, query)
            for path, table in zip(sources, tables, strict=True):
                _same(table, _truth(path, mask, columns))
        assert sk.last_metrics.calls == sum(
            len(t.objects) for f in ds.files for t in [f.trees["Events;1"]]
        )
    finally:
        sk.close()


def test_without_a_scheduler_everything_runs_here(tmp_path: Path) -> None:
    from distributed import Client

    sk = SkyhookDM().connect(store=tmp_path.as_uri())
    assert sk.client is None and not sk.use_dask  # a plain script, a notebook, stdin
    with Client(processes=False, dashboard_address=":0") as current:
        assert sk.client is current  # a client made after connect() is used
    assert SkyhookDM().connect(store=tmp_path.as_uri(), dask=False).client is None


def test_an_embedded_cluster_never_clashes_on_the_dashboard_port(tmp_path: Path) -> None:
    import socket
    import warnings

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # already taken by someone else: as good for this test
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            sk = SkyhookDM().connect(store=tmp_path.as_uri(), dask=True)
            try:
                assert sk.client is not None
            finally:
                sk.close()
    assert not [w for w in seen if "already in use" in str(w.message)]


def test_settings_outlive_a_dask_config_block_entered_before_import() -> None:
    """A script's first ``dask.config.set({"skyhook...."})`` runs before the lazily imported
    settings register their defaults; leaving it used to take every skyhook setting away."""
    script = """
import dask
with dask.config.set({"skyhook.max-in-flight": 1}):
    from skyhook_dask import config
    print(config.get("max-in-flight"))
print(config.get("max-in-flight"), config.get("result-compression"))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "16", "lz4"]
