"""ROOT ingestion: every object read back equals what uproot + awkward read from the file."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import re
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import uproot

from skyhook_dask import manifest as mf
from skyhook_dask.backends import close_stores, open_store
from skyhook_dask.catalog import Dataset, TreeInfo, list_datasets, load_dataset
from skyhook_dask.data import DATA_DIR
from skyhook_dask.exceptions import (
    DatasetExistsError,
    DatasetNotFoundError,
    IngestError,
    InvalidNameError,
)
from skyhook_dask.generate import generate_nanoaod
from skyhook_dask.ingest import (
    IngestOptions,
    SkippedBranchWarning,
    collect_garbage,
    ingest_file,
    new_ingest_id,
    publish,
    write_dataset,
)
from skyhook_dask.objects import read_columns
from skyhook_dask.writer import dataset_lock

DATA = DATA_DIR
SAMPLES = sorted(DATA.glob("*.root"))
SMALL = 30_000  # bytes: splits even the 10-event sample tree into several objects


@pytest.fixture
def store() -> Iterator[Any]:
    url = f"memory://ingest-{uuid.uuid4().hex}"
    yield open_store(url)
    close_stores(url)


@pytest.fixture(params=["memory", "file"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = (
        f"memory://ingest-{uuid.uuid4().hex}"
        if request.param == "memory"
        else (tmp_path / "store").as_uri()
    )
    yield open_store(url)
    close_stores(url)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "gen.root"
    return generate_nanoaod(path, 3000, seed=7, events_per_basket=700, compression="zlib")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small generated files (500 events each), for the publishing mechanics."""
    folder = tmp_path_factory.mktemp("small")
    return [generate_nanoaod(folder / f"small{i}.root", 500, seed=i) for i in range(3)]


# --- ground truth ------------------------------------------------------------------------------


def read_tree_back(store: Any, tree: TreeInfo) -> pa.Table:
    """Every object of a tree, checked against its manifest entry, concatenated."""
    tables = []
    expected_first = 0
    for obj in tree.objects:
        data = store.read(obj.name)
        assert obj.bytes == len(data) == store.stat(obj.name).size
        assert obj.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
        table = read_columns(data, name=obj.name)
        assert table.schema.equals(tree.schema)
        assert obj.first_event == expected_first
        assert obj.rows == table.num_rows == obj.stop_event - obj.first_event > 0
        assert obj.uncompressed_bytes == table.nbytes
        ids = table.column("event_id").to_numpy()
        np.testing.assert_array_equal(ids, np.arange(obj.first_event, obj.stop_event))
        tables.append(table)
        expected_first = obj.stop_event
    assert expected_first == tree.entries
    return pa.concat_tables(tables) if tables else tree.schema.empty_table()


def numpy_parts(truth: ak.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(offsets, leaf values) of a flat or singly-jagged numeric column; None otherwise."""
    if truth.fields or truth.ndim > 2:
        return None
    if truth.ndim == 2:
        counts = ak.to_numpy(ak.num(truth))
        return np.concatenate([[0], np.cumsum(counts)]), ak.to_numpy(ak.flatten(truth))
    return np.arange(len(truth) + 1), ak.to_numpy(truth)


def assert_column_equal(got: pa.ChunkedArray, truth: ak.Array, column: str) -> None:
    """Values (and, for jagged columns, list lengths) equal, with the same dtype."""
    got = got.combine_chunks()
    parts = numpy_parts(truth)
    if parts is None:
        got_ak = ak.from_arrow(got, highlevel=True)
        assert ak.array_equal(got_ak, truth, equal_nan=True, dtype_exact=True), column
        return
    offsets, expected = parts
    if truth.ndim == 2:
        assert pa.types.is_large_list(got.type), column
        np.testing.assert_array_equal(got.offsets.to_numpy(), offsets, err_msg=column)
        got = pc.list_flatten(got)
    values = got.to_numpy(zero_copy_only=False)
    assert values.dtype == expected.dtype, column
    np.testing.assert_array_equal(values, expected, err_msg=column)


def check_stats(stats: dict[str, Any], values: np.ndarray) -> None:
    assert stats["nulls"] == 0
    if values.dtype.kind not in "biuf" or len(values) == 0 or not np.all(np.isfinite(values)):
        assert "min" not in stats and "max" not in stats
    else:
        assert stats["min"] == values.min() and stats["max"] == values.max()
        if values.dtype.kind == "b":
            assert isinstance(stats["min"], bool)


def assert_matches_root(store: Any, dataset: Dataset, path: Path, stats: bool = True) -> None:
    """The dataset's file for ``path`` holds exactly what uproot reads from it."""
    (file,) = [f for f in dataset.files if f.name == path.name]
    with uproot.open(path) as root:
        tree_keys = [k for k, c in root.classnames().items() if c == "TTree"]
        assert sorted(file.trees) == sorted(tree_keys)
        for key, tree in file.trees.items():
            source = root[key]
            assert tree.entries == source.num_entries
            table = read_tree_back(store, tree)
            columns = tree.columns[1:]
            assert not tree.skipped
            assert columns == list(source.keys())
            truth = source.arrays(columns)
            for column in columns:
                assert_column_equal(table.column(column), truth[column], column)
                parts = numpy_parts(truth[column])
                if stats and parts is not None:
                    offsets, values = parts
                    for obj in tree.objects:
                        part = values[offsets[obj.first_event] : offsets[obj.stop_event]]
                        check_stats(obj.stats[column], part)
            if stats:
                for obj in tree.objects:
                    ids = np.arange(obj.first_event, obj.stop_event)
                    check_stats(obj.stats["event_id"], ids)


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
    from skyhook_dask import rootfile

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


# --- sources -----------------------------------------------------------------------------------


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """http.server plus single byte-range requests (what uproot's remote reads use)."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_head(self) -> io.BytesIO | None:  # type: ignore[override]
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        data = Path(path).read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            body = data[start : int(match[2]) + 1 if match[2] else len(data)]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    handler = functools.partial(RangeHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_http_url(store: Any, http_base: str) -> None:
    path = DATA / "nano_tree.root"
    url = f"{http_base}/{path.name}"
    dataset = write_dataset(store, [url], "remote", object_size=SMALL)
    attributes = dataset.files[0].getAttributes()
    assert attributes["url"] == url and attributes["name"] == path.name
    assert attributes["size"] == path.stat().st_size and attributes["access_time"] is None
    assert_matches_root(store, dataset, path)


def test_file_url(store: Any, small: list[Path]) -> None:
    path = small[0]
    dataset = write_dataset(store, [path.as_uri()], "local-url", object_size=SMALL)
    assert dataset.files[0].getAttributes()["size"] == path.stat().st_size
    assert_matches_root(store, dataset, path, stats=False)


@pytest.mark.parametrize("kind", ["missing", "not-root", "http-404"])
def test_unreadable_sources_raise_ingest_error(
    store: Any, tmp_path: Path, http_base: str, small: list[Path], kind: str
) -> None:
    if kind == "missing":
        url = str(tmp_path / "absent.root")
    elif kind == "not-root":
        url = str(tmp_path / "text.root")
        Path(url).write_bytes(b"this is not a ROOT file" * 100)
    else:
        url = f"{http_base}/absent.root"
    with pytest.raises(IngestError) as raised:
        write_dataset(store, [small[0], url], "bad")
    assert url in str(raised.value)
    assert "bad" not in list_datasets(store)
    assert not list(store.list("bad/"))  # the first file's objects were removed again


def test_invalid_dataset_names(store: Any, small: list[Path]) -> None:
    for name in ("", "a/b", "..", "with space"):
        with pytest.raises(InvalidNameError):
            write_dataset(store, [small[0]], name)


# --- publishing, crashes, re-ingest ------------------------------------------------------------


def test_existing_dataset_needs_overwrite(store: Any, small: list[Path], generated: Path) -> None:
    first = write_dataset(store, [small[0]], "ds", object_size=SMALL)
    old_objects = set(store.list("ds/data/"))
    with pytest.raises(DatasetExistsError, match="overwrite=True"):
        write_dataset(store, [generated], "ds")
    second = write_dataset(store, [generated], "ds", overwrite=True, object_size=200_000)
    assert second.ingest_id != first.ingest_id
    assert load_dataset(store, "ds").files[0].name == generated.name
    now = set(store.list("ds/data/"))
    assert not now & old_objects  # the replaced objects are gone
    assert now == {o.name for _, _, o in second.objects()}
    assert_matches_root(store, second, generated, stats=False)


def test_crash_before_publish_leaves_nothing_visible(store: Any, small: list[Path]) -> None:
    path = small[0]
    ingest_id = new_ingest_id()
    entry = ingest_file(store.url, str(path), "crashy", ingest_id, 0, IngestOptions(SMALL))
    written = set(store.list("crashy/data/"))
    assert written == {o["name"] for t in entry["trees"] for o in t["objects"]}
    assert "crashy" not in list_datasets(store)
    with pytest.raises(DatasetNotFoundError):
        load_dataset(store, "crashy")
    # the re-run publishes, and collects the crashed attempt's objects
    dataset = write_dataset(store, [path], "crashy", object_size=SMALL)
    assert set(store.list("crashy/data/")) == {o.name for _, _, o in dataset.objects()}
    assert not written & set(store.list("crashy/data/"))
    assert_matches_root(store, dataset, path, stats=False)


def test_failure_during_publish_cleans_up(
    store: Any, small: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyhook_dask import ingest

    def broken_publish(*args: Any, **kwargs: Any) -> Dataset:
        raise RuntimeError("power cut")

    monkeypatch.setattr(ingest, "publish", broken_publish)
    with pytest.raises(RuntimeError, match="power cut"):
        write_dataset(store, small, "cut", object_size=SMALL)
    assert list(store.list("cut/")) == []
    monkeypatch.undo()
    assert len(write_dataset(store, small, "cut").files) == 3


def test_decomposed_ingest_and_publish(store: Any, small: list[Path]) -> None:
    ingest_id = new_ingest_id()
    options = IngestOptions(object_size=SMALL, compression=None)
    entries = [
        ingest_file(store, str(path), "parts", ingest_id, number, options)
        for number, path in reversed(list(enumerate(small)))
    ]
    dataset = publish(store.url, "parts", entries, ingest_id)
    assert [f.name for f in dataset.files] == [p.name for p in small]
    for path in small:
        assert_matches_root(store, dataset, path, stats=False)
    with pytest.raises(DatasetExistsError):
        publish(store, "parts", entries, ingest_id)
    with pytest.raises(IngestError, match="repeat a file_no"):
        publish(store, "parts", entries + entries[:1], ingest_id, overwrite=True)


def test_publish_refuses_vanished_objects(store: Any, small: list[Path]) -> None:
    ingest_id = new_ingest_id()
    entry = ingest_file(store, str(small[0]), "gone", ingest_id, 0)
    store.delete(entry["trees"][0]["objects"][0]["name"])
    with pytest.raises(IngestError, match="vanished"):
        publish(store, "gone", [entry], ingest_id)
    assert "gone" not in list_datasets(store)


def test_collect_garbage(store: Any, small: list[Path]) -> None:
    dataset = write_dataset(store, [small[0]], "gc")
    stray = "gc/data/20000101T000000Z-00000000/f0000-t000-000000"
    store.write(stray, b"left over")
    assert collect_garbage(store, "gc") == [stray]
    assert set(store.list("gc/data/")) == {o.name for _, _, o in dataset.objects()}


def test_dataset_lock_waits_and_breaks_stale_locks(store: Any) -> None:
    with (
        dataset_lock(store, "locked"),
        pytest.raises(DatasetExistsError, match="another writer"),
        dataset_lock(store, "locked", timeout=0.05),
    ):
        pass
    assert not store.exists("locked/manifest.lock")
    stale = {"token": "x", "time": 0.0, "host": "gone", "pid": 1}
    store.write("locked/manifest.lock", json.dumps(stale).encode())
    with dataset_lock(store, "locked", timeout=0.05):
        assert json.loads(store.read("locked/manifest.lock"))["token"] != "x"


def test_progress_bar(store: Any, small: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    write_dataset(store, [small[0]], "quiet", progress=False)
    assert capsys.readouterr().err == ""
    write_dataset(store, [small[0]], "loud", progress=True)
    err = capsys.readouterr().err
    assert "small0.root" in err and "501/501" in err  # 500 Events + 1 Runs entries
