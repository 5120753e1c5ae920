"""Binding a parsed query to a dataset's trees: which tree it reads, which columns it projects,
and its predicate type-checked (:mod:`skyhook_dask.query.typecheck`) against that tree's schema."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa

from ..exceptions import QueryError, UnknownColumnError, UnknownTreeError
from .clauses import Derived, Query
from .expr import Expr
from .tokens import ColumnRef
from .typecheck import PredicateBinder

DEFAULT_TREE = "Events"


# --- trees -------------------------------------------------------------------------------------


def split_key(key: str) -> tuple[str, int | None]:
    """``"dir/Tree;2"`` -> ``("dir/Tree", 2)``; a key without a cycle -> ``(key, None)``."""
    path, sep, cycle = key.rpartition(";")
    return (path, int(cycle)) if sep and cycle.isdigit() else (key, None)


def _latest(keys: Iterable[str]) -> str:
    """The key with the highest cycle (ROOT's choice when no cycle is given)."""
    return max(keys, key=lambda key: split_key(key)[1] or 0)


def resolve_tree(
    query_or_refs: Query | Iterable[ColumnRef],
    trees: Mapping[str, pa.Schema],
    default: str = DEFAULT_TREE,
) -> str:
    """The ROOT key (e.g. ``"Events;1"``) of the one tree a query reads.

    Qualified columns name their tree (without a cycle: its highest cycle, as ROOT does); the
    unqualified ones belong to that same tree, or when none is named to ``default`` if the
    dataset has it, else to the dataset's only tree.
    """
    refs = query_or_refs.column_refs() if isinstance(query_or_refs, Query) else query_or_refs
    if not trees:
        raise UnknownTreeError(default, ())
    chosen: tuple[str, ColumnRef] | None = None
    for ref in refs:
        if ref.tree is None:
            continue
        key = _match_tree(ref, trees)
        if chosen is not None and key != chosen[0]:
            raise QueryError(
                f"a query reads one tree, but column {ref}{_at(ref)} is in tree {key!r} and "
                f"column {chosen[1]}{_at(chosen[1])} in tree {chosen[0]!r}"
            )
        chosen = (key, ref)
    if chosen is not None:
        return chosen[0]
    named = [k for k in trees if split_key(k)[0] == default]
    paths = {split_key(k)[0] for k in trees}
    if named or len(paths) == 1:
        return _latest(named or trees)
    raise QueryError(
        f"the query names no tree and there is no {default!r} tree; qualify the columns with "
        f"one of: {', '.join(sorted(trees))} (e.g. Tree.column)"
    )


def _match_tree(ref: ColumnRef, trees: Mapping[str, pa.Schema]) -> str:
    same_path = [k for k in trees if split_key(k)[0] == ref.tree]
    if ref.cycle is not None:
        same_path = [k for k in same_path if split_key(k)[1] == ref.cycle]
    if not same_path:
        cycle = "" if ref.cycle is None else f";{ref.cycle}"
        raise UnknownTreeError(f"{ref.tree}{cycle}", trees)
    return _latest(same_path)


def _at(ref: ColumnRef | Derived) -> str:
    return f" (position {ref.position})" if ref.position >= 0 else ""


# --- binding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundQuery:
    """A query checked against one tree: the tree, the projection and the bound predicate."""

    tree: str
    columns: tuple[str, ...]  # projected names in order; () means every column
    predicate: Expr | None
    derived: tuple[tuple[str, Expr], ...] = ()  # the projected expressions, by name


def bind(query: Query, trees: Mapping[str, pa.Schema], default: str = DEFAULT_TREE) -> BoundQuery:
    """Resolve the tree and the columns of ``query``, type-check it and type its literals."""
    tree = resolve_tree(query, trees, default)
    schema = trees[tree]
    for ref in query.column_refs():
        if schema.get_field_index(ref.name) < 0:
            _unknown_column(ref, tree, trees)
    binder = PredicateBinder(schema, f"tree {tree!r}", weak=True)
    columns: list[str] = []
    derived: list[tuple[str, Expr]] = []
    for item in query.projection:
        if item.name in columns:
            raise QueryError(f"column {item.name!r}{_at(item)} is projected twice")
        columns.append(item.name)
        if isinstance(item, Derived):
            derived.append((item.name, _bind_derived(item, binder, schema, tree)))
    predicate = None if query.predicate is None else binder.bind(query.predicate)
    return BoundQuery(tree, tuple(columns), predicate, tuple(derived))


def _bind_derived(item: Derived, binder: PredicateBinder, schema: pa.Schema, tree: str) -> Expr:
    # A derived name is never a stored column's: a filter on it (a later pandas filter pushed
    # into the scan, say) could otherwise read the stored column instead of the computed one.
    if schema.get_field_index(item.name) >= 0:
        raise QueryError(
            f"{item}{_at(item)}: tree {tree!r} already has a column {item.name!r}; "
            "give the expression another name"
        )
    return binder.bind_value(item.expr, item.name)


def _unknown_column(ref: ColumnRef, tree: str, trees: Mapping[str, pa.Schema]) -> None:
    place = f"tree {tree!r}"
    if ref.position >= 0:
        place += f" at position {ref.position} of the query"
    holders = [k for k, s in trees.items() if k != tree and s.get_field_index(ref.name) >= 0]
    if holders:
        place += f" (tree {holders[0]!r} has it, and a query reads one tree)"
    raise UnknownColumnError(ref.name, trees[tree].names, where=place)


def bind_predicate(expr: Expr, schema: pa.Schema, where: str = "the table") -> Expr | None:
    """Type-check an unbound predicate (query-language rules) against one schema."""
    return PredicateBinder(schema, where, weak=True).bind(expr)
