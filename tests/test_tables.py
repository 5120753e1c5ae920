"""Dataset schemas (addDatasetSchema) and Arrow tables written into them (writeArrowTable)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from skyhook_dask.catalog.model import list_datasets, load_dataset
from skyhook_dask.exceptions import DatasetExistsError, InvalidNameError, SchemaError
from skyhook_dask.formats import manifest as mf
from skyhook_dask.formats.objects import read_columns
from skyhook_dask.ingest.pipeline import add_dataset_schema, write_arrow_table
from skyhook_dask.ingest.tables import parse_qastle, selection_result
from skyhook_dask.storage import close_stores, open_store

# The dataset schema of the seed README's "write dataset" example.
SEED_SCHEMA = r"""{
	"did": "222:wfe.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.merge.DAOD",
	"selection": "(call ResultTTree (call Select (call Select (call EventDataset (list 'localds:bogus')) (lambda (list e) (list (call (attr e 'Electrons') 'Electrons') (call (attr e 'Muons') 'Muons')))) (lambda (list e) (list (call (attr (subscript e 0) 'Select') (lambda (list ele) (call (attr ele 'e')))) (call (attr (subscript e 0) 'Select') (lambda (list ele) (call (attr ele 'pt')))) (call (attr (subscript e 0) 'Select') (lambda (list ele) (call (attr ele 'phi')))) (call (attr (subscript e 0) 'Select') (lambda (list ele) (call (attr ele 'eta')))) (call (attr (subscript e 1) 'Select') (lambda (list mu) (call (attr mu 'e')))) (call (attr (subscript e 1) 'Select') (lambda (list mu) (call (attr mu 'pt')))) (call (attr (subscript e 1) 'Select') (lambda (list mu) (call (attr mu 'phi')))) (call (attr (subscript e 1) 'Select') (lambda (list mu) (call (attr mu 'eta'))))))) (list 'e_E' 'e_pt' 'e_phi' 'e_eta' 'mu_E' 'mu_pt' 'mu_phi' 'mu_eta') 'forkme' 'dude.root')",
	"image": "sslhep/servicex",
	"result-destination": "kafka",
	"kafka": {
		"broker": "kafka-inc:0000"
	},
	"chunk-size": 1000,
	"workers": 17
}"""  # noqa: E501
SEED_NAME = "222:wfe.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.merge.DAOD"
SEED_COLUMNS = ["e_E", "e_pt", "e_phi", "e_eta", "mu_E", "mu_pt", "mu_phi", "mu_eta"]


@pytest.fixture
def store() -> Iterator[Any]:
    url = f"memory://tables-{uuid.uuid4().hex}"
    yield open_store(url)
    close_stores(url)


def seed_frame(start: int = 1, rows: int = 3) -> pd.DataFrame:
    """The seed example's frame (columns valued start.., start+rows.., ...)."""
    return pd.DataFrame({c: np.arange(rows) + start + i * rows for i, c in enumerate(SEED_COLUMNS)})


def read_objects(store: Any, names: list[str]) -> pa.Table:
    return pa.concat_tables([read_columns(store.read(n), name=n) for n in names])


def test_selection_columns_of_the_seed_example() -> None:
    assert selection_result(json.loads(SEED_SCHEMA)["selection"]) == (SEED_COLUMNS, "forkme")
    assert parse_qastle("(call f (list 'a b' \"c\") x)") == ["call", "f", ["list", "a b", "c"], "x"]
    assert selection_result("(call Select x)") == (None, None)
    assert selection_result("(unbalanced") == (None, None)


def test_seed_example_round_trip(store: Any) -> None:
    name = add_dataset_schema(store, SEED_SCHEMA)
    assert name == SEED_NAME
    stored = json.loads(store.read(f"{SEED_NAME}/schema.json"))
    assert stored["columns"] == SEED_COLUMNS and stored["tree"] == "forkme"
    assert stored["document"] == json.loads(SEED_SCHEMA)
    assert load_dataset(store, SEED_NAME).files == []  # exists, empty, right away
    frame = seed_frame()
    objs = write_arrow_table(store, pa.Table.from_pandas(frame), SEED_NAME)
    assert objs and all(o.startswith(f"{SEED_NAME}/data/") for o in objs)
    back = read_objects(store, objs)
    assert back.column_names == ["event_id", *SEED_COLUMNS]
    assert back.column("event_id").to_pylist() == [0, 1, 2]
    for column in SEED_COLUMNS:
        assert back.column(column).to_pylist() == frame[column].tolist()
    dataset = load_dataset(store, SEED_NAME)
    (file,) = dataset.getFiles()
    assert file.name == "table-0" and list(file.trees) == ["forkme;1"]
    tree = file.trees["forkme;1"]
    assert tree.entries == 3 and [o.name for o in tree.objects] == objs
    assert tree.stats(["mu_eta"])[0]["mu_eta"] == {"nulls": 0, "min": 22, "max": 24}
    stored = mf.referenced_objects(dataset.manifest)
    assert stored == set(objs) and tree.object_stats is None  # a few objects: stats inline
    assert dataset.getSize() == sum(store.stat(o).size for o in stored)


def test_tables_append_and_split_by_size(store: Any) -> None:
    add_dataset_schema(store, SEED_SCHEMA)
    write_arrow_table(store, pa.Table.from_pandas(seed_frame()), SEED_NAME, "first")
    big = seed_frame(start=100, rows=5000)
    objs = write_arrow_table(store, pa.Table.from_pandas(big), SEED_NAME, object_size=50_000)
    assert len(objs) >= 5
    back = read_objects(store, objs)
    assert back.column("event_id").to_pylist() == list(range(5000))
    assert back.column("e_pt").to_pylist() == big["e_pt"].tolist()
    files = load_dataset(store, SEED_NAME).getFiles()
    assert [f.name for f in files] == ["first", "table-1"]
    objects = files[1].trees["forkme;1"].objects
    assert [o.first_event for o in objects[1:]] == [o.stop_event for o in objects[:-1]]
    with pytest.raises(SchemaError, match="already has a table named 'first'"):
        write_arrow_table(store, pa.Table.from_pandas(seed_frame()), SEED_NAME, "first")
    assert len(load_dataset(store, SEED_NAME).files) == 2
    assert set(store.list(f"{SEED_NAME}/data/")) == mf.referenced_objects(
        load_dataset(store, SEED_NAME).manifest
    )


def test_table_columns_are_checked(store: Any) -> None:
    add_dataset_schema(store, SEED_SCHEMA)
    frame = seed_frame().drop(columns=["mu_pt"]).assign(extra=1)
    with pytest.raises(SchemaError, match=r"missing columns \['mu_pt'\].*unexpected.*'extra'"):
        write_arrow_table(store, pa.Table.from_pandas(frame), SEED_NAME)
    reordered = seed_frame()[list(reversed(SEED_COLUMNS))].assign(event_id=[10, 11, 12])
    objs = write_arrow_table(store, pa.Table.from_pandas(reordered), SEED_NAME)
    back = read_objects(store, objs)
    assert back.column_names == ["event_id", *SEED_COLUMNS]  # the schema's order
    assert back.column("event_id").to_pylist() == [10, 11, 12]
    with pytest.raises(SchemaError, match="event_id column is not integer"):
        bad = seed_frame().assign(event_id=["a", "b", "c"])
        write_arrow_table(store, pa.Table.from_pandas(bad), SEED_NAME)
    left = set(store.list(f"{SEED_NAME}/data/"))  # nothing left behind
    assert left == mf.referenced_objects(load_dataset(store, SEED_NAME).manifest) >= set(objs)


def test_unregistered_schema(store: Any) -> None:
    add_dataset_schema(store, SEED_SCHEMA)
    with pytest.raises(SchemaError, match=r"no dataset schema named.*did you mean"):
        write_arrow_table(store, pa.table({"x": [1]}), SEED_NAME[:-1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"did": None}, r"\$: 'did' is a required property"),
        ({"selection": 5}, r"\$\['selection'\]: 5 is not of type 'string'"),
        ({"chunk-size": "big"}, r"\$\['chunk-size'\]: 'big' is not of type 'integer'"),
        ({"workers": 0}, r"\$\['workers'\]: 0 is less than the minimum of 1"),
        ({"did": "a/b"}, r"'did' cannot name a dataset"),
    ],
)
def test_servicex_schema_validation(store: Any, change: dict[str, Any], message: str) -> None:
    document = json.loads(SEED_SCHEMA)
    for key, value in change.items():
        if value is None:
            del document[key]
        else:
            document[key] = value
    with pytest.raises(SchemaError, match=message):
        add_dataset_schema(store, json.dumps(document))
    assert list_datasets(store) == []


def test_invalid_json_and_generic_schemas(store: Any) -> None:
    with pytest.raises(SchemaError, match="not valid JSON: line 1 column 2"):
        add_dataset_schema(store, "{oops")
    with pytest.raises(SchemaError, match="'name' is a required property"):
        add_dataset_schema(store, '{"did": "x"}', data_type="generic")
    name = add_dataset_schema(
        store, {"name": "plain", "columns": ["a", "b"], "tree": "T"}, data_type="generic"
    )
    assert name == "plain"
    objs = write_arrow_table(store, pa.table({"b": [1.5, 2.5], "a": [1, 2]}), "plain", "t")
    assert read_objects(store, objs).column_names == ["event_id", "a", "b"]
    assert list(load_dataset(store, "plain").files[0].trees) == ["T;1"]
    free = add_dataset_schema(store, {"name": "free"}, data_type="generic")
    objs = write_arrow_table(store, pa.table({"anything": ["x", "y"]}), free)
    assert read_objects(store, objs).column("anything").to_pylist() == ["x", "y"]
    with pytest.raises(InvalidNameError):
        write_arrow_table(store, pa.table({"anything": ["x"]}), free, "bad/name")


def test_reregistering_a_schema(store: Any) -> None:
    assert add_dataset_schema(store, SEED_SCHEMA) == SEED_NAME
    assert add_dataset_schema(store, SEED_SCHEMA) == SEED_NAME  # the same: a no-op
    changed = json.loads(SEED_SCHEMA) | {"workers": 3}
    with pytest.raises(DatasetExistsError, match="different schema"):
        add_dataset_schema(store, changed)
    add_dataset_schema(store, changed, overwrite=True)
    stored = json.loads(store.read(f"{SEED_NAME}/schema.json"))
    assert stored["document"]["workers"] == 3


def test_failed_write_leaves_nothing(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from skyhook_dask.ingest import tables

    add_dataset_schema(store, SEED_SCHEMA)
    kept = write_arrow_table(store, pa.Table.from_pandas(seed_frame()), SEED_NAME)

    def vanished(*args: Any) -> None:
        raise RuntimeError("objects vanished")

    monkeypatch.setattr(tables, "check_objects_present", vanished)
    with pytest.raises(RuntimeError, match="vanished"):
        write_arrow_table(store, pa.Table.from_pandas(seed_frame(rows=50)), SEED_NAME)
    dataset = load_dataset(store, SEED_NAME)
    assert set(store.list(f"{SEED_NAME}/data/")) == mf.referenced_objects(dataset.manifest)
    assert len(dataset.files) == 1 and {o.name for _, _, o in dataset.objects()} == set(kept)
    assert not store.exists(f"{SEED_NAME}/manifest.lock")


def test_half_floats_are_stored_as_float32(store: Any) -> None:
    add_dataset_schema(store, '{"name": "half", "columns": ["h", "hs"]}', data_type="plain")
    halves = np.array([0.5, -1.25, 2048.0, np.nan], dtype=np.float16)
    table = pa.table(
        {"h": pa.array(halves), "hs": pa.array([[h, h] for h in halves], pa.list_(pa.float16()))}
    )
    (name,) = write_arrow_table(store, table, "half")
    back = read_objects(store, [name])
    assert back.schema.field("h").type == pa.float32()
    assert back.schema.field("hs").type == pa.list_(pa.float32())
    np.testing.assert_array_equal(back.column("h").to_numpy(), halves.astype(np.float32))
    (known,) = load_dataset(store, "half").getFiles()[0].trees["table;1"].stats(["h"])
    assert known["h"] == {"nulls": 0}  # NaN: no bounds that hold every value
