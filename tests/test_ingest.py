"""ROOT ingestion: every object read back equals what uproot + awkward read from the file, for
the samples, generated files, empty and nested trees; branches that cannot be read are skipped
and recorded; the progress bar."""

from __future__ import annotations

import json
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot
from ingest_support import (
    SMALL,
    assert_matches_root,
    generated_file,
    memory_store,
    read_tree_back,
    small_files,
)

from skyhook_dask.catalog.model import Dataset
from skyhook_dask.data import DATA_DIR
from skyhook_dask.exceptions import IngestError
from skyhook_dask.formats import manifest as mf
from skyhook_dask.ingest.pipeline import SkippedBranchWarning, write_dataset
from skyhook_dask.storage import close_stores, open_store

DATA = DATA_DIR
SAMPLES = sorted(DATA.glob("*.root"))

store = pytest.fixture(memory_store)
generated = pytest.fixture(scope="module")(generated_file)
small = pytest.fixture(scope="module")(small_files)


@pytest.fixture(params=["memory", "file"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = (
        f"memory://ingest-{uuid.uuid4().hex}"
        if request.param == "memory"
        else (tmp_path / "store").as_uri()
    )
    yield open_store(url)
    close_stores(url)


# --- round trips -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples_dataset() -> Iterator[tuple[Any, Dataset]]:
    url = f"memory://samples-{uuid.uuid4().hex}"
    store = open_store(url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real samples have no branch to skip
        dataset = write_dataset(store, SAMPLES, "samples", object_size=SMALL, progress=False)
    yield store, dataset
    close_stores(url)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_files_round_trip(samples_dataset: tuple[Any, Dataset], path: Path) -> None:
    store, dataset = samples_dataset
    assert_matches_root(store, dataset, path)
    (file,) = [f for f in dataset.files if f.name == path.name]
    assert len(file.trees["Events;1"].objects) >= 2  # split by size


def test_generated_file_round_trip(any_store: Any, generated: Path) -> None:
    dataset = write_dataset(any_store, [generated], "gen", object_size=100_000, compression="zstd")
    tree = dataset.files[0].trees["Events;1"]
    assert len(tree.objects) >= 4
    sizes = [o.uncompressed_bytes for o in tree.objects]
    assert max(sizes) < 1.6 * 100_000 and min(sizes) > 0.4 * 100_000  # evenly sized objects
    assert str(tree.schema.field("Muon_pt").type) == "large_list<item: float not null>"
    assert_matches_root(any_store, dataset, generated)


def test_step_size_reads_in_small_ranges(store: Any, generated: Path) -> None:
    dataset = write_dataset(store, [generated], "gen", object_size=10**9, step_size=500)
    tree = dataset.files[0].trees["Events;1"]
    assert [(o.first_event, o.stop_event) for o in tree.objects] == [(0, 3000)]
    assert_matches_root(store, dataset, generated, stats=False)


def test_manifest_fields(samples_dataset: tuple[Any, Dataset]) -> None:
    store, dataset = samples_dataset
    raw = json.loads(store.read("samples/manifest.json"))
    assert raw["format"] == "skyhook-dataset" and raw["version"] == 1
    assert raw["name"] == "samples" and raw["ingest_id"] == dataset.ingest_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", raw["created"])
    for number, (entry, path) in enumerate(zip(raw["files"], SAMPLES, strict=True)):
        st = os.stat(path)
        assert entry["file_no"] == number and entry["name"] == path.name
        assert entry["url"] == os.fspath(path) and entry["size"] == st.st_size
        assert entry["modification_time"] == st.st_mtime
        assert isinstance(entry["access_time"], float)
        for tree in entry["trees"]:
            assert mf.decode_schema(tree["schema"]).names[0] == "event_id"
            for obj in tree["objects"]:
                assert obj["name"].startswith(f"samples/data/{raw['ingest_id']}/f{number:04d}-t")
    # the objects in the store are exactly those the manifest names
    assert set(store.list("samples/data/")) == mf.referenced_objects(raw)


def test_layout_records_root_types(samples_dataset: tuple[Any, Dataset]) -> None:
    _, dataset = samples_dataset
    file = dataset.file("nano_dy.root")
    top = file.getSchema()
    events = next(c for c in top["children"] if c["name"] == "Events")
    assert events["classtype"] == "TTree" and events["key"] == "Events;1"
    with uproot.open(DATA / "nano_dy.root") as root:
        source = root["Events"]
        assert [b["name"] for b in events["children"]] == list(source.keys())
        schema = file.trees["Events;1"].schema
        for node in events["children"]:
            assert node["classtype"] == "TBranch"
            assert node["datatype"] == source[node["name"]].typename
            assert node["arrow_type"] == str(schema.field(node["name"]).type)


# --- trees, directories, odd branches ----------------------------------------------------------


@pytest.fixture
def odd_file(tmp_path: Path) -> Path:
    """An empty tree, a tree in a nested directory, and a second cycle of a tree."""
    path = tmp_path / "odd.root"
    with uproot.recreate(path) as out:
        out.mktree("Empty", {"x": np.float32, "y": "var * float64"})
        out.mktree("sub/deeper/T", {"a": np.int16, "b": "var * int64"})
        out["sub/deeper/T"].extend(
            {"a": np.arange(5, dtype=np.int16), "b": ak.Array([[1], [], [2, 3], [4], [5, 6, 7]])}
        )
        out.mkdir("nothing")
    return path


def test_empty_tree_and_nested_directories(store: Any, odd_file: Path) -> None:
    dataset = write_dataset(store, [odd_file], "odd")
    file = dataset.files[0]
    assert sorted(file.trees) == ["Empty;1", "sub/deeper/T;1"]
    empty = file.trees["Empty;1"]
    assert empty.entries == 0 and empty.objects == []  # no objects, schema still recorded
    assert empty.columns == ["event_id", "x", "ny", "y"]
    assert str(empty.schema.field("y").type) == "large_list<item: double not null>"
    nested = file.trees["sub/deeper/T;1"]
    assert (nested.name, nested.path, nested.cycle) == ("T", "sub/deeper/T", 1)
    table = read_tree_back(store, nested)
    assert table.column("b").to_pylist() == [[1], [], [2, 3], [4], [5, 6, 7]]
    root = file.getRoot()
    kinds = {n.getName(): n.getClassType() for n in root.walk()}
    assert kinds["sub"] == kinds["deeper"] == kinds["nothing"] == "TDirectory"
    assert kinds["T"] == "TTree" and kinds["b"] == "TBranch"


def test_tree_selection(store: Any, small: list[Path]) -> None:
    dataset = write_dataset(store, [small[0]], "only-runs", trees=["Runs"])
    assert list(dataset.files[0].trees) == ["Runs;1"]
    layout = dataset.files[0].getSchema()
    assert {c["name"]: c.get("ingested") for c in layout["children"]} == {
        "Events": False,
        "Runs": True,
    }
    with pytest.raises(IngestError, match=r"no tree 'Nope'.*Events;1, Runs;1"):
        write_dataset(store, [small[0]], "none", trees=["Nope"])
    assert not list(store.list("none/"))


@pytest.fixture
def patched_interpretation(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Give chosen branches another interpretation (uproot cannot be made to write a branch
    of an unknown class, so the test overrides how uproot identifies it)."""
    overrides: dict[str, Any] = {}
    original = uproot.interpretation.identify.interpretation_of

    def interpretation_of(branch: Any, context: Any, simplify: bool = True) -> Any:
        if branch.name in overrides:
            return overrides[branch.name]
        return original(branch, context, simplify)

    monkeypatch.setattr(uproot.interpretation.identify, "interpretation_of", interpretation_of)
    return overrides


def test_unknown_and_unreadable_branches_are_skipped(
    store: Any, patched_interpretation: dict[str, Any]
) -> None:
    path = DATA / "nano_tree.root"
    unknown = uproot.interpretation.identify.UnknownInterpretation("no streamer", str(path), "x")
    patched_interpretation["Muon_eta"] = unknown
    patched_interpretation["MET_pt"] = uproot.interpretation.numerical.AsDtype(">f8")
    with pytest.warns(SkippedBranchWarning) as caught:
        dataset = write_dataset(store, [path], "skips")
    messages = " ".join(str(w.message) for w in caught)
    assert "'Muon_eta'" in messages and "'MET_pt'" in messages
    tree = dataset.files[0].trees["Events;1"]
    reasons = {s["branch"]: s["reason"] for s in tree.skipped}
    assert set(reasons) == {"Muon_eta", "MET_pt"}
    assert "cannot interpret" in reasons["Muon_eta"]
    assert "cannot read" in reasons["MET_pt"] and "wrong number of entries" in reasons["MET_pt"]
    assert "Muon_eta" not in tree.columns and "MET_pt" not in tree.columns
    nodes = {n.getName(): n for n in dataset.files[0].getRoot().walk()}
    assert nodes["Muon_eta"].skipped == reasons["Muon_eta"] and nodes["Muon_eta"].column is None
    patched_interpretation.clear()
    table = read_tree_back(store, tree)
    with uproot.open(path) as root:
        truth = root["Events"].arrays(["Muon_pt", "Jet_eta"])
    assert table.column("Muon_pt").to_pylist() == truth["Muon_pt"].tolist()
    assert table.column("Jet_eta").to_pylist() == truth["Jet_eta"].tolist()


def test_branch_that_fails_arrow_conversion_is_skipped(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyhook_dask.ingest import rootfile

    original = rootfile._convert

    def convert(arrays: ak.Array) -> pa.Table:
        if "Jet_pt" in arrays.fields:
            raise TypeError("cannot convert this branch")
        return original(arrays)

    monkeypatch.setattr(rootfile, "_convert", convert)
    with pytest.warns(SkippedBranchWarning, match="'Jet_pt'.*cannot convert"):
        dataset = write_dataset(store, [DATA / "nano_tree.root"], "conv")
    tree = dataset.files[0].trees["Events;1"]
    assert [s["branch"] for s in tree.skipped] == ["Jet_pt"]
    assert "Jet_pt" not in tree.columns and "Jet_eta" in tree.columns


def test_unreadable_tree_and_colliding_branch(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "collide.root"
    with uproot.recreate(path) as out:
        out.mktree("T", {"event_id": np.int32, "x": np.float64})
        out["T"].extend({"event_id": np.array([7, 8], np.int32), "x": np.array([0.5, 1.5])})
        out.mktree("Broken", {"y": np.float32})
    original = uproot.reading.ReadOnlyDirectory.__getitem__

    def getitem(self: Any, where: str) -> Any:
        if where == "Broken;1":
            raise ValueError("unknown streamer")
        return original(self, where)

    monkeypatch.setattr(uproot.reading.ReadOnlyDirectory, "__getitem__", getitem)
    with pytest.warns(SkippedBranchWarning) as caught:
        dataset = write_dataset(store, [path], "collide")
    assert len(caught) == 2
    file = dataset.files[0]
    assert list(file.trees) == ["T;1"]
    broken = next(c for c in file.getSchema()["children"] if c["name"] == "Broken")
    assert "unknown streamer" in broken["skipped"] and broken["classtype"] == "TTree"
    tree = file.trees["T;1"]
    assert tree.skipped[0]["branch"] == "event_id" and "collides" in tree.skipped[0]["reason"]
    table = read_tree_back(store, tree)
    assert table.to_pydict() == {"event_id": [0, 1], "x": [0.5, 1.5]}


def test_progress_bar(store: Any, small: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    write_dataset(store, [small[0]], "quiet", progress=False)
    assert capsys.readouterr().err == ""
    write_dataset(store, [small[0]], "loud", progress=True)
    err = capsys.readouterr().err
    assert "small0.root" in err and "501/501" in err  # 500 Events + 1 Runs entries


def test_every_basket_is_decompressed_once_whatever_the_object_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyhook_dask.ingest import one_file
    from skyhook_dask.ingest.generate import generate_nanoaod

    path = generate_nanoaod(
        tmp_path / "b.root", 6_000, n_extra_branches=2, compression="zstd", events_per_basket=1_500
    )
    tree = uproot.open(path)["Events"]
    baskets = sum(b.num_baskets for b in tree.branches if b.num_baskets)
    calls = {"n": 0}
    decompress = uproot.compression.ZSTD.decompress

    def counting(self: Any, data: bytes, uncompressed_bytes: Any = None) -> bytes:
        calls["n"] += 1
        return decompress(self, data, uncompressed_bytes)

    monkeypatch.setattr(uproot.compression.ZSTD, "decompress", counting)
    monkeypatch.setattr(one_file, "READ_BYTES", 200_000)  # a few clusters per read, here
    counts = {}
    for size in (4_000, 4_000_000):  # ~60 objects, or one
        calls["n"] = 0
        ds = write_dataset(f"memory://baskets-{size}", [str(path)], "b", object_size=size)
        counts[size] = (calls["n"], len(ds.files[0].trees["Events;1"].objects))
    (small, objects), (large, one) = counts[4_000], counts[4_000_000]
    assert objects > 20 and one == 1
    # the first basket of each branch is read twice (the schema probe); every other once
    assert small == large and small <= baskets + len(tree.branches), counts


def test_object_writes_under_way_end_before_an_error_leaves() -> None:
    """Writes run beside the cutting of later objects; the first failed write raises from the
    writer, and no write is still running (or starts) once the error has left it."""
    import time

    from skyhook_dask.exceptions import StoreUnavailableError
    from skyhook_dask.ingest.writer import ObjectWriter

    store = open_store(f"memory://writes-{uuid.uuid4().hex}")
    started: list[str] = []
    ended: list[str] = []
    plain_write = store.write

    def write(name: str, data: bytes, *, exclusive: bool = False) -> None:
        started.append(name)
        time.sleep(0.02)
        try:
            if name == "obj-3":
                raise StoreUnavailableError(f"OSD gone while writing {name}")
            plain_write(name, data, exclusive=exclusive)
        finally:
            ended.append(name)

    store.write = write  # type: ignore[method-assign]
    table = pa.table({"event_id": pa.array(np.arange(100, dtype=np.int64))})
    failing = pytest.raises(StoreUnavailableError, match="obj-3")
    with failing, ObjectWriter(store, lambda seq: f"obj-{seq}", 5, "lz4") as writer:
        writer.add(table)
        writer.flush()
    assert sorted(ended) == sorted(started)  # nothing under way when the error left
    assert "obj-3" in started and len(started) < 20  # the writer stopped at the failure
    begun = list(started)
    time.sleep(0.1)
    assert started == begun
    assert all(store.stat(n).size > 0 for n in begun if n != "obj-3")

    # an error from the caller (a basket that cannot be read) while writes are under way
    started.clear()
    ended.clear()
    failing = pytest.raises(RuntimeError, match="basket")
    with failing, ObjectWriter(store, lambda seq: f"next-{seq}", 5, "lz4") as writer:
        writer.add(table)
        raise RuntimeError("bad basket")
    assert len(started) >= 2 and sorted(ended) == sorted(started)


def test_the_same_file_gives_the_same_object_bytes() -> None:
    """A re-run ingest task must meet its own earlier objects byte for byte: objects cut at
    rows that are not a multiple of 8 (bitmaps starting mid-byte) included."""
    files = [str(DATA_DIR / "nano_dimuon.root")]

    def checksums() -> list[str]:
        store = open_store(f"memory://same-{uuid.uuid4().hex}")
        dataset = write_dataset(store, files, "same", object_size=20_000, trees=["Events"],
                                progress=False)  # fmt: skip
        return [o.checksum for _f, _t, o in dataset.objects()]

    first = checksums()
    assert len(first) > 3 and checksums() == first
