"""How a dataset becomes partitions: the plan-side layout and the reader every task calls.

:class:`DatasetLayout` (client side) knows one tree of a dataset: the files' unified schema,
the objects with their event ranges and statistics, and how they group into partitions
(:class:`Part`). :class:`ObjectPartitionReader` is the callable each task runs: it scans the
objects of one Part in the storage -- projection and predicate inside the object class -- and
returns an Arrow table, a pandas DataFrame (list columns as ``pd.ArrowDtype``) or an awkward
array.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import pyarrow as pa

from . import config
from .catalog import Dataset, File, TreeInfo
from .exceptions import SchemaError, UnknownColumnError
from .expr import Expr, columns_of
from .objects import EVENT_ID
from .planning import may_match, must_match
from .plugin import scan_object
from .protocol import ScanRequest

__all__ = ["DatasetLayout", "ObjectPartitionReader", "ObjectRef", "Part", "predicate_token"]


@dataclass(frozen=True)
class ObjectRef:
    """One object as a task needs it: its name and its event range. ``unfiltered_for`` names
    (:func:`predicate_token`) the predicate that its statistics prove every row satisfies."""

    name: str
    first_event: int
    stop_event: int
    rows: int
    unfiltered_for: str | None = None


def predicate_token(predicate: Expr) -> str:
    """A short name of ``predicate``, from its canonical wire encoding."""
    encoded = ScanRequest(predicate=predicate).encode()
    return hashlib.blake2b(encoded, digest_size=12).hexdigest()


@dataclass(frozen=True)
class Part:
    """One output partition: consecutive objects of one file (none: an empty partition)."""

    file: int
    objects: tuple[ObjectRef, ...]

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.objects)


class DatasetLayout:
    """What planning knows of one tree of a dataset: files, objects, statistics, schema.

    Stays on the client: tasks receive only their :class:`Part`.
    """

    def __init__(self, dataset: Dataset, tree_spec: str, objects_per_partition: int) -> None:
        if objects_per_partition < 1:
            raise ValueError(f"objects_per_partition must be >= 1, not {objects_per_partition}")
        self.dataset_name, self.store_url = dataset.name, dataset.store_url
        self.version = (dataset.ingest_id, dataset.created)
        self.tree_spec = tree_spec
        self.trees: list[TreeInfo] = [_tree_of(f, tree_spec, dataset) for f in dataset.files]
        self.schema, self.conflicts = _unify(self.trees, dataset.files)
        self.file_columns = [frozenset(t.schema.names) for t in self.trees]
        self.columns_everywhere = [
            name for name in self.schema.names if all(name in c for c in self.file_columns)
        ]
        self.stats = {o.name: o.stats for t in self.trees for o in t.objects}
        self.parts = [
            Part(n, tuple(ObjectRef(o.name, o.first_event, o.stop_event, o.rows) for o in group))
            for n, tree in enumerate(self.trees)
            for group in _chunks(tree.objects, objects_per_partition)
        ]
        self.file_names = [f.name for f in dataset.files]

    def __dask_tokenize__(self) -> object:
        return (
            type(self).__name__,
            self.store_url,
            self.dataset_name,
            self.version,
            self.tree_spec,
        )

    def select(self, parts: Sequence[Part], predicate: Expr | None) -> list[Part]:
        """``parts`` without the objects whose statistics exclude ``predicate``, the others
        marked where their statistics prove that every row satisfies it (such objects are read
        unfiltered when read with that predicate); at least one partition remains (an empty
        one when nothing can match)."""
        token = None if predicate is None else predicate_token(predicate)
        kept = []
        for part in parts:
            objects = tuple(
                replace(o, unfiltered_for=token if must_match(predicate, stats) else None)
                for o in part.objects
                if may_match(predicate, stats := self.stats[o.name])
            )
            if objects:
                kept.append(Part(part.file, objects))
        return kept or [Part(-1, ())]

    def divisions(self, parts: Sequence[Part], index: str | None) -> tuple[int, ...] | None:
        """Event-range divisions for an ``event_id`` index within one file, else unknown."""
        if index != EVENT_ID or len({p.file for p in parts}) != 1 or not parts[0].objects:
            return None
        firsts = [p.objects[0].first_event for p in parts]
        last = parts[-1].objects[-1].stop_event - 1
        if any(b <= a for a, b in itertools.pairwise(firsts)) or last < firsts[-1]:
            return None  # not increasing: leave them unknown
        return (*firsts, last)

    def check_known(self, name: str) -> None:
        """A column of the dataset, else SchemaError (types differ) or UnknownColumnError."""
        if name in self.conflicts:
            raise SchemaError(
                f"column {name!r} of dataset {self.dataset_name!r} has type "
                f"{self.conflicts[name]}; read those files separately"
            )
        if self.schema.get_field_index(name) < 0:
            raise UnknownColumnError(
                name, self.schema.names, where=f"dataset {self.dataset_name!r}"
            )

    def check_columns(self, predicate: Expr | None, where: str) -> None:
        """Every column of ``predicate`` must exist in every file (the scan needs it)."""
        for name in columns_of(predicate):
            for n, names in enumerate(self.file_columns):
                if name not in names:
                    raise UnknownColumnError(
                        name, names, where=f"file {self.file_names[n]!r} ({where})"
                    )


def _tree_of(file: File, spec: str, dataset: Dataset) -> TreeInfo:
    try:
        return file.tree(spec)
    except KeyError as exc:
        exc.add_note(f"in file {file.name!r} of dataset {dataset.name!r}")
        raise


def _unify(trees: list[TreeInfo], files: list[File]) -> tuple[pa.Schema, dict[str, str]]:
    """The dataset's columns in first-seen order, and the columns whose type differs between
    files (left out, each with a description of the disagreement)."""
    fields: dict[str, pa.Field] = {}
    seen_in: dict[str, list[str]] = {}
    conflicts: dict[str, str] = {}
    for tree, file in zip(trees, files, strict=True):
        for field in tree.schema:
            seen_in.setdefault(field.name, []).append(file.name)
            known = fields.setdefault(field.name, field)
            if known.type != field.type and field.name not in conflicts:
                conflicts[field.name] = (
                    f"{known.type} in {seen_in[field.name][0]!r} but {field.type} in {file.name!r}"
                )
            elif field.nullable and not known.nullable:
                fields[field.name] = known.with_nullable(True)
    # A column some file lacks is null in that file's rows.
    schema = pa.schema(
        [
            f.with_nullable(True) if len(seen_in[name]) < len(trees) else f
            for name, f in fields.items()
            if name not in conflicts
        ]
    )
    return schema, conflicts


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _nullable_dtypes() -> dict[pa.DataType, Any]:
    dtypes: dict[pa.DataType, Any] = {
        pa.bool_(): pd.BooleanDtype(),
        pa.float32(): pd.Float32Dtype(),
        pa.float64(): pd.Float64Dtype(),
    }
    for bits in (8, 16, 32, 64):
        dtypes[getattr(pa, f"int{bits}")()] = pd.api.types.pandas_dtype(f"Int{bits}")
        dtypes[getattr(pa, f"uint{bits}")()] = pd.api.types.pandas_dtype(f"UInt{bits}")
    return dtypes


def _has_large_list(arrow_type: pa.DataType) -> bool:
    if pa.types.is_large_list(arrow_type):
        return True
    return pa.types.is_list(arrow_type) and _has_large_list(arrow_type.value_type)


def _small_list(arrow_type: pa.DataType) -> pa.DataType:
    if pa.types.is_large_list(arrow_type) or pa.types.is_list(arrow_type):
        return pa.list_(arrow_type.value_field.with_type(_small_list(arrow_type.value_type)))
    return arrow_type


def _small_field(field: pa.Field) -> pa.Field:
    return field.with_type(_small_list(field.type)) if _has_large_list(field.type) else field


def _types_mapper(dtype_backend: str | None) -> Any:
    """pandas dtypes for Arrow types; list columns always stay Arrow-backed."""
    nullable = _nullable_dtypes() if dtype_backend == "numpy_nullable" else {}

    def mapper(arrow_type: pa.DataType) -> Any:
        if dtype_backend == "pyarrow" or pa.types.is_nested(arrow_type):
            return pd.ArrowDtype(arrow_type)
        if dtype_backend == "numpy_nullable":
            return nullable.get(arrow_type)
        return None

    return mapper


class ObjectPartitionReader:
    """Reads one partition: scans its objects in the storage and returns a pandas DataFrame.

    Called by every task with a :class:`Part`; ``columns`` (the projection dask-expr pushes in)
    and ``predicate`` (a bound expression) go to the object class.
    """

    def __init__(
        self, layout: DatasetLayout, index: str | None, dtype_backend: str | None, strict: bool
    ) -> None:
        self.store_url, self.dataset_name = layout.store_url, layout.dataset_name
        self.schema = layout.schema
        # Per file, the dataset columns it lacks (usually none): those come back as nulls.
        names = frozenset(self.schema.names)
        self.missing = [names - present for present in layout.file_columns]
        self.index, self.dtype_backend, self.strict = index, dtype_backend, strict
        self.compression = config.compression("result-compression")
        # Schemas of NanoAOD trees hold ~1500 fields: fingerprint once, not per tokenize.
        self._schema_digest = hashlib.sha256(self.schema.serialize().to_pybytes()).hexdigest()
        self._metas: dict[tuple[str, ...] | None, pd.DataFrame] = {}

    def narrowed(self, columns: Sequence[str]) -> ObjectPartitionReader:
        """A copy that knows only ``columns`` (and the index): what a task needs."""
        keep = [c for c in [self.index, *columns] if c is not None]
        reader = copy.copy(self)
        reader.schema = self.schema.empty_table().select(keep).schema
        reader.missing = [missing.intersection(keep) for missing in self.missing]
        reader._metas = {}
        return reader

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_metas": {}}  # the meta cache stays on the client

    def __dask_tokenize__(self) -> object:
        return (
            type(self).__name__,
            self.store_url,
            self.dataset_name,
            self._schema_digest,
            self.index,
            self.dtype_backend,
            self.strict,
            self.compression,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dataset_name!r} in {self.store_url})"

    def output_columns(self, columns: Sequence[str] | None) -> list[str]:
        if columns is not None:
            return list(columns)
        return [name for name in self.schema.names if name != self.index]

    def read_table(
        self, part: Part, columns: Sequence[str] | None = None, predicate: Expr | None = None
    ) -> pa.Table:
        """The selected rows of ``part`` as one table: the index column (if any), then
        ``columns`` (all when None); columns a file lacks come back as nulls."""
        wanted = self.output_columns(columns)
        if self.index is not None:
            wanted = [self.index, *wanted]
        target = self.schema.empty_table().select(wanted).schema
        if not part.objects:
            return target.empty_table()
        present = [c for c in wanted if c not in self.missing[part.file]]
        # An empty projection means "every column" on the wire: ask for the cheapest one.
        request = ScanRequest(tuple(present or [EVENT_ID]), predicate, (), self.compression)
        filtered, unfiltered = request.encode(), replace(request, predicate=None).encode()
        token = None if predicate is None else predicate_token(predicate)
        tables = [
            scan_object(
                self.store_url,
                o.name,
                unfiltered if token is not None and o.unfiltered_for == token else filtered,
                self.strict,
            )[0]
            for o in part.objects
        ]
        table = pa.concat_tables(tables)
        result = table.select([])  # keeps the row count, also when no column is wanted
        for name in wanted:
            field = target.field(name)
            column = table.column(name) if name in present else pa.nulls(len(table), field.type)
            result = result.append_column(field, column)
        return result

    def to_pandas(self, table: pa.Table) -> pd.DataFrame:
        if any(_has_large_list(t) for t in table.schema.types):
            # Objects may store large_list; pandas users get plain list<...> columns.
            table = table.cast(pa.schema([_small_field(f) for f in table.schema]))
        frame = table.to_pandas(types_mapper=_types_mapper(self.dtype_backend))
        if self.index is not None:
            frame = frame.set_index(self.index)
        return frame

    def __call__(
        self, part: Part, columns: Sequence[str] | None = None, predicate: Expr | None = None
    ) -> pd.DataFrame:
        return self.to_pandas(self.read_table(part, columns, predicate))

    def read_awkward(
        self, part: Part, columns: Sequence[str] | None = None, predicate: Expr | None = None
    ) -> Any:
        import awkward as ak

        return ak.from_arrow(self.read_table(part, columns, predicate))

    def meta(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The empty frame a partition with ``columns`` (None: all) looks like (cached)."""
        key = None if columns is None else tuple(columns)
        meta = self._metas.get(key)
        if meta is None:
            meta = self._metas[key] = self.to_pandas(self.read_table(Part(-1, ()), columns))
        return meta
