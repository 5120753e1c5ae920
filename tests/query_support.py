"""Shortcuts the tests share: one query on one file through the one plan and runtime path, and
client-side merging of per-object aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from skyhook_dask.catalog import File
from skyhook_dask.formats.protocol import Aggregate, ScanRequest
from skyhook_dask.plan import ScanPlan, plan
from skyhook_dask.query import parse_query
from skyhook_dask.runtime.calls import call_object
from skyhook_dask.runtime.mappers import Mapper
from skyhook_dask.runtime.queries import QueryResult, run_plans


def plan_file(file: File, text: str) -> ScanPlan:
    return plan(file, parse_query(text))


def query_file(
    store_url: str | None, file: File, text: str, mapper: Mapper | None = None
) -> QueryResult:
    """``runQuery(file, text)`` in this process (or over ``mapper``), through ``store_url``."""
    return run_plans([plan_file(file, text)], mapper, store_url=store_url)[0]


def combine_aggregates(partials: Sequence[pa.Table], aggregates: Sequence[Aggregate]) -> list[Any]:
    """Merge per-object aggregate rows into final values (None where nothing was aggregated)."""
    values: list[Any] = []
    for i, agg in enumerate(aggregates):
        col = [t.column(str(i)) for t in partials]
        counts = sum(pc.sum(t.column(f"{i}.n")).as_py() or 0 for t in partials)
        if agg.op == "count":
            values.append(sum(c[0].as_py() or 0 for c in col))
            continue
        merged = pa.chunked_array([c for c in col if len(c)], type=col[0].type) if col else None
        if merged is None or counts == 0:
            values.append(0 if agg.op == "sum" else None)
        elif agg.op == "sum":
            values.append(pc.sum(merged).as_py())
        elif agg.op == "mean":
            values.append(pc.sum(merged.cast(pa.float64())).as_py() / counts)
        else:
            values.append(getattr(pc, agg.op)(merged).as_py())
    return values


def aggregate_objects(store_url: str, names: Sequence[str], request: ScanRequest) -> list[Any]:
    """``skyhook.aggregate`` on every object, merged."""
    payload = request.encode()
    partials = [call_object(store_url, n, "aggregate", payload)[0] for n in names]
    return combine_aggregates(partials, request.aggregates)


def query_tables(dataset: Any, text: str, mapper: Mapper | None = None) -> list[pa.Table]:
    """``runQuery(dataset, text)``: one table per file, over ``mapper``."""
    query = parse_query(text)
    return [r.table for r in run_plans([plan(f, query) for f in dataset.files], mapper)]
