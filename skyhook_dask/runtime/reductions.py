"""Reductions over a plan's objects: one ``skyhook.hist`` or ``skyhook.aggregate`` call per
object, over a mapper (here or on Dask), the partial results combined here: histogram counts
exactly, weight sums in object order; aggregates as protocol.py says.

An unweighted 1-D histogram of a plain numeric column is answered without a call for each object
read without a predicate whose statistics put the column's minimum and maximum in one cell:
binning is monotonic, so every value is in that cell, and the count is the rows less the nulls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..formats.histogram import Histogram
from ..formats.protocol import Aggregate, ScanMetrics, ScanRequest
from ..plan.plan import PlannedObject, ScanPlan
from ..query.expr import Column
from .calls import call_object
from .locality import place_reads
from .mappers import InProcess, Mapper, run_task

__all__ = [
    "FilledHistogram",
    "aggregate_plan",
    "combine_aggregates",
    "fill_histogram",
    "histogram_graph",
]

FAN_IN = 8  # partial histograms added per task of the tree reduction


@dataclass
class FilledHistogram:
    """Every cell with underflow and overflow, shaped as the axes: ``counts`` (int64), or the
    weight sums ``sumw`` and ``sumw2`` (float64) when the histogram is weighted."""

    counts: np.ndarray | None
    sumw: np.ndarray | None
    sumw2: np.ndarray | None
    metrics: ScanMetrics
    objects_scanned: int
    objects_skipped: int
    objects_from_statistics: int = 0  # of those scanned: answered by their statistics alone


def fill_histogram(
    plan: ScanPlan, histogram: Histogram, mapper: Mapper | None = None, *, label: str = "hist"
) -> FilledHistogram:
    """The histogram of ``plan``'s selected rows (its predicate; objects its statistics
    exclude are not read, those it proves wholly selected are read without it)."""
    known, called = _from_statistics(plan, histogram)
    parts, _ = _call_objects(plan, "hist", mapper, label, called, histogram=histogram)
    shape, weighted = histogram.shape, histogram.weight is not None
    partials = [_as_part(table, metrics, shape, weighted) for table, metrics in parts]
    partials += list(known.values())
    total = _add_parts(*partials) if partials else _empty_part(shape, weighted)
    return _filled(total, weighted, len(plan.objects), len(plan.skipped), len(known))


def histogram_graph(plan: ScanPlan, histogram: Histogram) -> Any:
    """A ``dask.delayed`` FilledHistogram of ``plan``: one task per object, the partial
    histograms added up in a tree of tasks (``FAN_IN`` at a time), so many histograms can
    share one graph and no single task gathers every object's result."""
    import dask

    settings = dict(dask.config.get("skyhook"))
    payloads = _payloads(plan, histogram=histogram)
    url, shape, weighted = plan.store_url, histogram.shape, histogram.weight is not None
    known, called = _from_statistics(plan, histogram)
    place_reads(url, [o.name for o in called])  # on a Dask cluster: each task beside its object
    part = dask.delayed(_histogram_part, pure=True)
    parts = [part(settings, url, o.name, payloads[o.unfiltered], shape, weighted) for o in called]
    if known or not parts:  # the histogram of the objects answered by their statistics
        parts.append(_add_parts(*known.values()) if known else _empty_part(shape, weighted))
    add = dask.delayed(_add_parts, pure=True)
    while len(parts) > 1:
        parts = [add(*parts[i : i + FAN_IN]) for i in range(0, len(parts), FAN_IN)]
    counts = (len(plan.objects), len(plan.skipped), len(known))
    return dask.delayed(_filled, pure=True)(parts[0], weighted, *counts)


def _from_statistics(
    plan: ScanPlan, histogram: Histogram
) -> tuple[dict[str, _Part], list[PlannedObject]]:
    """The partial histograms of the objects whose statistics answer them (by object name),
    and the objects left to call."""
    axis = histogram.axes[0]
    column = axis.value.name if isinstance(axis.value, Column) else None
    field = plan.layout.schema.field(column) if column in plan.layout.schema.names else None
    if (
        len(histogram.axes) > 1
        or histogram.weight is not None
        or field is None
        or not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type))
    ):
        return {}, list(plan.objects)
    known: dict[str, _Part] = {}
    called = []
    by_object = plan.layout.stats_of([column])
    for obj in plan.objects:
        stats = by_object[obj.name].get(column, {})
        read_whole = plan.predicate is None or obj.unfiltered
        if read_whole and "min" in stats and column not in plan.layout.missing[obj.file]:
            low, high = axis.cells(np.array([stats["min"], stats["max"]], dtype=np.float64))
            if low == high:
                counts = np.zeros(histogram.shape, dtype=np.int64)
                counts[low] = obj.rows - stats["nulls"]
                metrics = ScanMetrics(rows_in=obj.rows, rows_out=obj.rows)
                known[obj.name] = ([counts], metrics)
                continue
        called.append(obj)
    return known, called


_Part = tuple[list[np.ndarray], ScanMetrics]


def _histogram_part(
    settings: dict[str, Any], url: str, name: str, payload: bytes, shape: Any, weighted: bool
) -> _Part:
    table, metrics = run_task(settings, url, call_object, url, name, "hist", payload)
    return _as_part(table, metrics, shape, weighted)


def _as_part(table: pa.Table, metrics: ScanMetrics, shape: Any, weighted: bool) -> _Part:
    """One object's result as arrays shaped like the histogram."""
    columns = ("sumw", "sumw2") if weighted else ("count",)
    return [table.column(c).to_numpy().reshape(shape) for c in columns], metrics


def _empty_part(shape: Any, weighted: bool) -> _Part:
    zeros = [np.zeros(shape), np.zeros(shape)] if weighted else [np.zeros(shape, np.int64)]
    return zeros, ScanMetrics()


def _add_parts(*parts: _Part) -> _Part:
    arrays = [np.zeros_like(a) for a in parts[0][0]]
    metrics = ScanMetrics()
    for part_arrays, part_metrics in parts:
        metrics.add(part_metrics)
        for total, array in zip(arrays, part_arrays, strict=True):
            total += array
    return arrays, metrics


def _filled(
    total: _Part, weighted: bool, scanned: int, skipped: int, from_statistics: int = 0
) -> FilledHistogram:
    arrays, metrics = total
    counts = (scanned, skipped, from_statistics)
    if weighted:
        return FilledHistogram(None, arrays[0], arrays[1], metrics, *counts)
    return FilledHistogram(arrays[0], None, None, metrics, *counts)


def aggregate_plan(
    plan: ScanPlan,
    aggregates: Sequence[Aggregate],
    mapper: Mapper | None = None,
    *,
    label: str = "aggregate",
) -> tuple[list[Any], ScanMetrics]:
    """Each aggregate over ``plan``'s selected rows, and what the storage did."""
    parts, metrics = _call_objects(
        plan, "aggregate", mapper, label, plan.objects, aggregates=tuple(aggregates)
    )
    return combine_aggregates([table for table, _ in parts], aggregates), metrics


def _call_objects(
    plan: ScanPlan,
    method: str,
    mapper: Mapper | None,
    label: str,
    objects: Sequence[PlannedObject],
    **request: Any,
) -> tuple[list[tuple[pa.Table, ScanMetrics]], ScanMetrics]:
    """``skyhook.<method>`` on each of ``objects``: without the predicate where its
    statistics prove every row selected."""
    payloads = _payloads(plan, **request)
    url = plan.store_url
    arguments = [(url, o.name, method, payloads[o.unfiltered]) for o in objects]
    parts = (mapper or InProcess())(call_object, arguments, store_url=url, label=label)
    metrics = ScanMetrics()
    for _, part_metrics in parts:
        metrics.add(part_metrics)
    return parts, metrics


def _payloads(plan: ScanPlan, **request: Any) -> dict[bool, bytes]:
    """The request for objects read with the predicate (False) and without it (True)."""
    return {
        unfiltered: ScanRequest(
            predicate=None if unfiltered else plan.predicate, **request
        ).encode()
        for unfiltered in (False, True)
    }


def combine_aggregates(partials: Sequence[pa.Table], aggregates: Sequence[Aggregate]) -> list[Any]:
    """Per-object aggregate rows merged: counts and sums add up, min/max of the partial
    extremes, mean = sum of sums / number of values (None where no value went in)."""
    values: list[Any] = []
    for i, agg in enumerate(aggregates):
        columns = [t.column(str(i)) for t in partials]
        count = sum(pc.sum(t.column(f"{i}.n")).as_py() or 0 for t in partials)
        if agg.op == "count":
            values.append(sum(c[0].as_py() or 0 for c in columns))
            continue
        if not columns or count == 0:
            values.append(0 if agg.op == "sum" else None)
            continue
        merged = pa.chunked_array(columns, type=columns[0].type)
        if agg.op == "sum":
            values.append(pc.sum(merged).as_py())
        elif agg.op == "mean":
            values.append(pc.sum(merged.cast(pa.float64())).as_py() / count)
        else:
            values.append(getattr(pc, agg.op)(merged).as_py())
    return values
