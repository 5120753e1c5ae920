"""Reductions over a plan's objects: one ``skyhook.hist`` or ``skyhook.aggregate`` call per
object, over a mapper (here or on Dask), the partial results combined here: histogram counts
exactly, weight sums in object order; aggregates as protocol.py says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..formats.histogram import Histogram
from ..formats.protocol import Aggregate, ScanMetrics, ScanRequest
from ..plan.plan import ScanPlan
from .calls import call_object
from .mappers import InProcess, Mapper

__all__ = ["FilledHistogram", "aggregate_plan", "combine_aggregates", "fill_histogram"]


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


def fill_histogram(
    plan: ScanPlan, histogram: Histogram, mapper: Mapper | None = None, *, label: str = "hist"
) -> FilledHistogram:
    """The histogram of ``plan``'s selected rows (its predicate; objects its statistics
    exclude are not read, those it proves wholly selected are read without it)."""
    parts, metrics = _call_objects(plan, "hist", mapper, label, histogram=histogram)
    shape = histogram.shape
    scanned, skipped = len(plan.objects), len(plan.skipped)
    if histogram.weight is None:
        counts = np.zeros(shape, dtype=np.int64)
        for table, _ in parts:
            counts += table.column("count").to_numpy().reshape(shape)
        return FilledHistogram(counts, None, None, metrics, scanned, skipped)
    sumw, sumw2 = np.zeros(shape), np.zeros(shape)
    for table, _ in parts:
        sumw += table.column("sumw").to_numpy().reshape(shape)
        sumw2 += table.column("sumw2").to_numpy().reshape(shape)
    return FilledHistogram(None, sumw, sumw2, metrics, scanned, skipped)


def aggregate_plan(
    plan: ScanPlan,
    aggregates: Sequence[Aggregate],
    mapper: Mapper | None = None,
    *,
    label: str = "aggregate",
) -> tuple[list[Any], ScanMetrics]:
    """Each aggregate over ``plan``'s selected rows, and what the storage did."""
    parts, metrics = _call_objects(plan, "aggregate", mapper, label, aggregates=tuple(aggregates))
    return combine_aggregates([table for table, _ in parts], aggregates), metrics


def _call_objects(
    plan: ScanPlan, method: str, mapper: Mapper | None, label: str, **request: Any
) -> tuple[list[tuple[pa.Table, ScanMetrics]], ScanMetrics]:
    """``skyhook.<method>`` on every planned object: without the predicate where its
    statistics prove every row selected."""
    payloads = {
        unfiltered: ScanRequest(
            predicate=None if unfiltered else plan.predicate, **request
        ).encode()
        for unfiltered in (False, True)
    }
    url = plan.store_url
    arguments = [(url, o.name, method, payloads[o.unfiltered]) for o in plan.objects]
    parts = (mapper or InProcess())(call_object, arguments, store_url=url, label=label)
    metrics = ScanMetrics()
    for _, part_metrics in parts:
        metrics.add(part_metrics)
    return parts, metrics


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
