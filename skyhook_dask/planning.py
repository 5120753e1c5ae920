"""Query planning: bind a parsed query to a dataset's trees and turn it into a ScanRequest.

* :func:`resolve_tree` and :func:`bind` check names and types against the Arrow schemas of the
  dataset's trees and give every literal its final Arrow type.
* :func:`filters_to_expr` and :func:`arrow_expression_to_expr` bring predicates written as
  dask/pyarrow ``filters`` or as ``pyarrow.compute.Expression`` into the same expression trees.
* :func:`may_match` decides from per-object min/max statistics whether an object can be skipped.

Literal typing follows numpy's NEP 50 for query strings, so that results equal what numpy and
awkward compute: a literal is a *weak* scalar that takes the type of the column it meets
(``Muon_pt > 0.1`` compares in float32 when Muon_pt is float32); a float literal next to an
integer column makes it ``double``; column-free sub-expressions are computed first, with Python
numbers, as Python evaluates them before numpy sees them. An integer comparison with a literal
outside the column type's range becomes an equivalent in-range comparison (``uint8 > 300`` is
false for every row); arithmetic with such a literal widens to an integer type holding both
(where numpy would raise). Filters and pyarrow expressions keep their literals' own types, as
pyarrow does, except that integer comparisons get the same exact treatment.

A predicate that is constant after folding becomes None when true and ``Literal(False)`` when
false (the scan then selects no row; :func:`may_match` skips every object).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .exceptions import (
    ProtocolError,
    QueryError,
    QueryTypeError,
    UnknownColumnError,
    UnknownTreeError,
)
from .expr import ARITHMETIC, BOOLEAN, COMPARISONS, UNARY, Call, Column, Expr, Literal
from .protocol import MAX_DEPTH, ScanRequest
from .query import ColumnRef, Query, literal_type, parse_query, render

DEFAULT_TREE = "Events"

_CMP = frozenset(COMPARISONS.values())
_MIRROR = {"less": "greater", "less_equal": "greater_equal", "equal": "equal"}
_MIRROR |= {v: k for k, v in _MIRROR.items()} | {"not_equal": "not_equal"}
_PY_OPS = {
    "less": operator.lt,
    "less_equal": operator.le,
    "greater": operator.gt,
    "greater_equal": operator.ge,
    "equal": operator.eq,
    "not_equal": operator.ne,
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
}
_DTYPES = {name: np.dtype(name) for name in ("bool", "int8", "int16", "int32", "int64")}
_DTYPES |= {f"u{n}": np.dtype(f"u{n}") for n in ("int8", "int16", "int32", "int64")}
_DTYPES |= {"float": np.dtype("float32"), "double": np.dtype("float64")}
_LITERAL_NAME = {dtype: name for name, dtype in _DTYPES.items()}
_INTEGERS = [np.dtype(t) for t in ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8")]


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


def _at(ref: ColumnRef) -> str:
    return f" (position {ref.position})" if ref.position >= 0 else ""


# --- binding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundQuery:
    """A query checked against one tree: what :func:`to_request` sends."""

    tree: str
    columns: tuple[str, ...]  # projected branches in order; () means every column
    predicate: Expr | None


def bind(
    query: Query | str, trees: Mapping[str, pa.Schema], default: str = DEFAULT_TREE
) -> BoundQuery:
    """Resolve the tree and the columns of ``query``, type-check it and type its literals."""
    if isinstance(query, str):
        query = parse_query(query)
    tree = resolve_tree(query, trees, default)
    schema = trees[tree]
    for ref in query.column_refs():
        if schema.get_field_index(ref.name) < 0:
            _unknown_column(ref, tree, trees)
    columns: list[str] = []
    for ref in query.projection:
        if ref.name in columns:
            raise QueryError(f"column {ref.name!r}{_at(ref)} is projected twice")
        columns.append(ref.name)
    predicate = None
    if query.predicate is not None:
        predicate = _Binder(schema, f"tree {tree!r}", weak=True).bind(query.predicate)
    return BoundQuery(tree, tuple(columns), predicate)


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
    return _Binder(schema, where, weak=True).bind(expr)


def to_request(bound: BoundQuery, compression: str | None = None) -> ScanRequest:
    """The wire request of a bound query (checked against the protocol's limits)."""
    request = ScanRequest(bound.columns, bound.predicate, (), compression)
    try:
        request.encode()
    except ProtocolError as exc:
        raise QueryError(f"the query cannot be sent to storage: {exc}") from exc
    return request


def _field(ref: Column, schema: pa.Schema, where: str) -> pa.Field:
    index = schema.get_field_index(ref.name)
    if index < 0:
        place = where
        if isinstance(ref, ColumnRef) and ref.position >= 0:
            place += f" at position {ref.position} of the query"
        raise UnknownColumnError(ref.name, schema.names, where=place)
    return schema.field(index)


@dataclass(frozen=True)
class _Kind:
    """The type of an expression: element dtype (None: a weak literal) and whether jagged."""

    dtype: np.dtype | None
    jagged: bool = False


def _describe(expr: Expr, kind: _Kind) -> str:
    if kind.dtype is None and isinstance(expr, Literal):
        return f"the {'boolean' if isinstance(expr.value, bool) else 'number'} {render(expr)}"
    return f"list<{kind.dtype}>" if kind.jagged else str(kind.dtype)


def _column_kind(field: pa.Field) -> _Kind:
    value_type, jagged = field.type, False
    if (
        pa.types.is_list(value_type)
        or pa.types.is_large_list(value_type)
        or pa.types.is_fixed_size_list(value_type)
    ):
        value_type, jagged = value_type.value_type, True
    if pa.types.is_boolean(value_type) or pa.types.is_integer(value_type):
        return _Kind(np.dtype(value_type.to_pandas_dtype()), jagged)
    if pa.types.is_float32(value_type) or pa.types.is_float64(value_type):
        return _Kind(np.dtype(value_type.to_pandas_dtype()), jagged)
    raise QueryTypeError(
        f"column {field.name!r} has type {field.type}; predicates work on numbers and booleans "
        "and on lists of them"
    )


def _fits(value: int, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def _typed_literal(value: Any, dtype: np.dtype) -> Literal:
    if dtype.kind == "f":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 1e39 -> inf in float32, as numpy
            return Literal(float(dtype.type(value)), _LITERAL_NAME[dtype])
    return Literal(value, _LITERAL_NAME[dtype])


def _is_number(kind: _Kind, literal: Expr) -> bool:
    if kind.dtype is None:
        return isinstance(literal, Literal) and not isinstance(literal.value, bool)
    return kind.dtype.kind in "iuf"


def _is_bool(kind: _Kind, literal: Expr) -> bool:
    if kind.dtype is None:
        return isinstance(literal, Literal) and isinstance(literal.value, bool)
    return kind.dtype.kind == "b"


class _Binder:
    """Checks and types one predicate against one schema.

    ``weak``: literals are NEP 50 weak scalars (query strings); otherwise they keep their
    types (filters, pyarrow). ``integer_division``: reject dividing two integers, whose Arrow
    meaning (integer quotient) differs from the scan's true division.
    """

    def __init__(
        self, schema: pa.Schema, where: str, weak: bool, integer_division: bool = True
    ) -> None:
        self.schema, self.where, self.weak = schema, where, weak
        self.integer_division = integer_division

    def bind(self, expr: Expr) -> Expr | None:
        node = _fold(expr) if self.weak else expr
        bound, kind = self.visit(node)
        if isinstance(bound, Literal) and isinstance(bound.value, bool):
            return None if bound.value else Literal(False, "bool")
        if not _is_bool(kind, bound):
            raise QueryTypeError(
                f"the predicate {render(expr)} gives {_describe(bound, kind)}, not a boolean"
            )
        if kind.jagged:
            raise QueryTypeError(
                f"the predicate {render(expr)} gives a list of booleans per event, not one "
                f"boolean; reduce it with any({render(expr)}) or all({render(expr)})"
            )
        return bound

    def visit(self, node: Expr) -> tuple[Expr, _Kind]:
        if isinstance(node, Column):
            field = _field(node, self.schema, self.where)
            return Column(node.name), _column_kind(field)
        if isinstance(node, Literal):
            if self.weak:
                return node, _Kind(None)
            return node, _Kind(_DTYPES[node.type])
        if not isinstance(node, Call):
            raise QueryTypeError(f"not an expression node: {node!r}")
        if node.function in ("any", "all", "count", "len", "sum", "min", "max"):
            return self.reduction(node)
        args = [self.visit(arg) for arg in node.args]
        if node.function in _CMP and len(args) == 2:
            return self.compare(node, *args)
        if node.function in ARITHMETIC.values() and len(args) == 2:
            return self.arithmetic(node, *args)
        if node.function in (BOOLEAN["and"], BOOLEAN["or"], BOOLEAN["not"]):
            for (arg, kind), original in zip(args, node.args, strict=True):
                if not _is_bool(kind, arg):
                    raise self.type_error(node, f"{render(original)} is not a boolean")
            exprs = tuple(self.settle(arg, _DTYPES["bool"]) for arg, _ in args)
            return Call(node.function, exprs), _Kind(
                _DTYPES["bool"], any(k.jagged for _, k in args)
            )
        if node.function in UNARY.values() and len(args) == 1:
            ((arg, kind),) = args
            if not _is_number(kind, arg):
                raise self.type_error(node, f"{render(node.args[0])} is not a number")
            return Call(node.function, (arg,)), kind
        raise QueryTypeError(f"unknown function {node.function!r} in {render(node)}")

    def type_error(self, node: Expr, problem: str) -> QueryTypeError:
        refs = [r for r in Query((), node).column_refs() if r.position >= 0]
        where = f" (column {refs[0]} at position {refs[0].position})" if refs else ""
        return QueryTypeError(f"in {render(node)}{where}: {problem}")

    def settle(self, expr: Expr, dtype: np.dtype) -> Expr:
        """A weak literal given the type of what it meets; anything else unchanged."""
        if not (self.weak and isinstance(expr, Literal)):
            return expr
        value = expr.value
        if dtype.kind == "i" or dtype.kind == "u":
            if isinstance(value, float):
                return _typed_literal(value, np.dtype("float64"))
            if not _fits(value, dtype):
                # Arithmetic only (comparisons were rewritten): widen as numpy 1 did.
                wide = next((t for t in _INTEGERS if _covers(t, dtype) and _fits(value, t)), None)
                return _typed_literal(value, wide or np.dtype("float64"))
        return _typed_literal(value, dtype)

    def pair(
        self, node: Call, a: tuple[Expr, _Kind], b: tuple[Expr, _Kind]
    ) -> tuple[Expr, Expr, np.dtype]:
        """Settle weak literals on either side; returns both operands and their common dtype."""
        (ea, ka), (eb, kb) = a, b
        if ka.dtype is None and kb.dtype is None:  # two weak literals (folding normally joins them)
            ka = _Kind(_DTYPES[ea.type])  # type: ignore[union-attr]
        if ka.dtype is None:
            ea = self.settle(ea, kb.dtype)  # type: ignore[arg-type]
            ka = _Kind(_DTYPES[ea.type])  # type: ignore[union-attr]
        if kb.dtype is None:
            eb = self.settle(eb, ka.dtype)
            kb = _Kind(_DTYPES[eb.type])  # type: ignore[union-attr]
        return ea, eb, np.result_type(ka.dtype, kb.dtype)

    def compare(
        self, node: Call, a: tuple[Expr, _Kind], b: tuple[Expr, _Kind]
    ) -> tuple[Expr, _Kind]:
        jagged = a[1].jagged or b[1].jagged
        if not (_is_number(a[1], a[0]) and _is_number(b[1], b[0])) and not (
            _is_bool(a[1], a[0]) and _is_bool(b[1], b[0])
        ):
            raise self.type_error(node, f"cannot compare {_describe(*a)} with {_describe(*b)}")
        rewritten = _integer_range_comparison(node.function, a, b)
        if rewritten is not None:
            return rewritten, _Kind(_DTYPES["bool"], jagged)
        ea, eb, _ = self.pair(node, a, b)
        return Call(node.function, (ea, eb)), _Kind(_DTYPES["bool"], jagged)

    def arithmetic(
        self, node: Call, a: tuple[Expr, _Kind], b: tuple[Expr, _Kind]
    ) -> tuple[Expr, _Kind]:
        for (expr, kind), original in zip((a, b), node.args, strict=True):
            if not _is_number(kind, expr):
                raise self.type_error(node, f"{render(original)} is not a number")
        ea, eb, common = self.pair(node, a, b)
        if node.function == ARITHMETIC["/"]:
            if not self.integer_division and common.kind in "iu":
                raise self.type_error(
                    node, "dividing integers is integer division in Arrow; divide by a float"
                )
            common = np.dtype("float64")
        return Call(node.function, (ea, eb)), _Kind(common, a[1].jagged or b[1].jagged)

    def reduction(self, node: Call) -> tuple[Expr, _Kind]:
        fn = node.function
        if len(node.args) != 1:
            raise self.type_error(node, f"{fn}() takes one argument")
        arg, kind = self.visit(node.args[0])
        if not kind.jagged or kind.dtype is None:
            raise self.type_error(
                node,
                f"{fn}() reduces a list per event, but {render(node.args[0])} is one value per "
                "event; apply it to a jagged (list) column",
            )
        dtype = kind.dtype
        if fn in ("any", "all", "count") and dtype.kind != "b":
            raise self.type_error(
                node, f"{fn}() needs a list of booleans, e.g. {fn}({render(node.args[0])} > 0)"
            )
        if fn in ("min", "max", "sum") and dtype.kind not in ("iuf" if fn != "sum" else "biuf"):
            raise self.type_error(node, f"{fn}() needs a list of numbers")
        if fn in ("any", "all"):
            out = _DTYPES["bool"]
        elif fn in ("count", "len") or (fn == "sum" and dtype.kind in "bi"):
            out = _DTYPES["int64"]
        elif fn == "sum":
            out = _DTYPES["uint64" if dtype.kind == "u" else "double"]
        else:
            out = dtype
        return Call(fn, (arg,)), _Kind(out)


def _covers(wide: np.dtype, narrow: np.dtype) -> bool:
    a, b = np.iinfo(wide), np.iinfo(narrow)
    return a.min <= b.min and a.max >= b.max


def _integer_range_comparison(
    function: str, a: tuple[Expr, _Kind], b: tuple[Expr, _Kind]
) -> Expr | None:
    """Exact rewrite of ``integer_expr OP int_literal``, typing the literal as the column."""
    if isinstance(a[0], Literal) and not isinstance(b[0], Literal):
        function, a, b = _MIRROR[function], b, a
    (expr, kind), literal = a, b[0]
    if not (
        isinstance(literal, Literal)
        and type(literal.value) is int
        and kind.dtype is not None
        and kind.dtype.kind in "iu"
    ):
        return None
    dtype, value = kind.dtype, literal.value
    if _fits(value, dtype):
        return Call(function, (expr, _typed_literal(value, dtype)))
    info = np.iinfo(dtype)
    # Out of range: the result is the same for every (non-null) row; say so with the bound.
    if value > info.max:
        always = function in ("less", "less_equal", "not_equal")
        bound, op = int(info.max), ("less_equal" if always else "greater")
    else:
        always = function in ("greater", "greater_equal", "not_equal")
        bound, op = int(info.min), ("greater_equal" if always else "less")
    return Call(op, (expr, _typed_literal(bound, dtype)))


def _fold(expr: Expr) -> Expr:
    """Compute column-free sub-expressions with Python numbers (what numpy would be handed)."""
    if not isinstance(expr, Call):
        return expr
    args = tuple(_fold(a) for a in expr.args)
    if not all(isinstance(a, Literal) for a in args) or expr.function not in _FOLDABLE:
        return Call(expr.function, args)
    values = [a.value for a in args]  # type: ignore[union-attr]
    fn = expr.function
    numbers = all(type(v) is not bool for v in values)
    booleans = all(type(v) is bool for v in values)
    if fn in (BOOLEAN["and"], BOOLEAN["or"], BOOLEAN["not"]) and not booleans:
        raise QueryTypeError(f"in {render(expr)}: {fn} needs booleans")
    if fn not in _CMP and fn not in BOOLEAN.values() and not numbers:
        raise QueryTypeError(f"in {render(expr)}: arithmetic needs numbers, not booleans")
    if fn in _CMP and not (numbers or booleans):
        raise QueryTypeError(f"in {render(expr)}: cannot compare a boolean with a number")
    try:
        if fn == BOOLEAN["and"]:
            value = values[0] and values[1]
        elif fn == BOOLEAN["or"]:
            value = values[0] or values[1]
        elif fn == BOOLEAN["not"]:
            value = not values[0]
        elif fn == UNARY["neg"]:
            value = -values[0]
        elif fn == UNARY["abs"]:
            value = abs(values[0])
        else:
            value = _PY_OPS[fn](*values)
    except ZeroDivisionError:
        raise QueryTypeError(f"division by zero in {render(expr)}") from None
    if type(value) is int and not -(2**63) <= value < 2**64:
        raise QueryTypeError(f"the constant {render(expr)} = {value} does not fit in 64 bits")
    return Literal(value, literal_type(value))


_FOLDABLE = frozenset([*_PY_OPS, *BOOLEAN.values(), *UNARY.values()])


# --- dask/pyarrow filters ----------------------------------------------------------------------

FILTER_OPERATORS = {"=": "equal", "==": "equal", "!=": "not_equal", "<": "less"}
FILTER_OPERATORS |= {"<=": "less_equal", ">": "greater", ">=": "greater_equal"}


def filters_to_expr(filters: Any, schema: pa.Schema) -> Expr | None:
    """DNF filters as dask/pyarrow ``read_parquet`` takes them, as a bound predicate.

    ``[("nMuon", ">", 1), ...]`` is an AND of terms; ``[[...], [...]]`` an OR of such ANDs.
    Operators: ``= == != < <= > >= in not in``. Values keep their types, as pyarrow gives them
    (Python int -> int64, float -> double, numpy scalars their own). None when empty.
    """
    if not filters:
        return None
    if not isinstance(filters, list | tuple):
        raise QueryError(f"filters must be a list of tuples or of lists of tuples, not {filters!r}")
    groups = [filters] if isinstance(filters[0], tuple) and _is_term(filters[0]) else filters
    ors: list[Expr] = []
    for group in groups:
        if not isinstance(group, list | tuple) or not group:
            raise QueryError(f"a filter group must be a non-empty list of tuples, not {group!r}")
        ors.append(_combine(BOOLEAN["and"], [_filter_term(term) for term in group]))
    unbound = _combine(BOOLEAN["or"], ors)
    return _Binder(schema, "the schema", weak=False).bind(unbound)


def _is_term(term: object) -> bool:
    return isinstance(term, tuple) and len(term) == 3 and isinstance(term[0], str)


def _filter_term(term: object) -> Expr:
    if not _is_term(term):
        raise QueryError(f"a filter is a (column, operator, value) tuple, not {term!r}")
    column, op, value = term  # type: ignore[misc]
    ref = ColumnRef(name=column)
    op_name = str(op).strip().lower()
    if op_name in ("in", "not in"):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise QueryError(f"filter {term!r}: '{op_name}' needs a list of values")
        values = [_value_literal(v, term) for v in value]
        if op_name == "in":
            return _combine(BOOLEAN["or"], [Call("equal", (ref, v)) for v in values])
        return _combine(BOOLEAN["and"], [Call("not_equal", (ref, v)) for v in values])
    if op_name not in FILTER_OPERATORS:
        known = ", ".join([*FILTER_OPERATORS, "in", "not in"])
        raise QueryError(f"filter {term!r}: unknown operator {op!r}; the operators are {known}")
    return Call(FILTER_OPERATORS[op_name], (ref, _value_literal(value, term)))


def _value_literal(value: object, context: object) -> Literal:
    if isinstance(value, np.generic) and value.dtype in _LITERAL_NAME:
        return Literal(value.item(), _LITERAL_NAME[value.dtype])
    if isinstance(value, bool | int | float) and not isinstance(value, np.generic):
        if isinstance(value, int) and not -(2**63) <= value < 2**64:
            raise QueryTypeError(f"filter {context!r}: {value} does not fit in 64 bits")
        return Literal(value, literal_type(value))
    raise QueryTypeError(
        f"filter {context!r}: value {value!r} of type {type(value).__name__} is not supported; "
        "use numbers or booleans"
    )


def _combine(function: str, parts: list[Expr]) -> Expr:
    """``and``/``or`` of parts, dropping neutral constants (an empty list is the neutral one)."""
    neutral = function == BOOLEAN["and"]
    kept: list[Expr] = []
    for part in parts:
        if isinstance(part, Literal) and isinstance(part.value, bool):
            if part.value != neutral:
                return Literal(not neutral, "bool")
            continue
        kept.append(part)
    if not kept:
        return Literal(neutral, "bool")
    result = kept[0]
    for part in kept[1:]:
        result = Call(function, (result, part))
    return result


# --- pyarrow compute expressions ---------------------------------------------------------------

_ARROW_FUNCTIONS = {fn: fn for fn in [*_CMP, *BOOLEAN.values(), *ARITHMETIC.values()]}
_ARROW_FUNCTIONS |= {fn: fn for fn in UNARY.values()}
_ARROW_FUNCTIONS |= {f"{fn}_checked": fn for fn in [*ARITHMETIC.values(), *UNARY.values()]}


def arrow_expression_to_expr(expression: Any, schema: pa.Schema) -> Expr | None:
    """A ``pyarrow.compute.Expression`` (field refs, scalars, comparisons, ``& | ~``,
    arithmetic, ``isin``) as a bound predicate.

    The expression is read from its pickled form (Arrow's own expression serialization: a
    one-row table of its literals and a list of key/value entries in prefix order), which keeps
    exact field names and literal types -- ``str(expr)`` is ambiguous for field names with
    spaces or parentheses, and Substrait cannot express the implicit casts of ``nMuon > 1``.
    Division of two integers (integer division in Arrow) is rejected. Arrow's checked
    arithmetic becomes the scan's wrapping arithmetic; ``is_in`` of a null gives null here.
    """
    try:
        _, (buffer,) = expression.__reduce__()
        reader = pa.ipc.open_file(buffer)
        literals = reader.read_all()
        entries = _metadata_entries(reader.schema)
    except (AttributeError, TypeError, ValueError, pa.ArrowException) as exc:
        raise QueryError(f"cannot read the pyarrow expression {expression}: {exc}") from exc
    walker = _ArrowWalker(entries, [literals.column(i)[0] for i in range(literals.num_columns)])
    unbound = walker.node(0)
    if walker.index != len(entries):
        raise QueryError(f"cannot read the pyarrow expression {expression}: trailing entries")
    return _Binder(schema, "the schema", weak=False, integer_division=False).bind(unbound)


def _metadata_entries(schema: pa.Schema) -> list[tuple[str, str]]:
    """Every key/value of a schema's metadata, in order and with repeated keys.

    ``Schema.metadata`` is a dict (repeated keys collapse), so read the C data interface's
    metadata encoding instead: int32 count, then per entry int32 length + bytes, twice.
    """
    import ctypes

    class ArrowSchema(ctypes.Structure):
        _fields_ = [
            ("format", ctypes.c_char_p),
            ("name", ctypes.c_char_p),
            ("metadata", ctypes.c_void_p),
            ("flags", ctypes.c_int64),
            ("n_children", ctypes.c_int64),
            ("children", ctypes.c_void_p),
            ("dictionary", ctypes.c_void_p),
            ("release", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
            ("private_data", ctypes.c_void_p),
        ]

    c_schema = ArrowSchema()
    schema._export_to_c(ctypes.addressof(c_schema))
    try:
        if not c_schema.metadata:
            return []
        base, offset = c_schema.metadata, 0

        def take() -> str:
            nonlocal offset
            size = int.from_bytes(ctypes.string_at(base + offset, 4), "little", signed=True)
            text = ctypes.string_at(base + offset + 4, size).decode()
            offset += 4 + size
            return text

        count = int.from_bytes(ctypes.string_at(base, 4), "little", signed=True)
        offset = 4
        return [(take(), take()) for _ in range(count)]
    finally:
        c_schema.release(ctypes.addressof(c_schema))


class _ArrowWalker:
    def __init__(self, entries: list[tuple[str, str]], literals: list[pa.Scalar]) -> None:
        self.entries, self.literals, self.index = entries, literals, 0

    def take(self) -> tuple[str, str]:
        if self.index >= len(self.entries):
            raise QueryError("a serialized pyarrow expression ended early")
        self.index += 1
        return self.entries[self.index - 1]

    def node(self, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise QueryError(f"the pyarrow expression nests deeper than {MAX_DEPTH} levels")
        key, value = self.take()
        if key == "literal":
            return _arrow_literal(self.literals[int(value)])
        if key == "field_ref":
            return ColumnRef(name=value)
        if key == "nested_field_ref":
            raise QueryTypeError("nested field references (struct fields) are not supported")
        if key != "call":
            raise QueryError(f"unexpected entry {key!r} in a serialized pyarrow expression")
        args: list[Expr] = []
        options = None
        while self.index < len(self.entries) and self.entries[self.index][0] != "end":
            if self.entries[self.index][0] == "options":
                options = self.literals[int(self.take()[1])]
            else:
                args.append(self.node(depth + 1))
        self.take()
        return _arrow_call(value, args, options)


def _arrow_literal(scalar: pa.Scalar) -> Literal:
    name = str(scalar.type)
    if name not in _DTYPES:
        raise QueryTypeError(f"literal {scalar} of type {name} is not supported")
    if not scalar.is_valid:
        raise QueryTypeError("null literals are not supported in predicates")
    return Literal(scalar.as_py(), name)


def _arrow_call(function: str, args: list[Expr], options: pa.Scalar | None) -> Expr:
    if function in _ARROW_FUNCTIONS:
        return Call(_ARROW_FUNCTIONS[function], tuple(args))
    if function == "is_in" and options is not None and len(args) == 1:
        value_set = options["value_set"]
        if value_set.values.null_count:
            raise QueryTypeError("isin() with a null in its values is not supported")
        values = [_arrow_literal(v) for v in value_set.values]
        return _combine(BOOLEAN["or"], [Call("equal", (args[0], v)) for v in values])
    known = ", ".join(sorted({*_ARROW_FUNCTIONS, "is_in"}))
    raise QueryTypeError(f"the pyarrow function {function!r} cannot run in storage; known: {known}")


# --- skipping objects by their statistics ------------------------------------------------------

_EXACT, _F64, _F32 = "exact", "double", "float"


def may_match(expr: Expr | None, stats: Mapping[str, Mapping[str, Any]]) -> bool:
    """False only when no row of an object can satisfy ``expr``, given per-column statistics.

    ``stats[column] = {"min": ..., "max": ..., "nulls": ...}`` over the non-null values (the
    flattened values of a list column); a missing column or bound means "unknown". Handles a
    column (or ``min``/``max`` of a list column) compared with a literal, ``any``/``all`` of
    such comparisons, and ``and``/``or``/``not``; anything else may match.
    """
    return expr is None or _truth(expr, stats)[0]


def _truth(expr: Expr, stats: Mapping[str, Mapping[str, Any]]) -> tuple[bool, bool]:
    """(can be true, can be false) for some row (or list element); null is neither."""
    if isinstance(expr, Literal) and isinstance(expr.value, bool):
        return expr.value, not expr.value
    if not isinstance(expr, Call):
        return True, True
    fn, args = expr.function, expr.args
    if fn == BOOLEAN["not"]:
        can_true, can_false = _truth(args[0], stats)
        return can_false, can_true
    if fn in (BOOLEAN["and"], BOOLEAN["or"]):
        (at, af), (bt, bf) = _truth(args[0], stats), _truth(args[1], stats)
        if fn == BOOLEAN["and"]:
            return at and bt, af or bf
        return at or bt, af and bf
    if fn == "any":  # an empty list gives False
        return _truth(args[0], stats)[0], True
    if fn == "all":  # an empty list gives True
        return True, _truth(args[0], stats)[1]
    if fn in _CMP:
        return _compare_bounds(fn, args, stats)
    return True, True


def _compare_bounds(
    function: str, args: tuple[Expr, ...], stats: Mapping[str, Mapping[str, Any]]
) -> tuple[bool, bool]:
    left, right = args
    if isinstance(left, Literal):
        function, left, right = _MIRROR[function], right, left
    if isinstance(left, Call) and left.function in ("min", "max"):
        left = left.args[0]  # a list's min/max lies within its values' bounds (or is null)
    if not isinstance(left, Column) or not isinstance(right, Literal):
        return True, True
    bounds = _bounds(stats.get(left.name))
    value = right.value
    if (
        bounds is None
        or isinstance(value, bool)
        or (isinstance(value, float) and math.isnan(value))
    ):
        return True, True
    # The scan compares in the literal's type, the column's, or a common float type; a runtime
    # answer is possible if it is possible in any of these domains (each rounding is monotone).
    if right.type == "float":
        value, domains = _round(value, _F32, 0), (_F32, _F64)
    elif right.type == "double":
        domains = (_F64,)
    else:
        domains = (_EXACT, _F32, _F64)
    can_true = can_false = False
    for domain in domains:
        low, high = _round(bounds[0], domain, -1), _round(bounds[1], domain, 1)
        c = value if domain == _EXACT else _round(value, domain, 0)
        t, f = _interval_answers(function, low, high, c)
        can_true, can_false = can_true or t, can_false or f
    return can_true, can_false or function != "not_equal"  # NaN compares false (!= true)


def _bounds(column_stats: Mapping[str, Any] | None) -> tuple[float | int, float | int] | None:
    if not column_stats:
        return None
    low, high = column_stats.get("min"), column_stats.get("max")
    values = []
    for bound in (low, high):
        if isinstance(bound, np.generic):
            bound = bound.item()
        if not isinstance(bound, int | float) or (isinstance(bound, float) and math.isnan(bound)):
            return None
        values.append(int(bound) if isinstance(bound, bool) else bound)
    return (values[0], values[1]) if values[0] <= values[1] else None


def _round(value: float | int, domain: str, direction: int) -> float | int:
    """``value`` as the scan would see it in ``domain``, widened outward (``direction``) when
    the statistic itself may be a rounded image of the true extreme."""
    if domain == _EXACT:
        if isinstance(value, float) and abs(value) >= 2**53 and direction and math.isfinite(value):
            return math.nextafter(value, direction * math.inf)  # a float64 of an int64 extreme
        return value
    if domain == _F64:
        return float(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rounded = np.float32(value)
        if direction and float(rounded) != value:
            rounded = np.nextafter(rounded, np.float32(direction * np.inf))
    return float(rounded)


def _interval_answers(
    function: str, low: float | int, high: float | int, c: float | int
) -> tuple[bool, bool]:
    """(some x in [low, high] makes ``x OP c`` true, some makes it false)."""
    if function == "less":
        return low < c, high >= c
    if function == "less_equal":
        return low <= c, high > c
    if function == "greater":
        return high > c, low <= c
    if function == "greater_equal":
        return high >= c, low < c
    inside, single = low <= c <= high, low == high == c
    if function == "equal":
        return inside, not single
    return not single, inside
