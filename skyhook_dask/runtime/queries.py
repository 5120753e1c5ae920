"""Run scan plans: one object call per planned object, over a mapper (here or on Dask), and
each plan's rows assembled in object order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from ..formats.protocol import ScanMetrics
from ..plan.plan import ScanPlan
from .calls import call_object
from .locality import place_reads
from .mappers import InProcess, Mapper, OnDask

__all__ = ["QueryResult", "run_plans"]


@dataclass
class QueryResult:
    table: pa.Table
    metrics: ScanMetrics
    objects_scanned: int
    objects_skipped: int


def run_plans(
    plans: Sequence[ScanPlan],
    mapper: Mapper | None = None,
    *,
    label: str = "query-skyhook",
    store_url: str | None = None,
) -> list[QueryResult]:
    """One result per plan: the selected rows of its objects, in object order. Every object
    of every plan is one task of ``mapper`` (default: threads in this process). ``store_url``
    reaches the plans' store through another URL (other options, such as a timeout)."""
    if not plans:
        return []
    run = mapper or InProcess()
    url = store_url or plans[0].store_url
    arguments = [(url, o.name, "scan", p.payload(o)) for p in plans for o in p.objects]
    if isinstance(run, OnDask):  # each object's call beside its primary OSD
        place_reads(url, [name for _, name, _, _ in arguments], run.client)
    outcomes = iter(run(call_object, arguments, store_url=url, label=label))
    results = []
    for p in plans:
        parts = [next(outcomes) for _ in p.objects]
        metrics = ScanMetrics()
        for _, part_metrics in parts:
            metrics.add(part_metrics)
        table = pa.concat_tables([t for t, _ in parts]) if parts else p.empty_table()
        results.append(QueryResult(table, metrics, len(p.objects), len(p.skipped)))
    return results
