"""Dataset schemas (``addDatasetSchema``) and writing Arrow tables into them (``writeArrowTable``).

A dataset schema is a JSON document. For ``data_type="servicex"`` it is a ServiceX transform
request: ``did`` (the dataset name) and ``selection`` (a qastle expression) are required;
``image``, ``result-destination``, ``chunk-size``, ``workers`` ... are optional. When the
selection ends in ``(call ResultTTree <source> (list 'col' ...) 'tree' 'file')``, its column
list and tree name are extracted and tables written later must have exactly those columns. For
any other ``data_type`` the document needs ``name`` and may list ``columns`` and ``tree``.

Stored as ``{name}/schema.json``::

    {"format": "skyhook-schema", "version": 1, "name", "data_type",
     "columns": [...] or null, "tree": "forkme" or null, "document": {the JSON given}}

Registering a schema also publishes an empty manifest, so the dataset exists (with no files)
right away. Each written table is appended to the manifest as a pseudo-file named after the
table, holding one tree (``"<tree>;1"``, the schema's tree name, else ``"table;1"``); its
branch nodes carry the Arrow type as their datatype, since such data has no ROOT type.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from typing import Any

import jsonschema
import numpy as np
import pyarrow as pa

from .. import config
from ..exceptions import DatasetExistsError, InvalidNameError, ObjectNotFoundError, SchemaError
from ..formats import manifest as mf
from ..formats.names import validate_name
from ..formats.objects import EVENT_ID
from ..storage import ObjectStore, open_store
from .commit import (
    Manifest,
    check_objects_present,
    commit,
    dataset_lock,
    discard_objects,
    ingest_under_way,
    read_manifest,
)
from .writer import ObjectWriter, rows_per_object

SCHEMA_FORMAT = "skyhook-schema"
DEFAULT_TREE = "table"

SERVICEX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["did", "selection"],
    "properties": {
        "did": {"type": "string", "minLength": 1},
        "selection": {"type": "string", "minLength": 1},
        "image": {"type": "string"},
        "result-destination": {"type": "string"},
        "result-format": {"type": "string"},
        "chunk-size": {"type": "integer", "minimum": 1},
        "workers": {"type": "integer", "minimum": 1},
        "kafka": {"type": "object", "properties": {"broker": {"type": "string"}}},
    },
}

GENERIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "tree": {"type": "string", "minLength": 1},
        "columns": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "uniqueItems": True,
        },
    },
}


# --- qastle selections -------------------------------------------------------------------------


class _Quoted(str):
    """A quoted string in a qastle expression (as opposed to a bare atom)."""


_TOKEN = re.compile(r"""\s*(?:(\()|(\))|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^\s()'"]+))""")


def parse_qastle(text: str) -> Any:
    """A qastle s-expression as nested lists of atoms (str) and quoted strings (_Quoted)."""
    stack: list[list[Any]] = [[]]
    pos = 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"unexpected character at position {pos}")
        pos = match.end()
        opening, closing, single, double, atom = match.groups()
        if opening:
            stack.append([])
        elif closing:
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' at position {pos - 1}")
            done = stack.pop()
            stack[-1].append(done)
        elif atom is not None:
            stack[-1].append(atom)
        else:
            stack[-1].append(_Quoted(single if single is not None else double))
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ValueError("unbalanced parentheses or more than one expression")
    return stack[0][0]


def selection_result(selection: str) -> tuple[list[str] | None, str | None]:
    """The column names and tree name of a selection's ``Result...`` call, if it has one."""
    try:
        tree = parse_qastle(selection)
    except ValueError:
        return None, None
    todo = [tree]
    while todo:
        node = todo.pop()
        if not isinstance(node, list):
            continue
        if len(node) >= 4 and node[0] == "call" and str(node[1]).startswith("Result"):
            columns = node[3]
            name = node[4] if len(node) > 4 and isinstance(node[4], _Quoted) else None
            if isinstance(columns, _Quoted):
                return [str(columns)], name
            if (
                isinstance(columns, list)
                and columns[:1] == ["list"]
                and all(isinstance(c, _Quoted) for c in columns[1:])
            ):
                return [str(c) for c in columns[1:]], name
        todo.extend(reversed(node))
    return None, None


# --- schemas -----------------------------------------------------------------------------------


def _parse_document(schema_json: str | bytes | dict[str, Any]) -> Any:
    if isinstance(schema_json, dict):
        return schema_json
    try:
        return json.loads(schema_json)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"the dataset schema is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc


def _validate(document: Any, data_type: str) -> None:
    rules = SERVICEX_SCHEMA if data_type == "servicex" else GENERIC_SCHEMA
    validator = jsonschema.Draft202012Validator(rules)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            "at $" + "".join(f"[{p!r}]" for p in e.absolute_path) + f": {e.message}" for e in errors
        ]
        raise SchemaError(f"the {data_type} dataset schema is invalid:\n  " + "\n  ".join(lines))


def _stored_schema(document: dict[str, Any], data_type: str) -> dict[str, Any]:
    name = document["did"] if data_type == "servicex" else document["name"]
    field = "did" if data_type == "servicex" else "name"
    try:
        mf.validate_dataset_name(name)
    except InvalidNameError as exc:
        raise SchemaError(f"the schema's {field!r} cannot name a dataset: {exc}") from exc
    if data_type == "servicex":
        columns, tree = selection_result(document["selection"])
    else:
        columns, tree = document.get("columns"), document.get("tree")
    return {
        "format": SCHEMA_FORMAT,
        "version": 1,
        "name": name,
        "data_type": data_type,
        "columns": columns,
        "tree": tree,
        "document": document,
    }


def add_dataset_schema(
    store: ObjectStore | str,
    schema_json: str | bytes | dict[str, Any],
    data_type: str = "servicex",
    *,
    overwrite: bool = False,
) -> str:
    """Register a dataset schema; returns the dataset name (``did`` for servicex, else ``name``).

    Registering the same document again is a no-op; a different one raises DatasetExistsError
    unless ``overwrite=True``.
    """
    store = open_store(store) if isinstance(store, str) else store
    document = _parse_document(schema_json)
    _validate(document, data_type)
    record = _stored_schema(document, data_type)
    name = record["name"]
    with dataset_lock(store, name):
        try:
            current = json.loads(store.read(mf.schema_name(name)))
        except ObjectNotFoundError:
            current = None
        if current is not None and current != record and not overwrite:
            raise DatasetExistsError(
                f"dataset {name!r} already has a different schema; pass overwrite=True to "
                "replace it"
            )
        store.write(mf.schema_name(name), json.dumps(record).encode())
    manifest = read_manifest(store, name)
    if manifest is None or manifest.get("schema") is None:

        def change(current: Manifest | None) -> Manifest:
            current = current or mf.new_manifest(name, mf.new_ingest_id())
            current["schema"] = mf.schema_name(name)
            return current

        commit(store, name, change, append=True)
    return str(name)


def load_schema(store: ObjectStore, name: str) -> dict[str, Any]:
    """The stored schema record of dataset ``name``; SchemaError (with close names) if none."""
    mf.validate_dataset_name(name)
    try:
        return dict(json.loads(store.read(mf.schema_name(name))))
    except ObjectNotFoundError:
        suffix = "/" + mf.SCHEMA
        known = [n[: -len(suffix)] for n in store.list("") if n.endswith(suffix)]
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise SchemaError(
            f"no dataset schema named {name!r} is registered; call addDatasetSchema first{hint}"
        ) from None


# --- tables ------------------------------------------------------------------------------------


def _conform(table: pa.Table, record: dict[str, Any]) -> pa.Table:
    """``event_id`` first (added if absent), then the schema's columns in its order."""
    # pandas' index columns are artefacts of Table.from_pandas, not data.
    names = [n for n in table.column_names if not n.startswith("__index_level_")]
    if len(set(names)) != len(names):
        raise SchemaError(f"the table repeats a column name: {names}")
    data = [n for n in names if n != EVENT_ID]
    expected = record.get("columns")
    if expected is not None:
        missing = [c for c in expected if c not in data]
        extra = [c for c in data if c not in expected]
        if missing or extra:
            raise SchemaError(
                f"the table does not fit the schema of dataset {record['name']!r}: "
                f"missing columns {missing}, unexpected columns {extra}"
            )
        data = list(expected)
    if EVENT_ID in names:
        try:
            event_id = table.column(EVENT_ID).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(f"the table's {EVENT_ID} column is not integer: {exc}") from exc
    else:
        event_id = pa.array(np.arange(table.num_rows, dtype=np.int64))
    # Half floats become float32, as ROOT's Float16_t reads: Arrow compute cannot filter them.
    columns = [_widen_half_floats(table.column(n)) for n in data]
    fields = [pa.field(EVENT_ID, pa.int64(), nullable=False)] + [
        table.schema.field(n).with_type(c.type) for n, c in zip(data, columns, strict=True)
    ]
    return pa.Table.from_arrays([event_id, *columns], schema=pa.schema(fields))


def _widen_half_floats(column: pa.ChunkedArray) -> pa.ChunkedArray:
    wide = _without_half_floats(column.type)
    return column if wide == column.type else column.cast(wide)


def _without_half_floats(kind: pa.DataType) -> pa.DataType:
    """``kind`` with float16, also as list elements, replaced by float32."""
    if pa.types.is_float16(kind):
        return pa.float32()
    if pa.types.is_large_list(kind):
        return pa.large_list(_without_half_floats(kind.value_type))
    if pa.types.is_list(kind):
        return pa.list_(_without_half_floats(kind.value_type))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(_without_half_floats(kind.value_type), kind.list_size)
    return kind


def _file_entry(
    table: pa.Table,
    name: str,
    tree: str,
    file_no: int,
    ingest_id: str,
    writer: ObjectWriter,
    object_stats: dict[str, Any] | None,
) -> dict[str, Any]:
    key = f"{tree};1"
    branches = [
        {
            "name": f.name,
            "classtype": "TBranch",
            "datatype": str(f.type),
            "children": [],
            "column": f.name,
            "arrow_type": str(f.type),
        }
        for f in table.schema
        if f.name != EVENT_ID
    ]
    tree_node = {
        "name": tree,
        "classtype": "TTree",
        "datatype": None,
        "children": branches,
        "key": key,
        "entries": table.num_rows,
        "ingested": True,
    }
    return {
        "file_no": file_no,
        "name": name,
        "url": None,
        "size": None,
        "access_time": None,
        "modification_time": time.time(),
        "ingest_id": ingest_id,
        "root": {
            "name": name,
            "classtype": "TDirectory",
            "datatype": None,
            "children": [tree_node],
        },
        "trees": [
            {
                "key": key,
                "name": tree,
                "cycle": 1,
                "path": tree,
                "entries": table.num_rows,
                "schema": mf.encode_schema(table.schema),
                "skipped": [],
                "objects": writer.objects,
                "object_stats": object_stats,
            }
        ],
    }


def write_arrow_table(
    store: ObjectStore | str,
    table: pa.Table | pa.RecordBatch,
    data_schema_name: str,
    table_name: str = "",
    *,
    object_size: int | None = None,
    compression: str | None = "lz4",
) -> list[str]:
    """Append a table to a dataset with a registered schema; returns the object names written."""
    store = open_store(store) if isinstance(store, str) else store
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"write_arrow_table needs a pyarrow Table, not {type(table).__name__}")
    record = load_schema(store, data_schema_name)
    if table_name:
        validate_name(table_name, "table name")
        if "/" in table_name:
            raise InvalidNameError(f"table name {table_name!r} may not contain '/'")
    table = _conform(table, record)
    tree = record.get("tree") or DEFAULT_TREE
    current = read_manifest(store, data_schema_name)
    file_no = max((f["file_no"] for f in current["files"]), default=-1) + 1 if current else 0
    ingest_id = mf.new_ingest_id()

    def name_of(seq: int) -> str:
        return mf.object_name(data_schema_name, ingest_id, file_no, 0, seq)

    per_row = table.nbytes / table.num_rows if table.num_rows else 1.0
    rows = rows_per_object(table.num_rows, per_row, int(object_size or config.get("object-size")))
    writer = ObjectWriter(store, name_of, rows, compression)
    written: dict[str, Any] = {}

    def change(manifest: Manifest | None) -> Manifest:
        manifest = manifest or mf.new_manifest(
            data_schema_name, ingest_id, mf.schema_name(data_schema_name)
        )
        taken = {f["name"] for f in manifest["files"]}
        number = max((f["file_no"] for f in manifest["files"]), default=-1) + 1
        name = table_name or f"{DEFAULT_TREE}-{number}"
        if name in taken:
            raise SchemaError(f"dataset {data_schema_name!r} already has a table named {name!r}")
        entry = _file_entry(table, name, tree, number, ingest_id, writer, written["stats"])
        check_objects_present(store, data_schema_name, [entry])
        manifest["files"].append(entry)
        return manifest

    try:
        with ingest_under_way(store, data_schema_name, ingest_id):
            with writer:
                writer.add(table)
                writer.flush()
                stats = mf.stats_object_name(data_schema_name, ingest_id, file_no, 0)
                written["stats"] = writer.write_stats(stats)
            commit(store, data_schema_name, change, append=True)
    except BaseException:
        discard_objects(store, data_schema_name, ingest_id)
        raise
    return [o["name"] for o in writer.objects]
