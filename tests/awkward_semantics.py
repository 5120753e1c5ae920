"""The query language's ground truth: a parsed (unbound) expression evaluated with awkward and
numpy, as a physicist would write it by hand -- the README's "awkward equivalent" column.

Literals stay Python numbers (numpy's NEP 50 weak scalars); column-free parts are computed by
Python first. The documented choices where the language is not plain numpy:

* ``x / y`` divides in float64; math functions of integers compute in float64 (numpy would
  pick float16 for int8);
* ``x[i]`` is missing where the list is too short; a comparison with a missing element is
  false (``ak.fill_none(..., False)``);
* ``x[mask]``: a missing mask element counts as false; the mask must have the values' length
  in every event (awkward lets an all-false mask of another length through);
* an integer literal outside the integer column's type is typed as the smallest integer type
  holding both (numpy 2 raises OverflowError), so comparisons with it are exact;
* ``min``/``max`` of a list holding NaN are NaN (numpy's ``np.min``; ``ak.min`` skips NaN);
  ``sum`` of a list of booleans counts them.
"""

from __future__ import annotations

import operator
from typing import Any

import awkward as ak
import numpy as np

from skyhook_dask.query.expr import Call, Column, Expr, Literal

_UFUNCS = {
    "less": np.less, "less_equal": np.less_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "equal": np.equal, "not_equal": np.not_equal,
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "power": np.power,
    "atan2": np.arctan2, "abs": np.absolute, "negate": np.negative, "invert": np.logical_not,
}  # fmt: skip
_MATH = {
    "sqrt": np.sqrt, "exp": np.exp, "ln": np.log, "log10": np.log10, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil,
}  # fmt: skip
# Column-free parts: Python's operators; math as numpy's float64 functions (NaN out of domain).
_PYTHON = {
    "add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
    "divide": operator.truediv, "negate": operator.neg, "abs": abs,
    "less": operator.lt, "less_equal": operator.le, "greater": operator.gt,
    "greater_equal": operator.ge, "equal": operator.eq, "not_equal": operator.ne,
    "invert": operator.not_,
    "power": lambda x, y: _real(x**y),
    **{fn: lambda *xs, f=f: float(f(*map(np.float64, xs))) for fn, f in _MATH.items()},
    "atan2": lambda y, x: float(np.arctan2(np.float64(y), np.float64(x))),
}  # fmt: skip
_COMPARISONS = {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"}


def _real(value: Any) -> Any:
    return float("nan") if isinstance(value, complex) else value


def awkward_eval(expr: Expr, events: ak.Array) -> Any:
    """``expr`` over every event of ``events``: an awkward array (or a Python number)."""
    with np.errstate(all="ignore"):
        return _eval(expr, events)


def _has_element(expr: Expr) -> bool:
    return isinstance(expr, Call) and (
        expr.function == "list_element" or any(_has_element(a) for a in expr.args)
    )


def _float64(value: Any) -> Any:
    if isinstance(value, int | float):
        return float(value)
    return ak.values_astype(value, np.float64)


def _primitive(value: ak.Array) -> np.dtype:
    kind = ak.type(value)
    while hasattr(kind, "content"):
        kind = kind.content
    return np.dtype(kind.primitive)  # type: ignore[attr-defined]


def _is_float(value: ak.Array) -> bool:
    return _primitive(value).kind == "f"


def _floating(value: Any) -> Any:
    """Integers (and booleans) as float64; floats keep their width."""
    if isinstance(value, int | float):
        return float(value)
    return value if _is_float(value) else _float64(value)


def _eval(expr: Expr, events: ak.Array) -> Any:
    if isinstance(expr, Column):
        return events[expr.name]
    if isinstance(expr, Literal):
        return expr.value
    assert isinstance(expr, Call)
    fn = expr.function
    if fn == "list_element":
        return _element(_eval(expr.args[0], events), int(expr.args[1].value))  # type: ignore[union-attr]
    args = [_eval(a, events) for a in expr.args]
    if all(isinstance(a, int | float) for a in args):  # column-free: Python computes it
        return _PYTHON[fn](*args)
    if fn == "list_filter":
        values, mask = args
        if not ak.all(ak.fill_none(ak.num(values, axis=1) == ak.num(mask, axis=1), True)):
            raise ValueError("cannot select with a mask of another length")
        return values[ak.fill_none(mask, False, axis=-1)]
    if fn in ("any", "all", "count", "len", "sum", "min", "max"):
        return _reduce(fn, args[0])
    if fn == "divide":
        return np.true_divide(*(_float64(a) for a in args))
    if fn in _MATH:
        return _MATH[fn](_floating(args[0]))
    if fn == "atan2":
        return np.arctan2(*(_floating(a) for a in args))
    if len(args) == 2:
        args = [_widened(args[0], args[1]), _widened(args[1], args[0])]
    result = _UFUNCS[fn](*args)
    if fn in _COMPARISONS and any(_has_element(a) for a in expr.args):
        result = ak.fill_none(result, False)
    return result


_INTEGERS = [np.dtype(t) for t in ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8")]


def _widened(value: Any, other: Any) -> Any:
    """A Python integer that ``other``'s integer type cannot hold, as the smallest integer
    type holding both (float64 if none does)."""
    if type(value) is not int or isinstance(other, int | float) or _is_float(other):
        return value
    dtype = _primitive(other)
    if dtype.kind == "b" or np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
        return value
    fits = [
        t for t in _INTEGERS
        if np.iinfo(t).min <= min(value, np.iinfo(dtype).min)
        and max(value, np.iinfo(dtype).max) <= np.iinfo(t).max
    ]  # fmt: skip
    return fits[0].type(value) if fits else float(value)


def _element(lists: ak.Array, index: int) -> ak.Array:
    if index >= 0:
        return ak.firsts(lists[:, index:], axis=1)
    return ak.mask(ak.firsts(lists[:, index:], axis=1), ak.num(lists, axis=1) >= -index)


def _reduce(fn: str, lists: ak.Array) -> ak.Array:
    if fn == "len":  # int64, as ak.num gives for the lists uproot reads
        return ak.values_astype(ak.num(lists, axis=1), np.int64)
    if fn == "count":
        return ak.sum(ak.fill_none(lists, False, axis=-1), axis=1)
    if fn in ("any", "all"):
        return getattr(ak, fn)(lists, axis=1)
    if fn == "sum":  # floats add in float64
        return ak.sum(_float64(lists) if _is_float(lists) else lists, axis=1)
    extreme = getattr(ak, fn)(lists, axis=1)
    if not _is_float(lists):
        return extreme
    has_nan = ak.fill_none(ak.any(np.isnan(lists), axis=1), False)
    return ak.where(has_nan, _primitive(lists).type("nan"), extreme)
