"""Shared by the ingestion tests: stores and generated ROOT files, and the ground truth check
that every object read back equals what uproot + awkward read from the file."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import uproot

from skyhook_dask.catalog.model import Dataset, TreeInfo
from skyhook_dask.formats.objects import read_columns
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.storage import close_stores, open_store

SMALL = 30_000  # bytes: splits even the 10-event sample tree into several objects


def memory_store() -> Iterator[Any]:
    """A fresh, empty memory store, closed afterwards."""
    url = f"memory://ingest-{uuid.uuid4().hex}"
    yield open_store(url)
    close_stores(url)


def generated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "gen.root"
    return generate_nanoaod(path, 3000, seed=7, events_per_basket=700, compression="zlib")


def small_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
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
                    for obj, known in zip(tree.objects, tree.stats([column]), strict=True):
                        part = values[offsets[obj.first_event] : offsets[obj.stop_event]]
                        check_stats(known[column], part)
            if stats:
                for obj, known in zip(tree.objects, tree.stats(["event_id"]), strict=True):
                    ids = np.arange(obj.first_event, obj.stop_event)
                    check_stats(known["event_id"], ids)
