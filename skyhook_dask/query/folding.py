"""Constant folding: column-free sub-expressions of a query computed with Python numbers, as
numpy would be handed them (math with numpy's float64 functions: NaN, not an error, out of
domain), so that literals are typed after arithmetic as numpy types its results."""

from __future__ import annotations

import operator

import numpy as np

from ..exceptions import QueryTypeError
from .expr import BOOLEAN, COMPARISON_FUNCTIONS, MATH, POWER, UNARY, Call, Expr, Literal
from .render import render
from .tokens import literal_type

__all__ = ["MATH_FUNCTIONS", "fold"]

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


def fold(expr: Expr) -> Expr:
    """Compute column-free sub-expressions with Python numbers (what numpy would be handed)."""
    if not isinstance(expr, Call):
        return expr
    args = tuple(fold(a) for a in expr.args)
    if not all(isinstance(a, Literal) for a in args) or expr.function not in _FOLDABLE:
        return Call(expr.function, args)
    values = [a.value for a in args]  # type: ignore[union-attr]
    fn = expr.function
    numbers = all(type(v) is not bool for v in values)
    booleans = all(type(v) is bool for v in values)
    if fn in (BOOLEAN["and"], BOOLEAN["or"], BOOLEAN["not"]) and not booleans:
        raise QueryTypeError(f"in {render(expr)}: {fn} needs booleans")
    if fn not in COMPARISON_FUNCTIONS and fn not in BOOLEAN.values() and not numbers:
        raise QueryTypeError(f"in {render(expr)}: arithmetic needs numbers, not booleans")
    if fn in COMPARISON_FUNCTIONS and not (numbers or booleans):
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
        elif fn == POWER:
            value = values[0] ** values[1]
            if isinstance(value, complex):  # a negative base to a fractional power
                value = float("nan")
        elif fn in _NUMPY_MATH:
            with np.errstate(all="ignore"):
                value = float(_NUMPY_MATH[fn](*(np.float64(v) for v in values)))
        else:
            value = _PY_OPS[fn](*values)
    except ZeroDivisionError:
        raise QueryTypeError(f"division by zero in {render(expr)}") from None
    except OverflowError:
        raise QueryTypeError(f"the constant {render(expr)} overflows") from None
    if type(value) is int and not -(2**63) <= value < 2**64:
        raise QueryTypeError(f"the constant {render(expr)} = {value} does not fit in 64 bits")
    return Literal(value, literal_type(value))


MATH_FUNCTIONS = frozenset([*MATH.values(), "atan2", POWER])
# Constant math is folded with numpy's float64 functions: NaN (not an error) out of domain.
_NUMPY_MATH = {
    "sqrt": np.sqrt, "exp": np.exp, "ln": np.log, "log10": np.log10, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil,
    "atan2": np.arctan2,
}  # fmt: skip
_FOLDABLE = frozenset([*_PY_OPS, *BOOLEAN.values(), *UNARY.values(), *MATH_FUNCTIONS])
