"""Plan and run a query on one ingested file: parse, bind to its trees, skip objects by their
statistics, and scan the rest in the storage -- unfiltered where the statistics prove that every
row satisfies the predicate."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from . import config
from .catalog import File, ObjectEntry, TreeInfo
from .execution import scan_objects
from .planning import BoundQuery, bind, may_match, must_match, to_request
from .protocol import ScanMetrics, ScanRequest
from .query import Query, parse_query


@dataclass
class QueryResult:
    table: pa.Table
    metrics: ScanMetrics
    objects_scanned: int
    objects_skipped: int


@dataclass
class QueryPlan:
    """Which objects of which tree one query reads, and with what request."""

    tree: TreeInfo
    bound: BoundQuery
    objects: list[ObjectEntry]
    skipped: list[ObjectEntry]


def plan_file(file: File, query: str | Query) -> QueryPlan:
    parsed = parse_query(query) if isinstance(query, str) else query
    bound = bind(parsed, {key: tree.schema for key, tree in file.trees.items()})
    tree = file.trees[bound.tree]
    keep, skip = [], []
    for obj in tree.objects:
        (keep if may_match(bound.predicate, obj.stats) else skip).append(obj)
    return QueryPlan(tree, bound, keep, skip)


def object_payloads(request: ScanRequest, stats: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """The request for each object, given its statistics: ``request``, less its predicate
    where they prove every row satisfies it (a query of every column then reads such an object
    as it is)."""
    filtered = request.encode()
    if request.predicate is None:
        return [filtered] * len(stats)
    unfiltered = dataclasses.replace(request, predicate=None).encode()
    return [unfiltered if must_match(request.predicate, s) else filtered for s in stats]


def query_file(store_url: str, file: File, query: str | Query) -> QueryResult:
    plan = plan_file(file, query)
    request = to_request(plan.bound, compression=config.compression("result-compression"))
    names = [o.name for o in plan.objects]
    payloads = object_payloads(request, [o.stats for o in plan.objects])
    table, metrics = scan_objects(store_url, names, request, plan.tree.schema, payloads)
    return QueryResult(table, metrics, len(plan.objects), len(plan.skipped))
