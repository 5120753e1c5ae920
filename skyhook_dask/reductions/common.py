"""What every reduction does first: find the dataset, parse the expressions, and plan them
(bound to one tree, objects skipped by their statistics) -- and where its tasks run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..catalog.model import Dataset, File, load_dataset
from ..plan.plan import ScanPlan, plan
from ..query.clauses import Derived, Query
from ..query.expr import Expr
from ..query.parser import parse_expression
from ..runtime.mappers import InProcess, Mapper, OnDask

__all__ = ["mapper_for", "parse", "plan_values"]


def parse(text: str, what: str) -> Expr:
    if not isinstance(text, str):
        raise TypeError(f"{what} is a query-language string, not {type(text).__name__}")
    return parse_expression(text)


def source_of(dataset: str | Dataset | File, store: str | os.PathLike[str] | None) -> Any:
    if isinstance(dataset, Dataset | File):
        return dataset
    if isinstance(dataset, str):
        from ..storage import normalize_url

        return load_dataset(normalize_url(store), dataset)
    raise TypeError(f"dataset must be a name, a Dataset or a File, not {type(dataset).__name__}")


def plan_values(
    dataset: str | Dataset | File,
    values: Sequence[tuple[str, Expr]],
    where: str | None,
    *,
    store: str | os.PathLike[str] | None,
    tree: str,
    context: str,
) -> tuple[ScanPlan, dict[str, Expr]]:
    """The plan of ``where`` over ``dataset``, and each named value bound to its tree."""
    predicate = None if where is None else parse(where, "the where predicate")
    query = Query(tuple(Derived(name, expr) for name, expr in values), predicate)
    scan = plan(source_of(dataset, store), query, tree=tree, where=context)
    return scan, dict(scan.derived)


def mapper_for(client: Any, store_url: str) -> Mapper:
    """Tasks on the Dask ``client`` (None: the current one, if any; False: none), else in this
    process -- always here for a memory store, which only this process sees."""
    if client is False or store_url.startswith("memory://"):
        return InProcess()
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            return InProcess()
    return OnDask(client)
