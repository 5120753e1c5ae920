"""NanoEvents over one chunk of a Skyhook object, each column fetched only when first touched.

coffea's NanoEvents (``mode="virtual"``) are an awkward array whose buffers are named by *form
keys* such as ``"Muon_pt,!load,!content"`` or ``"nMuon,!load,!counts2offsets"``: a column, then
``!load``, then transforms that coffea's ``BaseSourceMapping`` applies. The base form here is
built from the tree's Arrow schema with the same key grammar coffea's ROOT mapping uses, so
NanoAODSchema builds the same collections (offsets from the counter branches ``nMuon``...,
cross-references, four-vectors). :class:`SkyhookSourceMapping` serves every ``!load`` from a
:class:`ChunkColumns`, which fetches a column with one ``scan`` call on the object -- that
column alone, with the chunk's predicate (preselection and event range) evaluated in the
storage -- the first time a buffer of it is needed, and keeps it for the chunk's other buffers.
Columns known to be needed (those earlier chunks of the same processor touched) are fetched
together beforehand, in one call (:meth:`ChunkColumns.prefetch`).
Jagged branches arrive as Arrow list columns and become ``ListOffsetArray`` s directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
from coffea.nanoevents import NanoEventsFactory
from coffea.nanoevents.mapping.base import BaseSourceMapping
from coffea.nanoevents.util import quote, tuple_to_key

from ..exceptions import SchemaError, UnknownColumnError
from ..formats.objects import EVENT_ID
from ..formats.protocol import Aggregate, ScanMetrics, ScanRequest
from ..query.expr import Call, Column, Expr, Literal, conjunction
from ..runtime.calls import call_object

__all__ = [
    "Ahead",
    "ChunkColumns",
    "ChunkSpec",
    "SkyhookSourceMapping",
    "base_form",
    "event_range",
    "make_events",
    "to_layout",
]


# --- forms -------------------------------------------------------------------------------------


def _form(arrow_type: pa.DataType, key: str) -> dict[str, Any] | None:
    """The lazy awkward form of one Arrow type (None when NanoEvents cannot hold it)."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        content = _form(arrow_type.value_type, key + ",!content")
        if content is None:
            return None
        # awkward appends ",!offsets" to this key when it asks for the offsets
        return {
            "class": "ListOffsetArray",
            "offsets": "i64",
            "content": content,
            "parameters": {},
            "form_key": quote(key),
        }
    if pa.types.is_fixed_size_list(arrow_type):
        content = _form(arrow_type.value_type, key + ",!content")
        if content is None:
            return None
        return {
            "class": "RegularArray",
            "size": arrow_type.list_size,
            "content": content,
            "parameters": {},
            "form_key": None,
        }
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        primitive = np.dtype(arrow_type.to_pandas_dtype()).name
    elif pa.types.is_boolean(arrow_type):
        primitive = "bool"
    else:
        return None  # strings, structs...: not NanoEvents branches
    return {
        "class": "NumpyArray",
        "primitive": primitive,
        "inner_shape": [],
        "parameters": {},
        "form_key": quote(key),
    }


def base_form(schema: pa.Schema) -> dict[str, Any]:
    """The record form of a tree's branches, lazy: every buffer key starts ``"<column>,!load"``.

    ``event_id`` (the object layout's entry number) and names that the key grammar cannot hold
    (``,`` or ``!``) are left out, as coffea leaves out branches it cannot interpret.
    """
    fields, contents = [], []
    for arrow_field in schema:
        name = arrow_field.name
        if name == EVENT_ID or "," in name or "!" in name:
            continue
        form = _form(arrow_field.type, f"{name},!load")
        if form is not None:
            fields.append(name)
            contents.append(form)
    return {
        "class": "RecordArray",
        "fields": fields,
        "contents": contents,
        "parameters": {"__doc__": "Skyhook object columns"},
        "form_key": None,
    }


# --- Arrow columns as awkward layouts ----------------------------------------------------------


def to_layout(array: pa.Array, where: str) -> ak.contents.Content:
    """An Arrow array without nulls as an awkward layout without option types, as uproot
    gives NanoEvents (list offsets rebased to start at 0)."""
    if array.null_count:
        raise SchemaError(f"{where} holds {array.null_count} null values; NanoEvents need none")
    arrow_type = array.type
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        offsets = np.asarray(array.offsets, dtype=np.int64)
        first, last = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        content = to_layout(array.values.slice(first, last - first), where)
        return ak.contents.ListOffsetArray(ak.index.Index64(offsets - first), content)
    if pa.types.is_fixed_size_list(arrow_type):
        content = to_layout(array.flatten(), where)
        return ak.contents.RegularArray(content, arrow_type.list_size, zeros_length=len(array))
    return ak.contents.NumpyArray(array.to_numpy(zero_copy_only=False))


# --- fetching one chunk's columns --------------------------------------------------------------


def event_range(start: int, stop: int) -> Expr:
    """``event_id >= start and event_id < stop``: a part of an object, cut in the storage."""
    return Call(
        "and_kleene",
        (
            Call("greater_equal", (Column(EVENT_ID), Literal(int(start), "int64"))),
            Call("less", (Column(EVENT_ID), Literal(int(stop), "int64"))),
        ),
    )


@dataclass(frozen=True)
class ChunkSpec:
    """Where a chunk's events are: an object (None: an empty chunk), the event range within
    it, and the preselection the storage applies."""

    store_url: str
    object_name: str | None
    start: int
    stop: int
    whole_object: bool
    preselect: Expr | None
    compression: str | None
    strict: bool

    @property
    def predicate(self) -> Expr | None:
        ranges = [] if self.whole_object else [event_range(self.start, self.stop)]
        return conjunction([p for p in (self.preselect, *ranges) if p is not None])


@dataclass(frozen=True)
class Ahead:
    """A chunk's ``scan`` of ``wanted`` columns, started before the chunk runs."""

    wanted: tuple[str, ...]
    future: Future[tuple[pa.Table, ScanMetrics]]


@dataclass
class ChunkColumns:
    """The columns of one chunk, each fetched from the storage at most once, on first use."""

    spec: ChunkSpec
    schema: pa.Schema
    metrics: ScanMetrics = field(default_factory=ScanMetrics)
    fetched: dict[str, int] = field(default_factory=dict)  # column -> bytes returned for it
    _arrays: dict[str, ak.Array] = field(default_factory=dict, repr=False)
    _rows: int | None = field(default=None, repr=False)

    def _call(self, method: str, request: ScanRequest) -> tuple[pa.Table, ScanMetrics]:
        return self._call_payload(method, request.encode())

    def _call_payload(self, method: str, payload: bytes) -> tuple[pa.Table, ScanMetrics]:
        assert self.spec.object_name is not None
        table, metrics = call_object(
            self.spec.store_url, self.spec.object_name, method, payload, strict=self.spec.strict
        )
        self.metrics.add(metrics)
        return table, metrics

    @property
    def rows(self) -> int:
        """Events of the chunk that pass the preselection (counted in the storage)."""
        if self._rows is None:
            if self.spec.object_name is None:
                self._rows = 0
            elif self.spec.preselect is None:
                self._rows = self.spec.stop - self.spec.start
            else:
                request = ScanRequest((), self.spec.predicate, (Aggregate("count"),))
                table, _ = self._call("aggregate", request)
                self._rows = int(table.column("0")[0].as_py() or 0)
        return self._rows

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.schema.get_field_index(name) >= 0

    def _wanted(self, names: Iterable[str]) -> tuple[str, ...]:
        if self.spec.object_name is None:
            return ()
        return tuple(sorted(n for n in set(names) if n in self and n not in self._arrays))

    def _scan(self, wanted: tuple[str, ...]) -> bytes:
        return ScanRequest(wanted, self.spec.predicate, (), self.spec.compression).encode()

    def fetch_ahead(self, names: Iterable[str], pool: Executor) -> Ahead | None:
        """Start, on ``pool``, the call :meth:`prefetch` of ``names`` would make."""
        wanted = self._wanted(names)
        if not wanted:
            return None
        assert self.spec.object_name is not None
        arguments = (self.spec.store_url, self.spec.object_name, "scan", self._scan(wanted))
        return Ahead(wanted, pool.submit(call_object, *arguments, strict=self.spec.strict))

    def prefetch(self, names: Iterable[str], ahead: Ahead | None = None) -> None:
        """Fetch ``names`` (those the chunk has and not yet fetched) in one ``scan`` call -- or
        take ``ahead``, that call started earlier; its length also gives :attr:`rows`, so no
        count call is needed."""
        wanted = self._wanted(names)
        if not wanted:
            return
        result = None
        if ahead is not None and ahead.wanted == wanted:
            with contextlib.suppress(Exception):  # an error is raised by the call made below
                result = ahead.future.result()
        if result is None:
            table, metrics = self._call_payload("scan", self._scan(wanted))
        else:
            table, metrics = result
            self.metrics.add(metrics)
        if self._rows is not None and table.num_rows != self._rows:
            raise SchemaError(
                f"{self.where()} returned {table.num_rows} rows, expected {self._rows}"
            )
        self._rows = table.num_rows
        total = max(1, sum(table.column(n).nbytes for n in wanted))
        for name in wanted:  # the call's bytes, shared out by the columns' sizes
            chunk = table.column(name).combine_chunks()
            share = metrics.bytes_returned * chunk.nbytes // total
            self.fetched[name] = self.fetched.get(name, 0) + share
            self._arrays[name] = ak.Array(to_layout(chunk, self.where(name)))

    def column(self, name: str) -> ak.Array:
        array = self._arrays.get(name)
        if array is not None:
            return array
        if name not in self:
            raise UnknownColumnError(name, self.schema.names, where=self.where())
        if self.spec.object_name is None or self.rows == 0:
            arrow = self.schema.field(name).type
            layout = to_layout(pa.array([], type=arrow), self.where(name))
        else:
            request = ScanRequest((name,), self.spec.predicate, (), self.spec.compression)
            table, metrics = self._call("scan", request)
            self.fetched[name] = self.fetched.get(name, 0) + metrics.bytes_returned
            chunk = table.column(name).combine_chunks()
            if len(chunk) != self.rows:
                raise SchemaError(
                    f"{self.where(name)} returned {len(chunk)} rows, expected {self.rows}"
                )
            layout = to_layout(chunk, self.where(name))
        array = self._arrays[name] = ak.Array(layout)
        return array

    def where(self, name: str | None = None) -> str:
        place = f"object {self.spec.object_name or '<empty chunk>'}"
        return f"column {name!r} of {place}" if name else place


# --- the NanoEvents mapping --------------------------------------------------------------------


class SkyhookSourceMapping(BaseSourceMapping):
    """coffea's source mapping over :class:`ChunkColumns`: ``!load`` of a branch fetches it."""

    def __init__(self, columns: ChunkColumns, uuid: str, treepath: str) -> None:
        super().__init__(None, 0, columns.rows, cache={}, virtual=True)
        self.preload_column_source(uuid, treepath, columns)

    @classmethod
    def _extract_base_form(cls, source: pa.Schema) -> dict[str, Any]:
        return base_form(source)

    def key_root(self) -> str:
        return "SkyhookSourceMapping:"

    def get_column_handle(
        self, columnsource: ChunkColumns, name: str, allow_missing: bool
    ) -> tuple[ChunkColumns, str] | None:
        if name not in columnsource:
            if allow_missing:
                return None
            raise UnknownColumnError(name, columnsource.schema.names, where=columnsource.where())
        return columnsource, name

    def extract_column(
        self,
        columnhandle: tuple[ChunkColumns, str] | None,
        start: int,
        stop: int,
        allow_missing: bool,
        use_ak_forth: bool = False,
    ) -> Any:
        if columnhandle is None:  # a branch a saved form allows to be missing: all None
            return ak.contents.IndexedOptionArray(
                ak.index.Index64(np.full(stop - start, -1, dtype=np.int64)),
                ak.contents.NumpyArray(np.array([], dtype=bool)),
            )
        source, name = columnhandle
        return source.column(name)[start:stop]

    def __len__(self) -> int:
        return int(self._stop - self._start)

    def __iter__(self) -> Any:
        raise NotImplementedError("a source mapping is only indexed by buffer key")


def make_events(
    columns: ChunkColumns,
    schemaclass: Any,
    metadata: dict[str, Any],
    uuid: str,
    treepath: str,
    form: dict[str, Any] | None = None,
) -> Any:
    """Virtual NanoEvents of one chunk; ``form`` is a private copy of ``base_form(schema)``."""
    form = base_form(columns.schema) if form is None else form
    form["parameters"]["metadata"] = metadata
    mapping = SkyhookSourceMapping(columns, uuid, treepath)
    partition_key = tuple_to_key((uuid, treepath, f"0-{columns.rows}"))
    return NanoEventsFactory(schemaclass(form), mapping, partition_key, mode="virtual").events()
