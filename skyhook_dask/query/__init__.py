"""The query language: tokens, parser, expression trees, type checking and binding to a
tree's schema, dask/pyarrow filters, and statistics-based object skipping.

Layer: the ground floor of query handling. Imports only ``exceptions`` and pyarrow/numpy;
nothing here knows about storage, manifests or Dask.
"""

from __future__ import annotations

from .parser import ColumnRef, Query, literal_type, parse_query

__all__ = ["ColumnRef", "Query", "literal_type", "parse_query"]
