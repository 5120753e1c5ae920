"""Plan and run a query on one ingested file: parse, bind to its trees, skip objects by their
statistics, and scan the rest in the storage."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from . import config
from .catalog import File, ObjectEntry, TreeInfo
from .execution import scan_objects
from .planning import BoundQuery, bind, may_match, to_request
from .protocol import ScanMetrics
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


def query_file(store_url: str, file: File, query: str | Query) -> QueryResult:
    plan = plan_file(file, query)
    request = to_request(plan.bound, compression=config.compression("result-compression"))
    table, metrics = scan_objects(
        store_url, [o.name for o in plan.objects], request, plan.tree.schema
    )
    return QueryResult(table, metrics, len(plan.objects), len(plan.skipped))
