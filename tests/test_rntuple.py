"""RNTuples are ingested like TTrees: the same events written both ways give the same columns,
schema and values; queries on an ingested RNTuple equal what uproot + awkward read from it, on
every backend; record members become ``record.member`` columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot
from query_support import query_file

from skyhook_dask.catalog.model import File
from skyhook_dask.cli import main as cli_main
from skyhook_dask.formats.objects import read_columns
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.storage import close_stores, open_store

EVENTS = 2500
SMALL_OBJECTS = 40_000  # bytes: several objects per tree


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same generated events as a TTree file and as an RNTuple file."""
    folder = tmp_path_factory.mktemp("rntuple")
    options: dict[str, Any] = {"seed": 3, "n_extra_branches": 4, "events_per_basket": 700}
    tree = generate_nanoaod(folder / "tree.root", EVENTS, **options)
    rntuple = generate_nanoaod(folder / "rntuple.root", EVENTS, rntuple=True, **options)
    return tree, rntuple


def _tree_table(store: Any, file: File, key: str) -> pa.Table:
    objects = file.trees[key].objects
    return pa.concat_tables([read_columns(store.read(o.name), name=o.name) for o in objects])


def test_rntuple_ingests_like_the_same_ttree(twins: tuple[Path, Path]) -> None:
    url = "memory://rntuple-twins"
    store = open_store(url)
    try:
        as_tree = write_dataset(store, [twins[0]], "tree", object_size=SMALL_OBJECTS).files[0]
        as_rntuple = write_dataset(store, [twins[1]], "rn", object_size=SMALL_OBJECTS).files[0]
        assert list(as_rntuple.trees) == list(as_tree.trees) == ["Events;1", "Runs;1"]
        for key in as_tree.trees:
            assert as_rntuple.trees[key].entries == as_tree.trees[key].entries
            assert as_rntuple.trees[key].schema.equals(as_tree.trees[key].schema)
            assert _tree_table(store, as_rntuple, key).equals(_tree_table(store, as_tree, key))
        assert len(as_rntuple.trees["Events;1"].objects) > 3
        # The layout says what the file holds: RNTuples of fields.
        events = next(n for n in as_rntuple.getRoot().getChildren() if n.getName() == "Events")
        assert events.getClassType() == "RNTuple"
        fields = {n.getName(): n for n in events.getChildren()}
        assert fields["Muon_pt"].getClassType() == "RField"
        assert fields["Muon_pt"].getDataType() == "std::vector<float>"
    finally:
        close_stores(url)


def test_queries_on_an_rntuple_match_uproot(
    store_url: str, prefix: str, twins: tuple[Path, Path]
) -> None:
    dataset = write_dataset(store_url, [twins[1]], f"{prefix}-rn", object_size=SMALL_OBJECTS)
    file = dataset.files[0]
    events = uproot.open(twins[1])["Events"].arrays()
    result = query_file(
        store_url, file, "select any(Muon_pt > 40) and MET_pt < 50, project event Muon_pt nJet"
    ).table
    keep = ak.any(events.Muon_pt > 40, axis=1) & (events.MET_pt < 50)
    assert 0 < result.num_rows == int(ak.sum(keep)) < EVENTS
    assert result.column("event").to_pylist() == ak.to_list(events.event[keep])
    assert result.column("Muon_pt").to_pylist() == ak.to_list(events.Muon_pt[keep])
    assert result.column("nJet").to_pylist() == ak.to_list(events.nJet[keep])
    runs = query_file(store_url, file, "project Runs.genEventCount").table
    assert runs.column("genEventCount").to_pylist() == [EVENTS]


def test_record_members_become_dotted_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    counts = rng.poisson(2, 300)
    muons = ak.zip(
        {
            "pt": ak.unflatten(rng.exponential(20, counts.sum()).astype(np.float32), counts),
            "charge": ak.unflatten(rng.choice(np.array([-1, 1], np.int8), counts.sum()), counts),
        }
    )
    vertex = ak.zip({"x": rng.normal(0, 1, 300), "n": rng.poisson(30, 300).astype(np.int32)})
    path = tmp_path / "records.root"
    with uproot.recreate(path) as out:
        out.mkrntuple("Events", ak.zip({"Muon": muons, "PV": vertex}, depth_limit=1))
    url = "memory://rntuple-records"
    try:
        file = write_dataset(url, [path], "records", object_size=4_000).files[0]
        schema = file.trees["Events;1"].schema
        assert schema.names == ["event_id", "Muon.pt", "Muon.charge", "PV.x", "PV.n"]
        assert schema.field("Muon.pt").type == pa.large_list(pa.field("item", pa.float32(), False))
        table = query_file(url, file, "select sum(`Muon.charge`) == 0, project `Muon.pt` `PV.n`")
        keep = ak.sum(muons.charge, axis=1) == 0
        assert table.table.column("Muon.pt").to_pylist() == ak.to_list(muons.pt[keep])
        assert table.table.column("PV.n").to_pylist() == ak.to_list(vertex.n[keep])
    finally:
        close_stores(url)


def test_empty_rntuple_and_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "empty.root"
    assert cli_main(["generate", str(path), "--events", "0", "--rntuple"]) == 0
    assert uproot.open(path).classnames()["Events;1"] == "ROOT::RNTuple"
    url = "memory://rntuple-empty"
    try:
        file = write_dataset(url, [path], "empty").files[0]
        assert file.trees["Events;1"].entries == 0 and file.trees["Events;1"].objects == []
        assert "Muon_pt" in file.trees["Events;1"].schema.names
        assert query_file(url, file, "project Muon_pt").table.num_rows == 0
    finally:
        close_stores(url)
