"""Dask DataFrame and awkward front end: ``read_skyhook`` (also ``dd.read_skyhook``) and
``read_awkward``, one partition per object, with projection and predicate pushdown into the
object class through dask-expr's optimizer.

Layer: front end. Imports ``runtime``, ``plan`` and below.
"""

from __future__ import annotations

from .reader import ColumnConflictWarning, collect_metrics, read_awkward, read_skyhook

__all__ = ["ColumnConflictWarning", "collect_metrics", "read_awkward", "read_skyhook"]
