"""Literals meeting typed values: the Arrow literal types as numpy dtypes, whether a Python
integer fits one, and the exact rewrite of integer comparisons with out-of-range literals."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .expr import Call, Expr, Literal

# Each comparison as it reads with its operands swapped (a < b is b > a).
MIRRORED = {"less": "greater", "less_equal": "greater_equal", "equal": "equal"}
MIRRORED |= {v: k for k, v in MIRRORED.items()} | {"not_equal": "not_equal"}
# Literal types (Arrow names) as numpy dtypes, and back.
LITERAL_DTYPES = {name: np.dtype(name) for name in ("bool", "int8", "int16", "int32", "int64")}
LITERAL_DTYPES |= {f"u{n}": np.dtype(f"u{n}") for n in ("int8", "int16", "int32", "int64")}
LITERAL_DTYPES |= {"float": np.dtype("float32"), "double": np.dtype("float64")}
LITERAL_TYPE_NAMES = {dtype: name for name, dtype in LITERAL_DTYPES.items()}
# The integer types, narrowest first (a literal that fits no column type widens to one).
INTEGERS = [np.dtype(t) for t in ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8")]


def fits(value: int, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def typed_literal(value: Any, dtype: np.dtype) -> Literal:
    if dtype.kind == "f":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 1e39 -> inf in float32, as numpy
            return Literal(float(dtype.type(value)), LITERAL_TYPE_NAMES[dtype])
    return Literal(value, LITERAL_TYPE_NAMES[dtype])


def covers(wide: np.dtype, narrow: np.dtype) -> bool:
    a, b = np.iinfo(wide), np.iinfo(narrow)
    return a.min <= b.min and a.max >= b.max


def integer_range_comparison(
    function: str, a: Expr, a_dtype: np.dtype | None, b: Expr, b_dtype: np.dtype | None
) -> Expr | None:
    """Exact rewrite of ``integer_expr OP int_literal`` (operands with their dtypes, None for
    a weak literal), typing the literal as the column; None for any other comparison."""
    if isinstance(a, Literal) and not isinstance(b, Literal):
        function, a, b, a_dtype = MIRRORED[function], b, a, b_dtype
    expr, literal, dtype = a, b, a_dtype
    if not (
        isinstance(literal, Literal)
        and type(literal.value) is int
        and dtype is not None
        and dtype.kind in "iu"
    ):
        return None
    value = literal.value
    if fits(value, dtype):
        return Call(function, (expr, typed_literal(value, dtype)))
    info = np.iinfo(dtype)
    # Out of range: the result is the same for every (non-null) row; say so with the bound.
    if value > info.max:
        always = function in ("less", "less_equal", "not_equal")
        bound, op = int(info.max), ("less_equal" if always else "greater")
    else:
        always = function in ("greater", "greater_equal", "not_equal")
        bound, op = int(info.min), ("greater_equal" if always else "less")
    return Call(op, (expr, typed_literal(bound, dtype)))
