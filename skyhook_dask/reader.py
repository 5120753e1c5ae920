"""``read_skyhook``: a dataset as a Dask DataFrame, one partition per object (or object group).

Built like ``dd.from_map`` with a named callable class that accepts ``columns=``, so dask-expr
pushes column projections into the object calls; :mod:`skyhook_dask.pushdown` also pushes
``df[df.x > c]`` predicates into them. Everything sent to the storage -- projection, the
predicate from ``filters=``, ``query=`` or a pushed-down Filter -- runs inside the object class;
partitions whose objects' statistics exclude the predicate are dropped before any task runs.

Jagged branches become ``pd.ArrowDtype(pa.list_(...))`` columns, never Python objects.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import pyarrow.compute as pc

from . import config
from .backends import normalize_url
from .catalog import Dataset, load_dataset
from .exceptions import UnknownColumnError
from .expr import Expr, conjunction
from .partitions import DatasetLayout, ObjectPartitionReader, Part
from .planning import arrow_expression_to_expr, bind, filters_to_expr, resolve_tree, split_key
from .plugin import process_metrics
from .protocol import ScanMetrics
from .query import Query, parse_query

__all__ = [
    "ColumnConflictWarning",
    "MetricsCollector",
    "collect_metrics",
    "read_awkward",
    "read_skyhook",
]

DTYPE_BACKENDS = ("pyarrow", "numpy_nullable", None)


class ColumnConflictWarning(UserWarning):
    """Some columns have different types in different files of a dataset and are left out."""


# --- planning a read ---------------------------------------------------------------------------


@dataclass
class _ReadPlan:
    layout: DatasetLayout
    columns: list[str] | None
    predicate: Expr | None
    parts: list[Part]


def _dataset_of(dataset: str | Dataset, store: str | os.PathLike[str] | None) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a name or a Dataset, not {type(dataset).__name__}")
    return load_dataset(normalize_url(store), dataset)


def _plan_read(
    dataset: str | Dataset,
    columns: Sequence[str] | str | None,
    filters: Any,
    store: str | os.PathLike[str] | None,
    tree: str,
    objects_per_partition: int,
    query: str | Query | None,
) -> _ReadPlan:
    ds = _dataset_of(dataset, store)
    parsed = parse_query(query) if isinstance(query, str) else query
    tree_spec = tree
    if parsed is not None:
        all_trees = {key: t.schema for f in ds.files for key, t in f.trees.items()}
        tree_spec = resolve_tree(parsed, all_trees, default=split_key(tree)[0])
    layout = DatasetLayout(ds, tree_spec, objects_per_partition)
    try:
        columns, predicate = _columns_and_predicate(layout, columns, filters, parsed, tree_spec)
    except UnknownColumnError as exc:
        layout.check_known(exc.column)  # a column whose type differs between files
        raise
    if columns is None and layout.conflicts:
        warnings.warn(
            f"dataset {ds.name!r}: columns whose type differs between files are left out: "
            + "; ".join(f"{name} ({why})" for name, why in layout.conflicts.items()),
            ColumnConflictWarning,
            stacklevel=3,
        )
    return _ReadPlan(layout, columns, predicate, layout.select(layout.parts, predicate))


def _columns_and_predicate(
    layout: DatasetLayout,
    columns: Sequence[str] | str | None,
    filters: Any,
    parsed: Query | None,
    tree_spec: str,
) -> tuple[list[str] | None, Expr | None]:
    wanted = [columns] if isinstance(columns, str) else None if columns is None else list(columns)
    predicates = []
    if parsed is not None:
        bound = bind(parsed, {tree_spec: layout.schema}, default=split_key(tree_spec)[0])
        if bound.columns:
            if wanted is not None and wanted != list(bound.columns):
                raise ValueError(
                    f"columns={wanted!r} and the query's projection {list(bound.columns)!r} "
                    "disagree; give one of them"
                )
            wanted = list(bound.columns)
        predicates.append(bound.predicate)
    if isinstance(filters, pc.Expression):
        predicates.append(arrow_expression_to_expr(filters, layout.schema))
    elif filters is not None:
        predicates.append(filters_to_expr(filters, layout.schema))
    predicate = conjunction([p for p in predicates if p is not None])
    layout.check_columns(predicate, "the predicate")
    for name in wanted or ():
        layout.check_known(name)
    return wanted, predicate


def read_skyhook(
    dataset: str | Dataset,
    columns: Sequence[str] | str | None = None,
    filters: Any = None,
    *,
    store: str | os.PathLike[str] | None = None,
    tree: str = "Events",
    dtype_backend: str | None = "pyarrow",
    index: str | None = None,
    objects_per_partition: int = 1,
    query: str | Query | None = None,
    strict: bool | None = None,
) -> Any:
    """A Skyhook dataset (a name in ``store``, or a :class:`~skyhook_dask.catalog.Dataset`)
    as a Dask DataFrame of one tree, one partition per object (or ``objects_per_partition``).

    ``filters`` are DNF tuples as for ``read_parquet`` or a ``pyarrow.compute.Expression``;
    ``query`` a ``"select ..., project ..."`` string. Both run in the storage. ``index``
    names a column to use as the index; ``"event_id"`` gives known divisions for a one-file
    dataset. ``strict`` (default: the ``skyhook.strict`` setting) fails instead of filtering
    on the client when the storage lacks the object class.
    """
    from dask.dataframe.dask_expr._collection import new_collection
    from dask.typing import no_default

    from .pushdown import ReadSkyhook

    if dtype_backend not in DTYPE_BACKENDS:
        raise ValueError(f"dtype_backend must be one of {DTYPE_BACKENDS}, not {dtype_backend!r}")
    plan = _plan_read(dataset, columns, filters, store, tree, objects_per_partition, query)
    layout = plan.layout
    if index is not None:
        layout.check_known(index)
    if plan.columns is not None and index in plan.columns:
        plan.columns.remove(index)
    strict = bool(config.get("strict")) if strict is None else bool(strict)
    reader = ObjectPartitionReader(layout, index, dtype_backend, strict)
    expr = ReadSkyhook(
        reader,
        [plan.parts],
        plan.columns,
        [],
        {},
        False,
        no_default,  # the expression builds its meta from the schema (ReadSkyhook.frame_meta)
        False,
        layout.divisions(plan.parts, index),
        f"read-skyhook-{layout.dataset_name}",
        None,
        False,
        layout,
        plan.predicate,
    )
    return new_collection(expr)


def read_awkward(
    dataset: str | Dataset,
    columns: Sequence[str] | str | None = None,
    filters: Any = None,
    *,
    store: str | os.PathLike[str] | None = None,
    tree: str = "Events",
    objects_per_partition: int = 1,
    query: str | Query | None = None,
    strict: bool | None = None,
    compute: bool = False,
) -> Any:
    """The same read as :func:`read_skyhook`, as awkward arrays: a list of ``dask.delayed``
    arrays (one per partition), or with ``compute=True`` one concatenated awkward array."""
    import dask
    from dask.base import tokenize

    plan = _plan_read(dataset, columns, filters, store, tree, objects_per_partition, query)
    strict = bool(config.get("strict")) if strict is None else bool(strict)
    reader = ObjectPartitionReader(plan.layout, None, "pyarrow", strict)
    name = f"read-skyhook-{plan.layout.dataset_name}-awkward-"
    name += tokenize(reader, plan.layout, plan.parts, plan.columns, plan.predicate)
    read = dask.delayed(reader.read_awkward, pure=True)
    parts = [
        read(part, plan.columns, plan.predicate, dask_key_name=(name, i))
        for i, part in enumerate(plan.parts)
    ]
    if not compute:
        return parts
    import awkward as ak

    return ak.concatenate(list(dask.compute(*parts)))


# --- instrumentation ---------------------------------------------------------------------------


def _snapshot() -> tuple[int, ScanMetrics]:
    return os.getpid(), process_metrics()


class MetricsCollector:
    """Sums the scan metrics of every object call made while it is open, in this process and
    (given a distributed client, or when one is the default) on every worker."""

    def __init__(self, client: Any = None) -> None:
        if client is None:
            with contextlib.suppress(ImportError, ValueError):
                from distributed import default_client

                client = default_client()
        self.client = client
        self.metrics = ScanMetrics()
        self._start: dict[int, ScanMetrics] = {}

    def _totals(self) -> dict[int, ScanMetrics]:
        pid, local = _snapshot()
        totals = {pid: local}
        if self.client is not None:
            for worker_pid, metrics in self.client.run(_snapshot).values():
                totals[worker_pid] = metrics
        return totals

    def __enter__(self) -> MetricsCollector:
        self._start = self._totals()
        return self

    def __exit__(self, *exc: object) -> None:
        result = ScanMetrics()
        for pid, end in self._totals().items():
            start = self._start.get(pid, ScanMetrics())
            for f in fields(ScanMetrics):
                spent = getattr(end, f.name) - getattr(start, f.name)
                setattr(result, f.name, getattr(result, f.name) + spent)
        self.metrics = result


def collect_metrics(client: Any = None) -> MetricsCollector:
    """``with collect_metrics() as m: df.compute()`` then ``m.metrics.rows_out`` etc."""
    return MetricsCollector(client)
