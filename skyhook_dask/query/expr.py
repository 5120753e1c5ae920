"""Typed expression trees: what a parsed, schema-bound predicate becomes.

Three node kinds. Every function name is evaluated the same way by the Python reference scan
(:mod:`skyhook_dask.objclass.scan`) and the C++ object class, mostly by calling the Arrow compute
function of that name, so both sides share one semantics.

Per-event functions over jagged (``list<...>``) columns:

* ``any(x)``, ``all(x)``: ``list<bool>`` -> bool; empty list -> False / True; null elements
  count as False (any) and are ignored (all); a null list gives null.
* ``count(x)``: number of True elements of a ``list<bool>`` -> int64 (null list -> null).
* ``len(x)``: number of elements of any list -> int64 (null list -> null).
* ``sum(x)``: sum of the elements -> int64 (signed/bool), uint64 (unsigned) or float64; empty -> 0.
* ``min(x)``, ``max(x)``: smallest/largest element in the list's value type; empty -> null;
  null elements are ignored; a NaN element makes the result NaN (as numpy/awkward do).

Elementwise functions (comparisons, arithmetic, boolean logic, ``abs``, ``negate``) apply to
flat columns directly and to the *values* of list columns, keeping the lists' offsets. A flat
(per-event) operand next to a list operand is broadcast to each element of its event's list;
two list operands must have equal lengths in every event. ``divide`` always computes in
float64 (true division, as Python and awkward do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

# Arrow compute function names for the operators of the query language.
COMPARISONS = {
    "<": "less",
    "<=": "less_equal",
    ">": "greater",
    ">=": "greater_equal",
    "==": "equal",
    "!=": "not_equal",
}
COMPARISON_FUNCTIONS = frozenset(COMPARISONS.values())
ARITHMETIC = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}
BOOLEAN = {"and": "and_kleene", "or": "or_kleene", "not": "invert"}
UNARY = {"abs": "abs", "neg": "negate"}
LIST_REDUCTIONS = ("any", "all", "count", "len", "sum", "min", "max")
# Math functions as the query language spells them -> Arrow compute functions. Domain errors
# give NaN (and log(0) -inf), as numpy does: the unchecked Arrow kernels.
MATH = {
    "sqrt": "sqrt",
    "exp": "exp",
    "log": "ln",
    "log10": "log10",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "asin": "asin",
    "acos": "acos",
    "atan": "atan",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "floor": "floor",
    "ceil": "ceil",
}
MATH2 = {"atan2": "atan2", "hypot": "hypot"}  # hypot(x, y) is sqrt(x*x + y*y) on the wire
POWER = "power"  # x ** y
# x[i]: element i of each event's list (negative: from the end); an event without it gives a
# missing value (null), which compares false and makes arithmetic missing. i is an int64
# literal on the wire.
ELEMENT = "list_element"
# x[mask]: per event, the elements of x where the list of booleans mask is true; both lists
# must have the same length in every event (one counter), else a type error naming both.
FILTER = "list_filter"
# A comparison with such a missing value is false, not missing: the binder wraps comparisons
# of indexed values in coalesce(comparison, false).
COALESCE = "coalesce"
# to_float64(x): numbers as float64, integers beyond 2**53 rounded (numpy's astype). The binder
# inserts it where numpy computes in float64 but Arrow would pick another type (float32 with a
# 32/64-bit integer, a signed integer with uint64) or refuse a large int64/uint64 value.
TO_FLOAT64 = "to_float64"

ELEMENTWISE_FUNCTIONS = frozenset(
    [
        *COMPARISONS.values(),
        *ARITHMETIC.values(),
        *BOOLEAN.values(),
        *UNARY.values(),
        *MATH.values(),
        "atan2",
        POWER,
        ELEMENT,
        FILTER,
        COALESCE,
        TO_FLOAT64,
    ]
)
ALL_FUNCTIONS = ELEMENTWISE_FUNCTIONS | frozenset(LIST_REDUCTIONS)

# Literal types the wire format can carry (Arrow type names).
LITERAL_TYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float",  # float32, spelled as Arrow prints it
    "double",  # float64
)

# Deepest nesting of an expression tree: the parser, the filter translators and the wire
# format (whose decoders, Python and C++, recurse) all stop here.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Column:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Literal:
    value: bool | int | float
    type: str  # one of LITERAL_TYPES

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Call:
    function: str  # one of ALL_FUNCTIONS
    args: tuple[Expr, ...]

    def __str__(self) -> str:
        return f"{self.function}({', '.join(map(str, self.args))})"


Expr = Union[Column, Literal, Call]  # noqa: UP007  (a runtime alias used in isinstance checks)


def columns_of(expr: Expr | None) -> list[str]:
    """Column names an expression reads, in first-seen order."""
    seen: dict[str, None] = {}

    def walk(node: Expr) -> None:
        if isinstance(node, Column):
            seen.setdefault(node.name)
        elif isinstance(node, Call):
            for arg in node.args:
                walk(arg)

    if expr is not None:
        walk(expr)
    return list(seen)


def conjunction(parts: list[Expr]) -> Expr | None:
    """``a and b and ...`` of the given predicates (None when empty)."""
    result: Expr | None = None
    for part in parts:
        result = part if result is None else Call("and_kleene", (result, part))
    return result
