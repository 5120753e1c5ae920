"""Query planning: one :class:`ScanPlan` per query, used by every front end -- the tree, the
columns, the bound predicate, the objects left after statistics-based skipping, and what each
object is asked (unfiltered where its statistics prove every row matches).

Layer: planning. Imports ``catalog``, ``query``, ``formats`` and the ground floor; it never
runs anything (``runtime`` runs plans).
"""

from __future__ import annotations

from .plan import ColumnConflictWarning, PlannedObject, ScanPlan, plan

__all__ = ["ColumnConflictWarning", "PlannedObject", "ScanPlan", "plan"]
