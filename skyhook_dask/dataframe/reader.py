"""``read_skyhook``: a dataset as a Dask DataFrame, one partition per object (or object group).

The read is planned once (:func:`skyhook_dask.plan.plan`): projection, the predicate from
``filters=`` or ``query=``, and the objects whose statistics exclude it dropped before any task
runs. dask-expr then pushes column projections and ``df[df.x > c]`` predicates into the plan
(:mod:`skyhook_dask.dataframe.pushdown`); everything runs inside the object class.

Jagged branches become ``pd.ArrowDtype(pa.list_(...))`` columns, never Python objects.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from .. import config
from ..catalog.model import Dataset, File, load_dataset
from ..formats.protocol import ScanMetrics
from ..plan.plan import ColumnConflictWarning, ScanPlan, plan
from ..query.parser import Query, parse_query
from ..runtime.calls import process_metrics
from ..runtime.locality import place_reads
from ..storage import normalize_url
from .partitions import PartitionReader, divisions, partitions, projection

__all__ = [
    "ColumnConflictWarning",
    "MetricsCollector",
    "PushdownUnavailableWarning",
    "collect_metrics",
    "read_awkward",
    "read_skyhook",
]

DTYPE_BACKENDS = ("pyarrow", "numpy_nullable", None)


class PushdownUnavailableWarning(UserWarning):
    """This dask version lacks what predicate pushdown needs: filters run after the read."""


def _plan_read(
    dataset: str | Dataset | File,
    columns: Sequence[str] | str | None,
    filters: Any,
    store: str | os.PathLike[str] | None,
    tree: str,
    query: str | Query | None,
    version: int | None = None,
) -> ScanPlan:
    if isinstance(dataset, str):
        dataset = load_dataset(normalize_url(store), dataset, version)
    elif version is not None:
        raise TypeError("version= goes with a dataset name; a Dataset or File is one version")
    elif not isinstance(dataset, Dataset | File):
        kind = type(dataset).__name__
        raise TypeError(f"dataset must be a name, a Dataset or a File, not {kind}")
    parsed = parse_query(query) if isinstance(query, str) else query
    return plan(dataset, parsed, columns=columns, filters=filters, tree=tree)


def read_skyhook(
    dataset: str | Dataset | File,
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
    version: int | None = None,
) -> Any:
    """A Skyhook dataset (a name in ``store``, a :class:`~skyhook_dask.catalog.Dataset`, or
    one of its :class:`~skyhook_dask.catalog.File` s) as a Dask DataFrame of one tree, one
    partition per object (or ``objects_per_partition``).

    ``filters`` are DNF tuples as for ``read_parquet`` or a ``pyarrow.compute.Expression``;
    ``query`` a ``"select ..., project ..."`` string. Both run in the storage. ``index``
    names a column to use as the index; ``"event_id"`` gives known divisions for a one-file
    dataset. ``strict`` (default: the ``skyhook.strict`` setting) fails instead of filtering
    on the client when the storage lacks the object class. ``version`` reads that version of
    a dataset named (default: the current one).
    """
    if dtype_backend not in DTYPE_BACKENDS:
        raise ValueError(f"dtype_backend must be one of {DTYPE_BACKENDS}, not {dtype_backend!r}")
    if objects_per_partition < 1:
        raise ValueError(f"objects_per_partition must be >= 1, not {objects_per_partition}")
    scan = _plan_read(dataset, columns, filters, store, tree, query, version)
    place_reads(scan.store_url, [o.name for o in scan.objects])  # on Dask: each beside its OSD
    if index is not None:
        scan.layout.check_known(index)
    wanted = None if scan.columns is None else [c for c in scan.columns if c != index]
    strict = bool(config.get("strict")) if strict is None else bool(strict)
    try:
        from dask.dataframe.dask_expr._collection import new_collection

        from .pushdown import ReadSkyhook, check_internals

        check_internals()
    except ImportError as exc:
        warnings.warn(
            f"{exc}; reading without pushdown (filters run after the read)",
            PushdownUnavailableWarning,
            stacklevel=2,
        )
        return _from_map(scan, wanted, index, dtype_backend, strict, objects_per_partition)
    expr = ReadSkyhook(
        plan=scan,
        columns=wanted,
        index=index,
        dtype_backend=dtype_backend,
        strict=strict,
        objects_per_partition=objects_per_partition,
    )
    return new_collection(expr)


def _from_map(
    scan: ScanPlan,
    columns: list[str] | None,
    index: str | None,
    dtype_backend: str | None,
    strict: bool,
    objects_per_partition: int,
) -> Any:
    import dask.dataframe as dd

    read, wanted = projection(scan, columns, index)
    scan = scan.refined(columns=read)
    parts = partitions(scan, objects_per_partition)
    reader = PartitionReader(scan, wanted, index, dtype_backend, strict)
    return dd.from_map(
        reader,
        parts,
        meta=reader.meta(),
        divisions=divisions(parts, index),
        label=f"read-skyhook-{scan.layout.dataset_name}",
        enforce_metadata=False,
    )


def read_awkward(
    dataset: str | Dataset | File,
    columns: Sequence[str] | str | None = None,
    filters: Any = None,
    *,
    store: str | os.PathLike[str] | None = None,
    tree: str = "Events",
    objects_per_partition: int = 1,
    query: str | Query | None = None,
    strict: bool | None = None,
    compute: bool = False,
    version: int | None = None,
) -> Any:
    """The same read as :func:`read_skyhook`, as awkward arrays: a list of ``dask.delayed``
    arrays (one per partition), or with ``compute=True`` one concatenated awkward array."""
    import dask

    scan = _plan_read(dataset, columns, filters, store, tree, query, version)
    strict = bool(config.get("strict")) if strict is None else bool(strict)
    reader = PartitionReader(scan, scan.output_columns, None, "pyarrow", strict)
    name = f"read-skyhook-{scan.layout.dataset_name}-awkward-{scan.token()}"
    read = dask.delayed(reader.read_awkward, pure=True)
    parts = [
        read(part, dask_key_name=(name, i))
        for i, part in enumerate(partitions(scan, objects_per_partition))
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
