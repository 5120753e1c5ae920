"""Query planning: bind a parsed query to a dataset's trees and turn it into a ScanRequest.

* :func:`resolve_tree` and :func:`bind` (:mod:`~skyhook_dask.binding`) check names and types
  against the Arrow schemas of the dataset's trees and give every literal its final Arrow type,
  by the rules of :mod:`~skyhook_dask.typecheck`.
* :func:`filters_to_expr` and :func:`arrow_expression_to_expr` (:mod:`~skyhook_dask.filters`)
  bring predicates written as dask/pyarrow ``filters`` or as ``pyarrow.compute.Expression`` into
  the same expression trees.
* :func:`may_match` (:mod:`~skyhook_dask.skipping`) decides from per-object min/max statistics
  whether an object can be skipped, and :func:`must_match` whether it needs no filtering.

A predicate that is constant after folding becomes None when true and ``Literal(False)`` when
false (the scan then selects no row; :func:`may_match` skips every object).
"""

from __future__ import annotations

from .binding import (
    DEFAULT_TREE,
    BoundQuery,
    bind,
    bind_predicate,
    resolve_tree,
    split_key,
    to_request,
)
from .filters import FILTER_OPERATORS, arrow_expression_to_expr, filters_to_expr
from .skipping import may_match, must_match

__all__ = [
    "DEFAULT_TREE",
    "FILTER_OPERATORS",
    "BoundQuery",
    "arrow_expression_to_expr",
    "bind",
    "bind_predicate",
    "filters_to_expr",
    "may_match",
    "must_match",
    "resolve_tree",
    "split_key",
    "to_request",
]
