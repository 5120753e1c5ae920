"""Shortcuts the tests share: one query on one file through the one plan and runtime path, and
one aggregate request on chosen objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from skyhook_dask.catalog import File
from skyhook_dask.formats.protocol import ScanRequest
from skyhook_dask.plan import ScanPlan, plan
from skyhook_dask.query import parse_query
from skyhook_dask.runtime.calls import call_object
from skyhook_dask.runtime.mappers import Mapper
from skyhook_dask.runtime.queries import QueryResult, run_plans
from skyhook_dask.runtime.reductions import combine_aggregates


def plan_file(file: File, text: str) -> ScanPlan:
    return plan(file, parse_query(text))


def query_file(
    store_url: str | None, file: File, text: str, mapper: Mapper | None = None
) -> QueryResult:
    """``runQuery(file, text)`` in this process (or over ``mapper``), through ``store_url``."""
    return run_plans([plan_file(file, text)], mapper, store_url=store_url)[0]


def aggregate_objects(store_url: str, names: Sequence[str], request: ScanRequest) -> list[Any]:
    """``skyhook.aggregate`` on every object, merged."""
    payload = request.encode()
    partials = [call_object(store_url, n, "aggregate", payload)[0] for n in names]
    return combine_aggregates(partials, request.aggregates)


def query_tables(dataset: Any, text: str, mapper: Mapper | None = None) -> list[pa.Table]:
    """``runQuery(dataset, text)``: one table per file, over ``mapper``."""
    query = parse_query(text)
    return [r.table for r in run_plans([plan(f, query) for f in dataset.files], mapper)]
