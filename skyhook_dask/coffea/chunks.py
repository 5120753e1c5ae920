"""The work of a coffea run over Skyhook: chunks (work items) and the function each one runs.

:func:`work_items` turns a dataset (or a coffea-like fileset of datasets) into
:class:`SkyhookWorkItem` s -- one per object, or ``chunks_per_object`` event ranges of one --
after skipping the objects whose statistics exclude the preselection.
:class:`ChunkProcessor` is the picklable function an executor calls per item: it builds the
chunk's lazy NanoEvents (:mod:`skyhook_dask.coffea.mapping`), runs the processor and returns
``{"out": output, "report": RunReport}``, which coffea's ``accumulate`` merges.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import cloudpickle
import lz4.frame
import pyarrow as pa
from coffea import processor as coffea_processor

from ..catalog.model import Dataset, File, TreeInfo
from ..formats import manifest as mf
from ..plan.plan import plan
from ..query.expr import Expr
from ..query.parser import Query, parse_query
from .filesets import DatasetSpec, fileset_entries
from .mapping import ChunkColumns, ChunkSpec, base_form, make_events
from .readahead import ReadAhead

__all__ = [
    "ChunkProcessor",
    "DatasetSpec",
    "Payload",
    "RunReport",
    "SkyhookWorkItem",
    "describe",
    "work_items",
]


# --- work items --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkyhookWorkItem:
    """One chunk: events ``[entrystart, entrystop)`` of ``filename``, all in one object.

    The fields coffea's ``WorkItem`` has keep their meaning; ``object_name`` (None for an
    empty chunk), ``object_rows`` and ``preselect`` say where and how the events are read.
    """

    dataset: str
    filename: str
    treename: str
    entrystart: int
    entrystop: int
    store_url: str
    object_name: str | None
    object_rows: int
    object_bytes: int
    schema_key: str
    preselect: Expr | None = None
    usermeta: dict[str, Any] | None = field(default=None, compare=False)
    root_uuid: str = ""  # the ingested ROOT file's UUID, as coffea's metadata["fileuuid"]

    def __len__(self) -> int:
        return self.entrystop - self.entrystart

    @property
    def fileuuid(self) -> bytes:
        """What coffea's DaskExecutor(worker_affinity=True) hashes: here the object, so the
        chunks of one object go to one worker."""
        return (self.object_name or "").encode()


def _preselection(preselect: str | Query | None) -> Query | None:
    """``preselect`` as a query: a predicate, with or without the leading ``select``."""
    if preselect is None or isinstance(preselect, Query):
        query = preselect
    else:
        text = preselect.strip()
        first = text.split(None, 1)[0].lower() if text else ""
        query = parse_query(text if first == "select" else f"select {text}")
    if query is not None and query.projection:
        raise ValueError(f"preselect is a predicate, not a projection: {query.to_string()!r}")
    return query


def _ranges(first: int, stop: int, parts: int) -> Iterator[tuple[int, int]]:
    count = stop - first
    parts = max(1, min(parts, count))
    bounds = [first + (i * count) // parts for i in range(parts + 1)]
    yield from itertools.pairwise(bounds)


def _schema_key(dataset: Dataset, file: File, tree: TreeInfo) -> str:
    return f"{dataset.name}:{dataset.ingest_id}:{file.file_no}:{tree.key}"


def work_items(
    dataset: DatasetSpec,
    *,
    store: str | os.PathLike[str] | None = None,
    preselect: str | Query | None = None,
    treename: str = "Events",
    chunks_per_object: int = 1,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[list[SkyhookWorkItem], dict[str, str], int]:
    """The chunks of a run, the tree schemas they need (base64, by tree), and how
    many objects the preselection let be skipped by their statistics.

    When every object is skipped (or the trees are empty) one empty chunk remains, so the
    processor still runs once and its output has its usual shape.
    """
    if chunks_per_object < 1:
        raise ValueError(f"chunks_per_object must be >= 1, not {chunks_per_object}")
    items: list[SkyhookWorkItem] = []
    schemas: dict[str, str] = {}
    skipped = 0
    first_empty: SkyhookWorkItem | None = None
    query = _preselection(preselect)
    for entry in fileset_entries(dataset, store, treename, metadata):
        for file in entry.files:
            tree = file.tree(entry.treename)
            key = _schema_key(entry.dataset, file, tree)
            schemas[key] = tree.schema_b64
            where = f"in the preselection, for file {file.name!r} of dataset {entry.dataset.name!r}"
            scan = plan(file, query, tree=tree.key, where=where)
            common = {
                "dataset": entry.label,
                "filename": file.url or file.name,
                "store_url": entry.dataset.store_url,
                "treename": entry.treename,
                "schema_key": key,
                "usermeta": entry.metadata or None,
                "root_uuid": file.uuid or "",
            }
            if first_empty is None:
                first_empty = SkyhookWorkItem(
                    entrystart=0,
                    entrystop=0,
                    object_name=None,
                    object_rows=0,
                    object_bytes=0,
                    **common,
                )
            skipped += len(scan.skipped)
            for obj in scan.objects:
                for start, stop in _ranges(obj.first_event, obj.stop_event, chunks_per_object):
                    items.append(
                        SkyhookWorkItem(
                            entrystart=start,
                            entrystop=stop,
                            object_name=obj.name,
                            object_rows=obj.rows,
                            object_bytes=obj.bytes,
                            # None where the statistics prove every event passes
                            preselect=None if obj.unfiltered else scan.predicate,
                            **common,
                        )
                    )
    if not items and first_empty is not None:
        items.append(first_empty)
    return items, schemas, skipped


# --- processing one chunk ----------------------------------------------------------------------


@dataclass
class RunReport:
    """What a run read: the columns fetched (with the bytes returned for each), the storage
    calls, and the events before and after the preselection."""

    columns: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    rows_in: int = 0  # events in the chunks' ranges
    rows_out: int = 0  # events the processor saw (those passing the preselection)
    calls: int = 0
    bytes_returned: int = 0  # result bytes sent back by the storage
    bytes_read: int = 0  # object bytes the storage read to answer
    objects: int = 0  # objects processed
    object_bytes: int = 0  # their stored size: what reading them whole would cost
    objects_skipped: int = 0  # objects the preselection excluded by their statistics

    @property
    def fetched(self) -> list[str]:
        """The columns fetched, sorted."""
        return sorted(self.columns)

    def __add__(self, other: RunReport) -> RunReport:
        columns = dict(self.columns)
        for name, size in other.columns.items():
            columns[name] = columns.get(name, 0) + size
        sums = {
            name: getattr(self, name) + getattr(other, name)
            for name in self.__dataclass_fields__
            if name != "columns"
        }
        return RunReport(columns=columns, **sums)


@dataclass(frozen=True)
class Payload:
    """What every chunk needs and is large: the pickled processor and the trees' schemas."""

    processor: bytes
    schemas: Mapping[str, str]

    @cached_property
    def processor_key(self) -> bytes:
        """A short digest of the pickled processor, computed once per payload."""
        return hashlib.blake2b(self.processor, digest_size=16).digest()


@lru_cache(maxsize=16)
def _schema(text: str) -> pa.Schema:
    return mf.decode_schema(text)


@lru_cache(maxsize=16)
def _form_json(text: str) -> str:
    # Kept as JSON: parsing it gives each chunk its own copy (the schema edits the form)
    # several times faster than deep-copying ~1500 branch forms.
    return json.dumps(base_form(_schema(text)))


def describe(item: SkyhookWorkItem) -> str:
    where = f"object {item.object_name}" if item.object_name else "an empty chunk"
    return (
        f"events {item.entrystart}..{item.entrystop} of {item.filename} (dataset "
        f"{item.dataset!r}, {where})"
    )


# Columns each processor touched in earlier chunks run by this process, by the processor's
# pickle and tree: later chunks fetch them in one call instead of one call per column.
_TOUCHED: OrderedDict[tuple[bytes, str], frozenset[str]] = OrderedDict()
_TOUCHED_KEEP = 32


def _learned(key: tuple[bytes, str]) -> frozenset[str]:
    columns = _TOUCHED.get(key, frozenset())
    if columns:
        _TOUCHED.move_to_end(key)
    return columns


def _learn(key: tuple[bytes, str], columns: Iterable[str]) -> None:
    _TOUCHED[key] = _TOUCHED.get(key, frozenset()) | frozenset(columns)
    _TOUCHED.move_to_end(key)
    while len(_TOUCHED) > _TOUCHED_KEEP:
        _TOUCHED.popitem(last=False)


@dataclass(frozen=True)
class ChunkProcessor:
    """The function each chunk runs (in this process, a pool process or a Dask worker).

    ``payload`` is None when it travels with the items instead (Dask's ``heavy_input``).
    """

    schemaclass: Any
    strict: bool
    compression: str | None
    payload: Payload | None = None
    readahead: ReadAhead | None = None  # runs processing the chunks in order, in this process

    def _columns(self, item: SkyhookWorkItem, payload: Payload) -> ChunkColumns:
        spec = ChunkSpec(
            item.store_url,
            item.object_name,
            item.entrystart,
            item.entrystop,
            len(item) == item.object_rows,
            item.preselect,
            self.compression,
            self.strict,
        )
        return ChunkColumns(spec, _schema(payload.schemas[item.schema_key]))

    def __call__(self, item: SkyhookWorkItem | tuple[SkyhookWorkItem, Payload]) -> dict[str, Any]:
        if isinstance(item, tuple):
            item, payload = item
        else:
            assert self.payload is not None
            payload = self.payload
        # A fresh processor per chunk, as coffea's Runner does: no state leaks between chunks.
        processor = cloudpickle.loads(lz4.frame.decompress(payload.processor))
        text = payload.schemas[item.schema_key]
        columns = self._columns(item, payload)
        touched = (payload.processor_key, item.treename)
        learned = _learned(touched)
        columns.prefetch(learned, self.readahead.take(item) if self.readahead else None)
        following = self.readahead.next_item(item) if self.readahead else None
        if following is not None and learned:
            assert self.readahead is not None
            self.readahead.start(following, self._columns(following, payload), learned)
        metadata = {
            "dataset": item.dataset,
            "filename": item.filename,
            "treename": item.treename,
            "entrystart": item.entrystart,
            "entrystop": item.entrystop,
            "fileuuid": item.root_uuid,
            **(item.usermeta or {}),
        }
        uuid = f"{item.object_name or 'empty'}:{item.entrystart}-{item.entrystop}"
        try:
            events = make_events(
                columns,
                self.schemaclass,
                metadata,
                uuid,
                item.treename,
                json.loads(_form_json(text)),
            )
            if isinstance(processor, coffea_processor.ProcessorABC):
                out = processor.process(events)
            else:
                out = processor(events)
        except Exception as exc:
            exc.add_note(f"while processing {describe(item)}")
            raise
        _learn(touched, columns.fetched)
        if out is None:
            raise ValueError(
                f"the processor returned None for {describe(item)}; process() must return an "
                "accumulator"
            )
        report = RunReport(
            columns=dict(columns.fetched),
            chunks=1,
            rows_in=len(item),
            rows_out=columns.rows,
            calls=columns.metrics.calls,
            bytes_returned=columns.metrics.bytes_returned,
            bytes_read=columns.metrics.bytes_read,
        )
        return {"out": out, "report": report}
