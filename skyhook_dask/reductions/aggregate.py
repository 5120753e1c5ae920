"""Scalar aggregates computed inside the storage: :func:`aggregate`."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from ..catalog.model import Dataset, File
from ..exceptions import QuerySyntaxError
from ..formats.protocol import AGGREGATE_OPS, Aggregate
from ..query.expr import Expr
from ..runtime.reductions import aggregate_plan
from .common import mapper_for, parse, plan_values

__all__ = ["aggregate"]

_FORM = re.compile(r"\s*(\w+)\s*\((.*)\)\s*", re.DOTALL)


def aggregate(
    dataset: str | Dataset | File,
    what: str | Sequence[str],
    *,
    where: str | None = None,
    store: str | os.PathLike[str] | None = None,
    tree: str = "Events",
    client: Any = None,
) -> Any:
    """``what`` -- ``"count()"``, ``"sum(MET_pt)"``, ``"min(...)"``, ``"max(...)"``,
    ``"mean(...)"``, or a list of them -- over the events of ``dataset`` where ``where``
    holds, computed inside the storage.

    ``count()`` counts the selected events; ``count(x)`` the non-null values of ``x``. Values
    of lists count every element: ``sum(Jet_pt)`` is the pT of every jet of every selected
    event. ``sum`` of no value is 0; ``min``, ``max`` and ``mean`` of no value are None.
    Returns one number, or a list in the order of ``what``. The tasks run on the Dask
    ``client`` (default: the current one, if any; False: none), else here.
    """
    texts = [what] if isinstance(what, str) else list(what)
    forms = [_form(text) for text in texts]
    values = [(f"value {n}", expr) for n, (_, expr) in enumerate(forms) if expr is not None]
    context = "in the aggregate"
    scan, bound = plan_values(dataset, values, where, store=store, tree=tree, context=context)
    aggregates = [
        Aggregate(op, None if expr is None else bound[f"value {n}"])
        for n, (op, expr) in enumerate(forms)
    ]
    label = f"aggregate-skyhook-{scan.layout.dataset_name}"
    results, _ = aggregate_plan(scan, aggregates, mapper_for(client, scan.store_url), label=label)
    return results[0] if isinstance(what, str) else results


def _form(text: str) -> tuple[str, Expr | None]:
    """``op(expression)`` split into the op and the parsed expression (None: ``count()``)."""
    match = _FORM.fullmatch(text) if isinstance(text, str) else None
    op = match.group(1).lower() if match else None
    if match is None or op not in AGGREGATE_OPS:
        raise QuerySyntaxError(
            f"an aggregate is one of {', '.join(f'{o}(...)' for o in AGGREGATE_OPS)}, not {text!r}"
        )
    inner = match.group(2)
    if not inner.strip() or inner.strip() == "*":
        if op != "count":
            raise QuerySyntaxError(f"{op}() needs a value, e.g. {op}(MET_pt)")
        return op, None
    return op, parse(inner, f"the value of {op}()")
