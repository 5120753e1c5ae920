"""Type checking of predicates against an Arrow schema, and the typing of their literals.

Literal typing follows numpy's NEP 50 for query strings, so that results equal what numpy and
awkward compute: a literal is a *weak* scalar that takes the type of the column it meets
(``Muon_pt > 0.1`` compares in float32 when Muon_pt is float32); a float literal next to an
integer column makes it ``double``; column-free sub-expressions are computed first, with Python
numbers, as Python evaluates them before numpy sees them. An integer comparison with a literal
outside the column type's range becomes an equivalent in-range comparison (``uint8 > 300`` is
false for every row); arithmetic with such a literal widens to an integer type holding both
(where numpy would raise). Two columns of different types meet in numpy's common type: where
that is float64 but Arrow would pick float32 or int64 (float32 with a 32/64-bit integer, a
signed integer with uint64), both are cast with ``to_float64``, as are int64/uint64 values
meeting float64 (Arrow refuses those beyond 2**53). Filters and pyarrow expressions keep their
literals' own types and Arrow's common types, as pyarrow does, except that integer comparisons
get the same exact treatment and int64 values the same cast.

A predicate that is constant after folding becomes None when true and ``Literal(False)`` when
false (the scan then selects no row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..exceptions import QueryTypeError, UnknownColumnError
from .clauses import Query
from .expr import (
    ARITHMETIC,
    BOOLEAN,
    COALESCE,
    COMPARISON_FUNCTIONS,
    ELEMENT,
    FILTER,
    POWER,
    TO_FLOAT64,
    UNARY,
    Call,
    Column,
    Expr,
    Literal,
)
from .folding import MATH_FUNCTIONS, fold
from .literals import (
    INTEGERS,
    LITERAL_DTYPES,
    covers,
    fits,
    integer_range_comparison,
    typed_literal,
)
from .render import render
from .tokens import ColumnRef

_FLOAT64 = np.dtype("float64")
_WIDE_INTEGERS = (np.dtype("int64"), np.dtype("uint64"))


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


def _is_number(kind: _Kind, literal: Expr) -> bool:
    if kind.dtype is None:
        return isinstance(literal, Literal) and not isinstance(literal.value, bool)
    return kind.dtype.kind in "iuf"


def _is_bool(kind: _Kind, literal: Expr) -> bool:
    if kind.dtype is None:
        return isinstance(literal, Literal) and isinstance(literal.value, bool)
    return kind.dtype.kind == "b"


class PredicateBinder:
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
        node = fold(expr) if self.weak else expr
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

    def bind_value(self, expr: Expr, name: str) -> Expr:
        """A projected expression (``expr as name``): any value per event that reads a column."""
        bound, kind = self.visit(fold(expr) if self.weak else expr)
        if kind.dtype is None:
            raise QueryTypeError(
                f"{render(expr)} ({name}) reads no column: it is the same for every event"
            )
        return bound

    def visit(self, node: Expr) -> tuple[Expr, _Kind]:
        if isinstance(node, Column):
            field = _field(node, self.schema, self.where)
            return Column(node.name), _column_kind(field)
        if isinstance(node, Literal):
            if self.weak:
                return node, _Kind(None)
            return node, _Kind(LITERAL_DTYPES[node.type])
        if not isinstance(node, Call):
            raise QueryTypeError(f"not an expression node: {node!r}")
        if node.function in ("any", "all", "count", "len", "sum", "min", "max"):
            return self.reduction(node)
        args = [self.visit(arg) for arg in node.args]
        if node.function in COMPARISON_FUNCTIONS and len(args) == 2:
            return self.compare(node, *args)
        if node.function in ARITHMETIC.values() and len(args) == 2:
            return self.arithmetic(node, *args)
        if node.function in (BOOLEAN["and"], BOOLEAN["or"], BOOLEAN["not"]):
            for (arg, kind), original in zip(args, node.args, strict=True):
                if not _is_bool(kind, arg):
                    raise self.type_error(node, f"{render(original)} is not a boolean")
            exprs = tuple(self.settle(arg, LITERAL_DTYPES["bool"]) for arg, _ in args)
            return Call(node.function, exprs), _Kind(
                LITERAL_DTYPES["bool"], any(k.jagged for _, k in args)
            )
        if node.function in UNARY.values() and len(args) == 1:
            ((arg, kind),) = args
            if not _is_number(kind, arg):
                raise self.type_error(node, f"{render(node.args[0])} is not a number")
            return Call(node.function, (arg,)), kind
        if node.function in MATH_FUNCTIONS:
            return self.math(node, args)
        if node.function == ELEMENT and len(args) == 2:
            return self.element(node, args)
        if node.function == FILTER and len(args) == 2:
            return self.filter(node, args)
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
                return typed_literal(value, np.dtype("float64"))
            if not fits(value, dtype):
                # Arithmetic only (comparisons were rewritten): widen as numpy 1 did.
                wide = next((t for t in INTEGERS if covers(t, dtype) and fits(value, t)), None)
                return typed_literal(value, wide or np.dtype("float64"))
        return typed_literal(value, dtype)

    def settled(self, side: tuple[Expr, _Kind], dtype: np.dtype) -> tuple[Expr, _Kind]:
        """A weak literal operand typed as ``dtype``; any other operand unchanged."""
        expr, kind = side
        if kind.dtype is not None or not isinstance(expr, Literal) or isinstance(expr.value, bool):
            return side
        return self.settle(expr, dtype), _Kind(dtype)

    def pair(
        self, node: Call, a: tuple[Expr, _Kind], b: tuple[Expr, _Kind]
    ) -> tuple[Expr, Expr, np.dtype]:
        """Settle weak literals on either side; returns both operands and their common dtype."""
        (ea, ka), (eb, kb) = a, b
        if ka.dtype is None and kb.dtype is None:  # two weak literals (folding normally joins them)
            ka = _Kind(LITERAL_DTYPES[ea.type])  # type: ignore[union-attr]
        if ka.dtype is None:
            ea = self.settle(ea, kb.dtype)  # type: ignore[arg-type]
            ka = _Kind(LITERAL_DTYPES[ea.type])  # type: ignore[union-attr]
        if kb.dtype is None:
            eb = self.settle(eb, ka.dtype)
            kb = _Kind(LITERAL_DTYPES[eb.type])  # type: ignore[union-attr]
        common = np.result_type(ka.dtype, kb.dtype)
        if self.weak and common == _FLOAT64 and _FLOAT64 not in (ka.dtype, kb.dtype):
            # float32 with a 32/64-bit integer, or a signed integer with uint64: numpy (and so
            # awkward) computes in float64, Arrow's implicit cast picks float32 or int64
            # (filters and pyarrow expressions keep Arrow's choice, as pyarrow computes them).
            ea, eb = Call(TO_FLOAT64, (ea,)), Call(TO_FLOAT64, (eb,))
        elif common == _FLOAT64:  # Arrow refuses int64 values beyond 2**53 in float64
            ea, eb = _wide_to_float64(ea, ka.dtype), _wide_to_float64(eb, kb.dtype)
        return ea, eb, common

    def compare(
        self, node: Call, a: tuple[Expr, _Kind], b: tuple[Expr, _Kind]
    ) -> tuple[Expr, _Kind]:
        jagged = a[1].jagged or b[1].jagged
        if not (_is_number(a[1], a[0]) and _is_number(b[1], b[0])) and not (
            _is_bool(a[1], a[0]) and _is_bool(b[1], b[0])
        ):
            raise self.type_error(node, f"cannot compare {_describe(*a)} with {_describe(*b)}")
        rewritten = integer_range_comparison(node.function, a[0], a[1].dtype, b[0], b[1].dtype)
        if rewritten is None:
            ea, eb, _ = self.pair(node, a, b)
            rewritten = Call(node.function, (ea, eb))
        if _has_element(a[0]) or _has_element(b[0]):  # a missing element compares false
            rewritten = Call(COALESCE, (rewritten, Literal(False, "bool")))
        return rewritten, _Kind(LITERAL_DTYPES["bool"], jagged)

    def arithmetic(
        self, node: Call, a: tuple[Expr, _Kind], b: tuple[Expr, _Kind]
    ) -> tuple[Expr, _Kind]:
        for (expr, kind), original in zip((a, b), node.args, strict=True):
            if not _is_number(kind, expr):
                raise self.type_error(node, f"{render(original)} is not a number")
        if node.function == ARITHMETIC["/"]:  # in float64: a number written is taken as one
            a, b = (self.settled(side, _FLOAT64) for side in (a, b))
        ea, eb, common = self.pair(node, a, b)
        if node.function == ARITHMETIC["/"]:
            if not self.integer_division and common.kind in "iu":
                raise self.type_error(
                    node, "dividing integers is integer division in Arrow; divide by a float"
                )
            common = np.dtype("float64")
        return Call(node.function, (ea, eb)), _Kind(common, a[1].jagged or b[1].jagged)

    def need_list(self, node: Call, kind: _Kind, what: str) -> None:
        if not kind.jagged or kind.dtype is None:
            text = render(node.args[0])
            raise self.type_error(
                node, f"{text}[...] {what} of a list per event, but {text} is one value per event"
            )

    def element(self, node: Call, args: list[tuple[Expr, _Kind]]) -> tuple[Expr, _Kind]:
        """``x[i]``: one value per event, of the list's element type (missing where the list
        is too short)."""
        (value, kind), (index, _) = args
        self.need_list(node, kind, "picks an element")
        if not (isinstance(index, Literal) and type(index.value) is int):
            raise self.type_error(node, "the index must be an integer")
        return Call(ELEMENT, (value, Literal(index.value, "int64"))), _Kind(kind.dtype)

    def filter(self, node: Call, args: list[tuple[Expr, _Kind]]) -> tuple[Expr, _Kind]:
        """``x[mask]``: per event, the elements of x where the mask is true (a list again)."""
        (value, kind), (mask, mask_kind) = args
        self.need_list(node, kind, "selects elements")
        if not (mask_kind.jagged and mask_kind.dtype == LITERAL_DTYPES["bool"]):
            raise self.type_error(
                node,
                f"the mask {render(node.args[1])} must give a list of booleans per event, one "
                f"for each element of {render(node.args[0])}",
            )
        return Call(FILTER, (value, mask)), _Kind(kind.dtype, True)

    def math(self, node: Call, args: list[tuple[Expr, _Kind]]) -> tuple[Expr, _Kind]:
        """sqrt(x), atan2(y, x), x ** y, ...: numbers in; float out (float32 stays float32),
        except ``**`` of integers, which stays an integer as in numpy."""
        wanted = 2 if node.function in ("atan2", POWER) else 1
        if len(args) != wanted:
            raise self.type_error(node, f"{node.function} takes {wanted} argument(s)")
        for (expr, kind), original in zip(args, node.args, strict=True):
            if not _is_number(kind, expr):
                raise self.type_error(node, f"{render(original)} is not a number")
        jagged = any(kind.jagged for _, kind in args)
        if wanted == 1:
            ((arg, kind),) = args
            arg = self.settle(arg, _FLOAT64) if kind.dtype is None else arg
            dtype = kind.dtype if kind.dtype is not None else _FLOAT64
            arg = _wide_to_float64(arg, dtype)
            return Call(node.function, (arg,)), _Kind(_float_of(dtype), jagged)
        ea, eb, common = self.pair(node, args[0], args[1])
        if node.function == "atan2":
            ea, eb = _wide_to_float64(ea, common), _wide_to_float64(eb, common)
            return Call(node.function, (ea, eb)), _Kind(_float_of(common), jagged)
        if common.kind in "iu" and isinstance(eb, Literal) and eb.value < 0:
            raise self.type_error(
                node, "integers to negative integer powers are not integers; write a float base"
            )
        return Call(node.function, (ea, eb)), _Kind(common, jagged)

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
            out = LITERAL_DTYPES["bool"]
        elif fn in ("count", "len") or (fn == "sum" and dtype.kind in "bi"):
            out = LITERAL_DTYPES["int64"]
        elif fn == "sum":
            out = LITERAL_DTYPES["uint64" if dtype.kind == "u" else "double"]
        else:
            out = dtype
        return Call(fn, (arg,)), _Kind(out)


def _wide_to_float64(expr: Expr, dtype: np.dtype) -> Expr:
    """int64/uint64 values explicitly as float64 (Arrow's implicit cast fails beyond 2**53)."""
    if isinstance(expr, Literal) or dtype not in _WIDE_INTEGERS:
        return expr
    return Call(TO_FLOAT64, (expr,))


def _has_element(expr: Expr) -> bool:
    if not isinstance(expr, Call):
        return False
    return expr.function == ELEMENT or any(_has_element(a) for a in expr.args)


def _float_of(dtype: np.dtype) -> np.dtype:
    """What Arrow's math kernels return: float32 for float32, else float64."""
    return dtype if dtype == np.dtype("float32") else np.dtype("float64")
