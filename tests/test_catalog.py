"""The catalog classes (seed API) over ingested datasets, checked against the ROOT files."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import uproot

from skyhook_dask.catalog.model import (
    Dataset,
    File,
    RootNode,
    TreeInfo,
    list_datasets,
    load_dataset,
)
from skyhook_dask.data import DATA_DIR
from skyhook_dask.exceptions import DatasetNotFoundError, ObjectFormatError, UnknownTreeError
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.storage import close_stores, open_store

DATA = DATA_DIR
SAMPLES = sorted(DATA.glob("*.root"))


@pytest.fixture(scope="module")
def catalog() -> Iterator[tuple[Any, Dataset]]:
    url = f"memory://catalog-{uuid.uuid4().hex}"
    store = open_store(url)
    write_dataset(store, SAMPLES, "nano", object_size=100_000)
    yield store, load_dataset(store.url, "nano")
    close_stores(url)


def test_dataset(catalog: tuple[Any, Dataset]) -> None:
    store, dataset = catalog
    assert dataset.name == "nano" and dataset.store is store
    files = dataset.getFiles()
    assert all(isinstance(f, File) for f in files)
    assert [f.name for f in files] == [p.name for p in SAMPLES] == [f.name for f in dataset.files]
    stored = sum(store.stat(n).size for n in store.list("nano/data/"))
    assert dataset.getSize() == dataset.get_size() == dataset.size == stored
    assert dataset.source_size == sum(p.stat().st_size for p in SAMPLES)
    assert dataset.tree_keys() == ["Events;1", "Runs;1"]
    data = [n for n in store.list("nano/data/") if not n.endswith("-stats")]
    assert sum(1 for _ in dataset.objects()) == len(data)
    assert dataset.file("nano_tree.root") is dataset.files[2] and dataset.file("1") is files[1]
    with pytest.raises(KeyError, match=r"no file 'x\.root'"):
        dataset.file("x.root")


def test_file_attributes(catalog: tuple[Any, Dataset]) -> None:
    _, dataset = catalog
    for number, (file, path) in enumerate(zip(dataset.files, SAMPLES, strict=True)):
        attributes = file.getAttributes()
        st = os.stat(path)
        assert attributes == file.get_attributes()
        assert attributes["name"] == path.name and attributes["url"] == os.fspath(path)
        assert attributes["size"] == st.st_size and attributes["file_no"] == number
        assert attributes["modification_time"] == st.st_mtime
        assert attributes["stored_size"] == sum(t.size for t in file.trees.values()) > 0
        with uproot.open(path) as root:
            assert attributes["uuid"] == str(root.file.uuid)


def test_trees_hold_schema_and_objects(catalog: tuple[Any, Dataset]) -> None:
    _, dataset = catalog
    for file, path in zip(dataset.files, SAMPLES, strict=True):
        with uproot.open(path) as root:
            for key, tree in file.trees.items():
                assert isinstance(tree, TreeInfo) and isinstance(tree.schema, pa.Schema)
                assert tree.entries == root[key].num_entries
                assert tree.columns == ["event_id", *root[key].keys()]
                assert sum(o.rows for o in tree.objects) == tree.entries
                assert tree.objects[-1].stop_event == tree.entries


def test_tree_lookup(catalog: tuple[Any, Dataset]) -> None:
    file = catalog[1].files[0]
    events = file.trees["Events;1"]
    assert file.tree("Events;1") is events and file.tree("Events") is events
    assert file.tree("Events;75") is events  # another copy's cycle: the stored one
    with pytest.raises(UnknownTreeError, match="the trees are: Events;1, Runs;1"):
        file.tree("Muons")


def test_root_nodes_mirror_the_file(catalog: tuple[Any, Dataset]) -> None:
    _, dataset = catalog
    file = dataset.files[0]
    top = file.getRoot()
    assert isinstance(top, RootNode) and top.getParent() is None
    assert top.getName() == SAMPLES[0].name and top.getClassType() == "TDirectory"
    assert top.getDataType() is None
    with uproot.open(SAMPLES[0]) as root:
        assert [c.getName() for c in top.getChildren()] == ["Events", "Runs"]
        for tree_node in top.getChildren():
            assert tree_node.getClassType() == "TTree" and tree_node.getDataType() is None
            assert tree_node.getParent() is top and tree_node.key == f"{tree_node.name};1"
            source = root[tree_node.getName()]
            branches = tree_node.getChildren()
            assert [b.getName() for b in branches] == list(source.keys())
            for branch in branches:
                assert branch.getClassType() == branch.get_class_type() == "TBranch"
                assert branch.getDataType() == source[branch.getName()].typename
                assert branch.getParent() is tree_node and branch.getChildren() == []
                assert branch.column == branch.getName() and branch.skipped is None
    muon_pt = next(n for n in top.walk() if n.getName() == "Muon_pt")
    assert muon_pt.getDataType() == "float[]"
    assert muon_pt.arrow_type == "large_list<item: float not null>"
    assert "TBranch: Muon_pt, float[]" in repr(muon_pt)


def test_schema_is_a_nested_dict(catalog: tuple[Any, Dataset]) -> None:
    file = catalog[1].files[2]
    schema = file.getSchema()
    assert schema == file.get_schema()
    json.dumps(schema)  # plain data
    assert schema["name"] == "nano_tree.root" and schema["classtype"] == "TDirectory"
    events = schema["children"][0]
    assert (events["name"], events["classtype"], events["entries"]) == ("Events", "TTree", 10)
    branch = events["children"][0]
    assert set(branch) >= {"name", "classtype", "datatype", "children", "arrow_type"}
    schema["children"].clear()  # a copy: the file is unchanged
    assert file.getSchema()["children"]


def test_list_and_load(catalog: tuple[Any, Dataset]) -> None:
    store, _ = catalog
    assert list_datasets(store) == ["nano"]
    assert list_datasets(store.url) == ["nano"]
    with pytest.raises(DatasetNotFoundError, match="'nanoo' does not exist; did you mean 'nano'"):
        load_dataset(store, "nanoo")


def test_bad_manifests(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    store.write("broken/manifest.json", b"{not json")
    with pytest.raises(ObjectFormatError, match=r"broken/manifest\.json .* not valid JSON"):
        load_dataset(store, "broken")
    store.write("foreign/manifest.json", json.dumps({"format": "other"}).encode())
    with pytest.raises(ObjectFormatError, match="not a skyhook dataset manifest"):
        load_dataset(store, "foreign")
    future = {"format": "skyhook-dataset", "version": 99, "files": []}
    store.write("future/manifest.json", json.dumps(future).encode())
    with pytest.raises(ObjectFormatError, match="version 99"):
        load_dataset(store, "future")
    store.write("nested/deeper/manifest.json", b"{}")
    assert list_datasets(store) == ["broken", "foreign", "future"]
    close_stores(store.url)
