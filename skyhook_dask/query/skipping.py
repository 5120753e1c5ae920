"""Skipping objects by their statistics: can any row of an object satisfy a predicate, given the
per-column min/max of its values? And the converse: must every row satisfy it, so that the
object is read without filtering?"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .expr import (
    BOOLEAN,
    COALESCE,
    COMPARISON_FUNCTIONS,
    ELEMENT,
    TO_FLOAT64,
    Call,
    Column,
    Expr,
    Literal,
)
from .literals import MIRRORED

_EXACT, _F64, _F32 = "exact", "double", "float"


def may_match(expr: Expr | None, stats: Mapping[str, Mapping[str, Any]]) -> bool:
    """False only when no row of an object can satisfy ``expr``, given per-column statistics.

    ``stats[column] = {"min": ..., "max": ..., "nulls": ...}`` over the non-null values (the
    flattened values of a list column); a missing column or bound means "unknown". Handles a
    column (or ``min``/``max``/an element ``x[i]`` of a list column) compared with a literal,
    ``any``/``all`` of such comparisons, and ``and``/``or``/``not``; anything else may match.
    """
    return expr is None or _truth(expr, stats)[0]


def must_match(expr: Expr | None, stats: Mapping[str, Mapping[str, Any]]) -> bool:
    """True only when every row of an object satisfies ``expr``, given per-column statistics.

    Handles ``and``/``or``/``not`` of flat columns compared with literals, over columns whose
    statistics say they hold no null (a null compares as neither true nor false). Bounds are
    recorded only for columns without NaN (see :func:`skyhook_dask.formats.manifest.column_stats`).
    """
    return expr is None or (_never_null(expr, stats) and not _truth(expr, stats, exact=True)[1])


def _never_null(expr: Expr, stats: Mapping[str, Mapping[str, Any]]) -> bool:
    """``expr`` is one of the forms :func:`must_match` handles, over null-free columns."""
    if isinstance(expr, Literal):
        return expr.value is not None
    if isinstance(expr, Column):
        return stats.get(expr.name, {}).get("nulls") == 0
    if not isinstance(expr, Call):
        return False
    if expr.function in COMPARISON_FUNCTIONS:
        left, right = expr.args
        return (
            isinstance(left, Column | Literal)
            and isinstance(right, Column | Literal)
            and all(_never_null(a, stats) for a in expr.args)
        )
    if expr.function in (BOOLEAN["and"], BOOLEAN["or"], BOOLEAN["not"]):
        return all(_never_null(a, stats) for a in expr.args)
    return False


def _truth(
    expr: Expr, stats: Mapping[str, Mapping[str, Any]], exact: bool = False
) -> tuple[bool, bool]:
    """(can be true, can be false) for some row (or list element); null is neither."""
    if isinstance(expr, Literal) and isinstance(expr.value, bool):
        return expr.value, not expr.value
    if not isinstance(expr, Call):
        return True, True
    fn, args = expr.function, expr.args
    if fn == BOOLEAN["not"]:
        can_true, can_false = _truth(args[0], stats, exact)
        return can_false, can_true
    if fn in (BOOLEAN["and"], BOOLEAN["or"]):
        (at, af), (bt, bf) = _truth(args[0], stats, exact), _truth(args[1], stats, exact)
        if fn == BOOLEAN["and"]:
            return at and bt, af or bf
        return at or bt, af and bf
    if fn == "any":  # an empty list gives False
        return _truth(args[0], stats)[0], True
    if fn == "all":  # an empty list gives True
        return True, _truth(args[0], stats)[1]
    if fn in COMPARISON_FUNCTIONS:
        return _compare_bounds(fn, args, stats, exact)
    if fn == COALESCE and args[1] == Literal(False, "bool"):  # a missing element: false
        return _truth(args[0], stats, exact)[0], True
    return True, True


def _compare_bounds(
    function: str, args: tuple[Expr, ...], stats: Mapping[str, Mapping[str, Any]], exact: bool
) -> tuple[bool, bool]:
    left, right = args
    if isinstance(left, Literal):
        function, left, right = MIRRORED[function], right, left
    if isinstance(left, Call) and left.function == TO_FLOAT64:
        left = left.args[0]  # the comparison is in float64, a monotone rounding of the values
    if isinstance(left, Call) and left.function in ("min", "max", ELEMENT):
        left = left.args[0]  # a list's min/max/element lies within its values' bounds (or is null)
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
        can_true, can_false = can_true or bool(t), can_false or bool(f)
    if exact:  # the caller knows these bounds hold every value: no NaN hides among them
        return can_true, can_false
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


_SURELY_F32 = 3.4e38  # below float32's largest value: converts without overflow


def _round(value: float | int, domain: str, direction: int) -> float | int:
    """``value`` as the scan would see it in ``domain``, widened outward (``direction``) when
    the statistic itself may be a rounded image of the true extreme."""
    if domain == _EXACT:
        if isinstance(value, float) and abs(value) >= 2**53 and direction and math.isfinite(value):
            return math.nextafter(value, direction * math.inf)  # a float64 of an int64 extreme
        return value
    if domain == _F64:
        return float(value)
    if abs(value) < _SURELY_F32:  # no overflow: no need for the (costly) warning filter
        rounded = np.float32(value)
        if direction and float(rounded) != value:
            rounded = np.nextafter(rounded, np.float32(direction * np.inf))
        return float(rounded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rounded = np.float32(value)
        if direction and float(rounded) != value:
            rounded = np.nextafter(rounded, np.float32(direction * np.inf))
    return float(rounded)


def _interval_answers(function: str, low: Any, high: Any, c: float | int) -> tuple[Any, Any]:
    """(some x in [low, high] makes ``x OP c`` true, some makes it false): for one interval
    (Python numbers, compared exactly) or for arrays of them at once."""
    if function == "less":
        return low < c, high >= c
    if function == "less_equal":
        return low <= c, high > c
    if function == "greater":
        return high > c, low <= c
    if function == "greater_equal":
        return high >= c, low < c
    inside = np.logical_and(low <= c, c <= high)
    single = np.logical_and(low == c, high == c)
    if function == "equal":
        return inside, np.logical_not(single)
    return np.logical_not(single), inside
