"""What a parsed query is: a :class:`Query` of a projection (columns and :class:`Derived`
columns) and a predicate, with the text it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from .expr import Call, Expr
from .render import render
from .tokens import ColumnRef, quote_name

__all__ = ["Derived", "Query"]


@dataclass(frozen=True)
class Derived:
    """``expr as name`` in a projection: a column the scan computes from each selected row."""

    name: str
    expr: Expr
    position: int = field(default=-1, compare=False)  # of the name in the query text

    def __str__(self) -> str:
        return f"{render(self.expr)} as {quote_name(self.name)}"


@dataclass(frozen=True)
class Query:
    """A parsed query: projected columns (empty = all), predicate (None = every row)."""

    projection: tuple[ColumnRef | Derived, ...] = ()
    predicate: Expr | None = None
    text: str = field(default="", compare=False)

    @property
    def output_names(self) -> list[str]:
        """The names of the projected columns, in order."""
        return [item.name for item in self.projection]

    def column_refs(self) -> list[ColumnRef]:
        """Every column the query names: projection first (derived columns: what their
        expressions read), then the predicate's."""
        found: list[ColumnRef] = []
        stack: list[Expr] = [self.predicate] if self.predicate is not None else []
        for item in reversed(self.projection):
            stack.append(item if isinstance(item, ColumnRef) else item.expr)
        while stack:
            node = stack.pop()
            if isinstance(node, ColumnRef):
                found.append(node)
            elif isinstance(node, Call):
                stack.extend(reversed(node.args))
        return found

    def to_string(self) -> str:
        clauses = []
        if self.predicate is not None:
            clauses.append(f"select {render(self.predicate)}")
        if self.projection:
            clauses.append("project " + ", ".join(map(str, self.projection)))
        return ", ".join(clauses)

    __str__ = to_string
