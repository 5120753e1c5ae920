"""The dataset manifest: one JSON document per dataset, ``{dataset}/manifest.json``.

It is written last (one atomic ``write``), so a dataset is visible completely or not at all.
Store layout of a dataset::

    {dataset}/manifest.json                       this document: the current version
    {dataset}/versions/{version:08d}.json         every version of its history, as published
    {dataset}/schema.json                         a registered dataset schema (addDatasetSchema)
    {dataset}/manifest.lock                       held while a writer replaces the manifest
    {dataset}/ingests/{ingest_id}                 an ingest under way (its objects are kept)
    {dataset}/data/{ingest_id}/f{file:04d}-t{tree:03d}-{seq:06d}   data objects (Arrow IPC files;
                                                  f: the file's number within its ingest)

Format (``"format": "skyhook-dataset", "version": 1``)::

    name          dataset name
    created       ISO 8601 UTC time of this publication
    ingest_id     id of the ingest that published it ("20260101T120000Z-1a2b3c4d")
    schema        "{dataset}/schema.json" when a dataset schema is registered, else null
    dataset_version   number of this publication: 1, 2, ... (absent in manifests written
                  before versions existed: 1)
    history_start the version that began this history (created or overwrote the dataset);
                  every later version only added files, so the versions from history_start
                  on reference no object the current one does not (absent: 1)
    metadata      (optional) JSON object the dataset was written with, e.g. a coffea fileset
                  entry's metadata
    files         list of file entries:
      file_no            position of the file in the dataset (unique; appended files follow)
      name               base name of the source (or the table name of writeArrowTable)
      url                where it was read from (null for written tables)
      size               source size in bytes (null if unknown)
      access_time        source atime, seconds since the epoch (null if unknown)
      modification_time  source mtime, seconds since the epoch (null if unknown)
      ingest_id          the ingest that wrote this file's objects
      uuid               the ROOT file's UUID (null for written tables)
      root               the file's logical layout: nested nodes, each
                         {"name", "classtype", "datatype", "children"} where classtype is
                         "TDirectory", "TTree", "TBranch", "RNTuple", "RField" (or the ROOT
                         class of another object)
                         and datatype the ROOT type name of a branch (uproot's typename, e.g.
                         "float[]"), else null. Branch nodes add "column" (Arrow column name,
                         null when skipped), "arrow_type" and, when skipped, "skipped" (reason);
                         tree nodes add "key" and "entries".
      trees              list of tree entries:
        key              "Events;1" (directory path included: "dir/Events;1")
        name, cycle      "Events", 1
        path             path inside the file without cycle ("dir/Events")
        entries          number of entries (events)
        schema           base64 of the Arrow schema's IPC serialization (``schema.serialize()``)
        skipped          [{"branch", "typename", "reason"}] branches that were not ingested
        objects          list of object entries, in event order:
          name           store object name
          first_event    entry number of the first row; stop_event: one past the last (for a
                         written table: row numbers in it, while its event_id column may hold
                         the table's own ids; stats["event_id"] bounds those)
          rows           stop_event - first_event
          bytes          stored size; uncompressed_bytes: Arrow ``Table.nbytes`` of its table
          checksum       "sha256:<hex>" of the stored bytes
          stats          (trees of fewer than 10 objects, and manifests written before
                         object_stats) {column: {"nulls": n, "min": v, "max": v}}, as one row
                         of object_stats holds them
        object_stats     {"name", "bytes", "checksum"} of the object holding every object's
                         column statistics, one row per object in order (an Arrow IPC file,
                         ``{dataset}/data/{ingest_id}/f{file:04d}-t{tree:03d}-stats``): columns
                         "{column}/nulls", "{column}/min", "{column}/max" -- min/max of the
                         values (flattened for list columns) of numeric and bool columns, null
                         when the column is empty or holds NaN or infinities. Null when the
                         objects hold their statistics inline. Read lazily, only the columns a
                         query tests.

Only the highest cycle of each tree is ingested (ROOT's own ``Get`` semantics); lower cycles
are incomplete autosave copies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import InvalidNameError, ObjectFormatError
from .names import validate_name

FORMAT = "skyhook-dataset"
VERSION = 1
MANIFEST = "manifest.json"
SCHEMA = "schema.json"
LOCK = "manifest.lock"
DATA = "data"
VERSIONS = "versions"
INGESTS = "ingests"


def validate_dataset_name(name: str) -> str:
    """A dataset name is one object-name component (no '/')."""
    validate_name(name, "dataset name")
    if "/" in name:
        raise InvalidNameError(f"dataset name {name!r} may not contain '/'")
    return name


def manifest_name(dataset: str) -> str:
    return f"{dataset}/{MANIFEST}"


def schema_name(dataset: str) -> str:
    return f"{dataset}/{SCHEMA}"


def lock_name(dataset: str) -> str:
    return f"{dataset}/{LOCK}"


def versions_prefix(dataset: str) -> str:
    return f"{dataset}/{VERSIONS}/"


def version_name(dataset: str, version: int) -> str:
    return f"{versions_prefix(dataset)}{version:08d}.json"


def version_of_name(name: str) -> int | None:
    """The version a record name (``ds/versions/00000003.json``) holds; None for other names."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    return int(stem) if stem.isdigit() and name.endswith(".json") else None


def ingest_marker_name(dataset: str, ingest_id: str) -> str:
    return f"{dataset}/{INGESTS}/{ingest_id}"


def dataset_version(manifest: dict[str, Any]) -> int:
    return int(manifest.get("dataset_version", 1))


def history_start(manifest: dict[str, Any]) -> int:
    return int(manifest.get("history_start", 1))


def data_prefix(dataset: str, ingest_id: str | None = None) -> str:
    return f"{dataset}/{DATA}/" + (f"{ingest_id}/" if ingest_id else "")


def object_name(dataset: str, ingest_id: str, file_no: int, tree_no: int, seq: int) -> str:
    return f"{data_prefix(dataset, ingest_id)}f{file_no:04d}-t{tree_no:03d}-{seq:06d}"


def new_ingest_id() -> str:
    """UTC time plus random hex: sorts by time, never collides with an earlier attempt."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def checksum(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def new_manifest(name: str, ingest_id: str, schema: str | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "created": utc_now(),
        "ingest_id": ingest_id,
        "schema": schema,
        "files": [],
    }


def dumps(manifest: dict[str, Any]) -> bytes:
    # allow_nan=False: the stats never hold NaN/inf, and strict JSON stays readable everywhere.
    return json.dumps(manifest, allow_nan=False, separators=(",", ":")).encode()


def loads(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check a manifest; ``where`` names it in errors."""
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ObjectFormatError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ObjectFormatError(f"{where} is not a skyhook dataset manifest")
    if manifest.get("version") != VERSION:
        raise ObjectFormatError(
            f"{where} has manifest version {manifest.get('version')!r}; this skyhook_dask reads "
            f"version {VERSION} (upgrade skyhook_dask or re-ingest the dataset)"
        )
    return manifest


def tree_object_names(tree: dict[str, Any]) -> list[str]:
    """The objects a tree entry references: its data objects and its statistics object."""
    names = [obj["name"] for obj in tree["objects"]]
    if tree.get("object_stats"):
        names.append(tree["object_stats"]["name"])
    return names


def referenced_objects(manifest: dict[str, Any]) -> set[str]:
    return {name for file in manifest["files"] for tree in file["trees"]
            for name in tree_object_names(tree)}  # fmt: skip


def stats_object_name(dataset: str, ingest_id: str, file_no: int, tree_no: int) -> str:
    return f"{data_prefix(dataset, ingest_id)}f{file_no:04d}-t{tree_no:03d}-stats"


# --- per-object column statistics --------------------------------------------------------------


def _json_number(value: Any) -> Any:
    """A JSON-safe Python number (bool stays bool); None for NaN/inf."""
    if isinstance(value, bool | int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


def _leaf_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The values of a (possibly nested) list column, flattened down to its leaves."""
    while (
        pa.types.is_list(column.type)
        or pa.types.is_large_list(column.type)
        or (pa.types.is_fixed_size_list(column.type))
    ):
        column = pc.list_flatten(column)
    return column


def column_stats(column: pa.ChunkedArray) -> dict[str, Any]:
    """``{"nulls", "min", "max"}`` of one column; min/max only where they bound every value."""
    stats: dict[str, Any] = {"nulls": column.null_count}
    values = _leaf_values(column)
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return stats
    if pa.types.is_float16(kind):  # Arrow compute has no half-float kernels
        return stats
    if len(values) - values.null_count == 0:
        return stats
    if pa.types.is_floating(kind) and pc.any(pc.is_nan(values)).as_py():
        return stats
    bounds = pc.min_max(values)
    low, high = _json_number(bounds["min"].as_py()), _json_number(bounds["max"].as_py())
    if low is not None and high is not None:
        stats["min"], stats["max"] = low, high
    return stats


def table_stats(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {name: column_stats(table.column(name)) for name in table.column_names}


STATS_KINDS = ("nulls", "min", "max")


def _bound_type(field_type: pa.DataType) -> pa.DataType | None:
    """The type min/max of a column are kept in (None: no bounds are recorded)."""
    while (
        pa.types.is_list(field_type)
        or pa.types.is_large_list(field_type)
        or (pa.types.is_fixed_size_list(field_type))
    ):
        field_type = field_type.value_type
    if pa.types.is_boolean(field_type):
        return pa.bool_()
    if pa.types.is_integer(field_type):
        return pa.uint64() if field_type == pa.uint64() else pa.int64()
    if pa.types.is_floating(field_type) and not pa.types.is_float16(field_type):
        return pa.float64()
    return None


def stats_table(per_object: list[dict[str, dict[str, Any]]], schema: pa.Schema) -> pa.Table:
    """The statistics of a tree's objects (``table_stats`` of each) as one table: a row per
    object, columns ``{column}/nulls``, ``{column}/min``, ``{column}/max``."""
    arrays, names = [], []
    for field in schema:
        kinds = {"nulls": pa.int64()}
        bound = _bound_type(field.type)
        if bound is not None:
            kinds.update(min=bound, max=bound)
        for kind, kind_type in kinds.items():
            values = [stats.get(field.name, {}).get(kind) for stats in per_object]
            arrays.append(pa.array(values, kind_type))
            names.append(f"{field.name}/{kind}")
    return pa.Table.from_arrays(arrays, names=names)


def stats_rows(table: pa.Table, columns: Any) -> list[dict[str, dict[str, Any]]]:
    """Each object's statistics of ``columns`` (``{column: {"nulls", "min", "max"}}``, known
    ones only) from a :func:`stats_table`."""
    rows: list[dict[str, dict[str, Any]]] = [{} for _ in range(table.num_rows)]
    present = set(table.column_names)
    for column in columns:
        for kind in STATS_KINDS:
            key = f"{column}/{kind}"
            if key not in present:
                continue
            for row, value in zip(rows, table.column(key).to_pylist(), strict=True):
                if value is not None:
                    row.setdefault(column, {})[kind] = value
    return rows
