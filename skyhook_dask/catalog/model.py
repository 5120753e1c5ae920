"""The dataset catalog: ``Dataset``, ``File`` and ``RootNode`` over a published manifest.

The classes keep the seed API's camelCase methods (``getFiles``, ``getSize``, ``getAttributes``,
``getRoot``, ``getSchema``, ``getName``, ``getClassType``, ``getDataType``, ``getChildren``,
``getParent``) with snake_case aliases, plus what the query layer needs: every file's trees
(:class:`TreeInfo`) with their Arrow schema and objects (:class:`ObjectEntry`: event range,
sizes, checksum, per-column min/max for skipping objects).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow as pa

from ..exceptions import (
    ChecksumError,
    DatasetNotFoundError,
    DatasetVersionNotFoundError,
    ObjectNotFoundError,
    UnknownTreeError,
)
from ..formats import manifest as mf
from ..formats.objects import open_object, read_columns
from ..storage import ObjectStore, open_store


@dataclass(frozen=True)
class ObjectEntry:
    """One stored object: rows ``[first_event, stop_event)`` of one tree of one file."""

    name: str
    first_event: int
    stop_event: int
    rows: int
    bytes: int
    uncompressed_bytes: int
    checksum: str
    stats: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ObjectEntry:
        return cls(**{k: entry[k] for k in cls.__dataclass_fields__ if k in entry})


@dataclass
class TreeInfo:
    """A TTree or RNTuple as stored: its key (``"Events;1"``), entries, Arrow schema and objects."""

    key: str
    name: str
    cycle: int
    path: str
    entries: int
    schema_b64: str = field(repr=False)
    objects: list[ObjectEntry] = field(repr=False)
    skipped: list[dict[str, Any]] = field(default_factory=list, repr=False)
    object_stats: dict[str, Any] | None = field(default=None, repr=False)
    store_url: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, entry: dict[str, Any], store_url: str | None = None) -> TreeInfo:
        return cls(
            key=entry["key"],
            name=entry["name"],
            cycle=entry["cycle"],
            path=entry["path"],
            entries=entry["entries"],
            schema_b64=entry["schema"],
            objects=[ObjectEntry.from_json(o) for o in entry["objects"]],
            skipped=list(entry.get("skipped", [])),
            object_stats=entry.get("object_stats"),
            store_url=store_url,
        )

    @cached_property
    def schema(self) -> pa.Schema:
        return mf.decode_schema(self.schema_b64)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def size(self) -> int:
        """Stored bytes: the objects and their statistics object."""
        stats = self.object_stats["bytes"] if self.object_stats else 0
        return sum(o.bytes for o in self.objects) + stats

    def stats_table(self, columns: Iterable[str]) -> pa.Table | None:
        """Every object's statistics of ``columns`` as one table (a row per object, see
        :func:`formats.manifest.stats_table`); None when the manifest holds them inline
        (older manifests) or there are no objects. Only those columns are decoded."""
        if self.object_stats is None:
            return None
        if self.store_url is None:
            raise ObjectNotFoundError("<no store>", self.object_stats["name"])
        data, present = _stats_object(self.store_url, self.object_stats["name"],
                                      self.object_stats["checksum"])  # fmt: skip
        wanted = [f"{c}/{k}" for c in columns for k in mf.STATS_KINDS if f"{c}/{k}" in present]
        return read_columns(data, wanted, name=self.object_stats["name"])

    def stats(self, columns: Iterable[str]) -> list[dict[str, dict[str, Any]]]:
        """Each object's statistics of ``columns``, in object order: ``{column: {"nulls",
        "min", "max"}}`` with what is known (read from the statistics object, once)."""
        columns = list(columns)
        if self.object_stats is None:  # no objects, or statistics inline (older manifests)
            return [{c: o.stats[c] for c in columns if c in o.stats} for o in self.objects]
        if not columns:
            return [{} for _ in self.objects]
        table = self.stats_table(columns)
        assert table is not None
        return mf.stats_rows(table, columns)


@functools.lru_cache(maxsize=64)
def _stats_object(store_url: str, name: str, checksum: str) -> tuple[pa.Buffer, frozenset[str]]:
    """A statistics object's bytes and column names, read and checked once per process (it
    never changes); queries decode only the columns they test."""
    data = open_store(store_url).read(name)
    if mf.checksum(data) != checksum:
        raise ChecksumError(name, checksum, mf.checksum(data))
    return pa.py_buffer(data), frozenset(open_object(data, name).schema.names)


class RootNode:
    """A node of a file's logical layout: a TDirectory, a TTree of TBranches, an RNTuple of
    RFields (or another object)."""

    def __init__(self, info: dict[str, Any], parent: RootNode | None = None) -> None:
        self._info = info
        self._parent = parent
        self._children = [RootNode(child, self) for child in info.get("children", [])]

    def getName(self) -> str:
        return str(self._info["name"])

    def getClassType(self) -> str:
        return str(self._info["classtype"])

    def getDataType(self) -> str | None:
        """ROOT type name of a branch (``"float[]"``, ``"int32_t"``); None for other nodes."""
        return self._info.get("datatype")

    def getChildren(self) -> list[RootNode]:
        return list(self._children)

    def getParent(self) -> RootNode | None:
        return self._parent

    get_name = getName
    get_class_type = getClassType
    get_data_type = getDataType
    get_children = getChildren
    get_parent = getParent

    @property
    def name(self) -> str:
        return self.getName()

    @property
    def class_type(self) -> str:
        return self.getClassType()

    @property
    def arrow_type(self) -> str | None:
        return self._info.get("arrow_type")

    @property
    def column(self) -> str | None:
        """The Arrow column holding this branch (None when it was skipped)."""
        return self._info.get("column")

    @property
    def skipped(self) -> str | None:
        """Why the branch was not ingested, or None."""
        return self._info.get("skipped")

    @property
    def key(self) -> str | None:
        """For a TTree or RNTuple, its key in :attr:`File.trees`."""
        return self._info.get("key")

    def walk(self) -> Iterator[RootNode]:
        """This node and all below it, depth first."""
        yield self
        for child in self._children:
            yield from child.walk()

    def __repr__(self) -> str:
        extra = f", {self.getDataType()}" if self.getDataType() else ""
        return f"RootNode({self.getClassType()}: {self.getName()}{extra})"


class File:
    """One ingested file (or one table written with writeArrowTable)."""

    def __init__(self, entry: dict[str, Any], dataset: Dataset | None = None) -> None:
        self._entry = entry
        self.dataset = dataset
        self.name: str = entry["name"]
        self.file_no: int = entry["file_no"]
        self.url: str | None = entry.get("url")
        self.size: int | None = entry.get("size")
        self.ingest_id: str = entry.get("ingest_id", "")
        self.uuid: str | None = entry.get("uuid")  # the ROOT file's UUID (None for tables)
        store_url = dataset.store_url if dataset is not None else None
        self.trees: dict[str, TreeInfo] = {
            t["key"]: TreeInfo.from_json(t, store_url) for t in entry.get("trees", [])
        }

    def getAttributes(self) -> dict[str, Any]:
        """name, url, size, access_time, modification_time, file_no, ingest_id, stored_size,
        uuid."""
        return {
            "name": self.name,
            "url": self.url,
            "size": self.size,
            "access_time": self._entry.get("access_time"),
            "modification_time": self._entry.get("modification_time"),
            "file_no": self.file_no,
            "ingest_id": self.ingest_id,
            "stored_size": self.stored_size,
            "uuid": self.uuid,
        }

    def getRoot(self) -> RootNode:
        """The file's top TDirectory."""
        return RootNode(self._entry["root"])

    def getSchema(self) -> dict[str, Any]:
        """The logical layout as nested dicts (see :mod:`skyhook_dask.formats.manifest`)."""
        return copy.deepcopy(self._entry["root"])

    get_attributes = getAttributes
    get_root = getRoot
    get_schema = getSchema

    @property
    def stored_size(self) -> int:
        return sum(tree.size for tree in self.trees.values())

    @property
    def skipped(self) -> list[dict[str, Any]]:
        """Branches not ingested, each with its tree, name, ROOT type and reason."""
        return [{"tree": key, **s} for key, tree in self.trees.items() for s in tree.skipped]

    def tree(self, spec: str) -> TreeInfo:
        """The tree named by key (``"Events;1"``), path or name (``"Events"``).

        A spec with a cycle that is not stored falls back to the stored cycle of that name,
        so queries written against another copy of a file (``"Events;75"``) still work.
        """
        if spec in self.trees:
            return self.trees[spec]
        base = spec.rsplit(";", 1)[0] if ";" in spec else spec
        matches = [t for t in self.trees.values() if base in (t.path, t.name)]
        if len(matches) == 1:
            return matches[0]
        if matches:  # same name in several directories: the top-level one, else ambiguous
            top = [t for t in matches if t.path == base]
            if len(top) == 1:
                return top[0]
        raise UnknownTreeError(spec, self.trees)

    def __repr__(self) -> str:
        return f"File({self.name!r}, {self.size} bytes, trees={list(self.trees)})"


class Dataset:
    """A published dataset: its files, trees and objects."""

    def __init__(self, name: str, manifest: dict[str, Any], store_url: str) -> None:
        self.name = name
        self.manifest = manifest
        self.store_url = store_url
        self.files: list[File] = [File(entry, self) for entry in manifest["files"]]

    def getFiles(self) -> list[File]:
        return list(self.files)

    def getSize(self) -> int:
        """Total stored size: the sum of the bytes of every object (see :attr:`source_size`)."""
        return sum(f.stored_size for f in self.files)

    get_files = getFiles
    get_size = getSize

    @property
    def size(self) -> int:
        return self.getSize()

    @property
    def source_size(self) -> int:
        """Total size of the source files (those whose size is known)."""
        return sum(f.size or 0 for f in self.files)

    @property
    def created(self) -> str:
        return str(self.manifest["created"])

    @property
    def metadata(self) -> dict[str, Any]:
        """What the dataset was written with (a coffea fileset entry's ``metadata``)."""
        return dict(self.manifest.get("metadata") or {})

    @property
    def ingest_id(self) -> str:
        return str(self.manifest["ingest_id"])

    @property
    def version(self) -> int:
        """This version's number: 1 when created, one more with each publication."""
        return mf.dataset_version(self.manifest)

    @property
    def store(self) -> ObjectStore:
        return open_store(self.store_url)

    def file(self, name: str) -> File:
        """A file by name (or by its position as a decimal string)."""
        for f in self.files:
            if f.name == name:
                return f
        if name.isdigit() and int(name) < len(self.files):
            return self.files[int(name)]
        raise KeyError(f"dataset {self.name!r} has no file {name!r}")

    def tree_keys(self) -> list[str]:
        """Every tree key present in any file, sorted."""
        return sorted({key for f in self.files for key in f.trees})

    def objects(self) -> Iterator[tuple[File, TreeInfo, ObjectEntry]]:
        for f in self.files:
            for tree in f.trees.values():
                for obj in tree.objects:
                    yield f, tree, obj

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self.files)} files, {self.getSize()} bytes)"


def list_datasets(store: ObjectStore | str) -> list[str]:
    """Names of the published datasets in a store, sorted."""
    store = open_store(store) if isinstance(store, str) else store
    suffix = "/" + mf.MANIFEST
    return sorted(
        name[: -len(suffix)]
        for name in store.list("")
        if name.endswith(suffix) and name.count("/") == 1
    )


def load_dataset(store: ObjectStore | str, name: str, version: int | None = None) -> Dataset:
    """The published dataset ``name``: its current version, or ``version`` of its history.

    DatasetNotFoundError (with close names) if there is none; DatasetVersionNotFoundError
    (with the versions kept) if the dataset has no such version.
    """
    store = open_store(store) if isinstance(store, str) else store
    mf.validate_dataset_name(name)
    where = mf.manifest_name(name)
    try:
        data = store.read(where)
    except ObjectNotFoundError:
        raise DatasetNotFoundError(name, list_datasets(store)) from None
    current = Dataset(name, mf.loads(data, f"{where} in {store.url}"), store.url)
    if version is None or version == current.version:
        return current
    kept = kept_versions(store, current)
    where = mf.version_name(name, version)
    try:
        data = store.read(where) if version in kept else None
    except ObjectNotFoundError:  # removed since it was listed
        data = None
    if data is None:
        raise DatasetVersionNotFoundError(name, version, kept)
    return Dataset(name, mf.loads(data, f"{where} in {store.url}"), store.url)


def kept_versions(store: ObjectStore, current: Dataset) -> list[int]:
    """The versions of ``current``'s history that can be read, oldest first."""
    start = mf.history_start(current.manifest)
    listed = (mf.version_of_name(n) for n in store.list(mf.versions_prefix(current.name)))
    kept = {v for v in listed if v is not None and start <= v <= current.version}
    return sorted(kept | {current.version})
