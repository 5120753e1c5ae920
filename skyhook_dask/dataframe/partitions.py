"""How a scan plan becomes partitions, and the reader every partition's task calls.

:func:`partitions` groups a plan's objects into :class:`Part` s (consecutive objects of one
file), each object with the request the plan made for it. :class:`PartitionReader` is the
callable each task runs: it calls the object class on the objects of one Part -- projection
and predicate inside the storage -- and returns a pandas DataFrame (list columns as
``pd.ArrowDtype``) or an awkward array.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ..formats.objects import EVENT_ID
from ..plan.plan import ScanPlan
from ..runtime.calls import call_object

__all__ = ["Part", "PartitionReader", "divisions", "partitions", "projection"]


@dataclass(frozen=True)
class Part:
    """One output partition: consecutive objects of file ``file`` (-1 and none: an empty
    partition), each as (object name, request), their event range and stored rows."""

    file: int
    objects: tuple[tuple[str, bytes], ...]
    first_event: int
    stop_event: int
    rows: int


EMPTY = Part(-1, (), 0, 0, 0)


def partitions(plan: ScanPlan, objects_per_partition: int) -> list[Part]:
    """The plan's objects in groups of up to ``objects_per_partition`` of one file; at least
    one partition (an empty one when nothing can match)."""
    if objects_per_partition < 1:
        raise ValueError(f"objects_per_partition must be >= 1, not {objects_per_partition}")
    parts = []
    for file, group in itertools.groupby(plan.objects, key=lambda o: o.file):
        objects = list(group)
        for start in range(0, len(objects), objects_per_partition):
            chunk = objects[start : start + objects_per_partition]
            parts.append(
                Part(
                    file,
                    tuple((o.name, plan.payload(o)) for o in chunk),
                    chunk[0].first_event,
                    chunk[-1].stop_event,
                    sum(o.rows for o in chunk),
                )
            )
    return parts or [EMPTY]


def projection(
    plan: ScanPlan, columns: Sequence[str] | None, index: str | None
) -> tuple[list[str] | None, list[str]]:
    """What partitions read of ``plan`` for ``columns`` (None: every column) and the index --
    None meaning every column -- and the columns they return besides the index."""
    if columns is None:
        return None, [n for n in plan.output_columns if n != index]
    return [c for c in [index, *columns] if c is not None], list(columns)


def divisions(parts: Sequence[Part], index: str | None) -> tuple[int, ...] | None:
    """Event-range divisions for an ``event_id`` index within one file, else unknown."""
    if index != EVENT_ID or len({p.file for p in parts}) != 1 or not parts[0].objects:
        return None
    firsts = [p.first_event for p in parts]
    last = parts[-1].stop_event - 1
    if any(b <= a for a, b in itertools.pairwise(firsts)) or last < firsts[-1]:
        return None  # not increasing: leave them unknown
    return (*firsts, last)


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


class PartitionReader:
    """Reads one partition: the index column (if any), then ``columns``; a column its file
    lacks comes back as nulls. Carries only the schema of what it returns, so a task weighs
    a few hundred bytes, not the ~100 kB of a NanoAOD schema."""

    def __init__(
        self,
        plan: ScanPlan,
        columns: Sequence[str],
        index: str | None,
        dtype_backend: str | None,
        strict: bool,
    ) -> None:
        wanted = [c for c in [index, *columns] if c is not None]
        self.schema = plan.schema.empty_table().select(wanted).schema
        self.missing = [m.intersection(wanted) for m in plan.layout.missing]
        self.store_url, self.dataset_name = plan.store_url, plan.layout.dataset_name
        self.index, self.dtype_backend, self.strict = index, dtype_backend, strict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dataset_name!r} in {self.store_url})"

    def read_table(self, part: Part) -> pa.Table:
        if not part.objects:
            return self.schema.empty_table()
        tables = [
            call_object(self.store_url, name, "scan", payload, strict=self.strict)[0]
            for name, payload in part.objects
        ]
        table = pa.concat_tables(tables)
        result = table.select([])  # keeps the row count, also when no column is wanted
        for field in self.schema:
            if field.name in self.missing[part.file]:
                column = pa.nulls(len(table), field.type)
            else:
                column = table.column(field.name)
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

    def __call__(self, part: Part) -> pd.DataFrame:
        return self.to_pandas(self.read_table(part))

    def read_awkward(self, part: Part) -> Any:
        import awkward as ak

        return ak.from_arrow(self.read_table(part))

    def meta(self) -> pd.DataFrame:
        """The empty frame a partition looks like."""
        return self.to_pandas(self.schema.empty_table())
