"""Skipping many objects at once: :func:`may_match` and :func:`must_match` of
:mod:`skyhook_dask.query.skipping`, answered for every object of a statistics table (a row per
object, columns ``{column}/nulls``, ``{column}/min``, ``{column}/max``) with array operations
instead of a Python call per object.

Every answer equals the per-object one (tests compare them on random statistics). Bounds are
compared in float64, which is exact while every integer bound lies within +-2**53; a table
holding a larger integer bound returns None, and the caller asks object by object.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

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
from .skipping import _EXACT, _F32, _F64, _interval_answers, _round

__all__ = ["may_match_all", "must_match_all"]

_EXACT_LIMIT = 2.0**53
Answers = tuple[np.ndarray, np.ndarray]  # (can be true, can be false) per object


class _Inexact(Exception):
    """An integer bound beyond 2**53: float64 would not compare it exactly."""


def may_match_all(expr: Expr | None, table: pa.Table) -> np.ndarray | None:
    """Per object (row of ``table``): can any row satisfy ``expr``? None: ask per object."""
    if expr is None:
        return np.ones(table.num_rows, dtype=bool)
    try:
        return _Table(table).truth(expr, exact=False)[0]
    except _Inexact:
        return None


def must_match_all(expr: Expr | None, table: pa.Table) -> np.ndarray | None:
    """Per object: must every row satisfy ``expr``? None: ask per object."""
    if expr is None:
        return np.ones(table.num_rows, dtype=bool)
    try:
        statistics = _Table(table)
        return statistics.never_null(expr) & ~statistics.truth(expr, exact=True)[1]
    except _Inexact:
        return None


class _Table:
    def __init__(self, table: pa.Table) -> None:
        self.table, self.n = table, table.num_rows
        self.names = set(table.column_names)

    def _all(self, value: bool) -> np.ndarray:
        return np.full(self.n, value, dtype=bool)

    def nulls_zero(self, name: str) -> np.ndarray:
        key = f"{name}/nulls"
        if key not in self.names:
            return self._all(False)
        column = self.table.column(key)
        return np.asarray(column.fill_null(-1).to_numpy(zero_copy_only=False) == 0)

    def bounds(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None:
        """(low, high as float64, valid, bounds are floats) of a column; None if unknown."""
        if f"{name}/min" not in self.names:
            return None
        low_column, high_column = self.table.column(f"{name}/min"), self.table.column(f"{name}/max")
        valid = ~np.asarray(low_column.is_null().to_numpy(zero_copy_only=False))
        valid &= ~np.asarray(high_column.is_null().to_numpy(zero_copy_only=False))
        floats = pa.types.is_floating(low_column.type)
        if pa.types.is_boolean(low_column.type):  # False < True, as 0 < 1
            low_column, high_column = low_column.cast(pa.int64()), high_column.cast(pa.int64())
        zero = 0.0 if floats else 0
        low = np.asarray(low_column.fill_null(zero).to_numpy(zero_copy_only=False))
        high = np.asarray(high_column.fill_null(zero).to_numpy(zero_copy_only=False))
        if not floats:
            if valid.any() and max(np.abs(low[valid]).max(), np.abs(high[valid]).max()) >= (
                _EXACT_LIMIT
            ):
                raise _Inexact
            low, high = low.astype(np.float64), high.astype(np.float64)
        valid &= low <= high  # the per-object rule: bounds that do not cross (no NaN here)
        return low, high, valid, floats

    def never_null(self, expr: Expr) -> np.ndarray:
        if isinstance(expr, Literal):
            return self._all(expr.value is not None)
        if isinstance(expr, Column):
            return self.nulls_zero(expr.name)
        if not isinstance(expr, Call):
            return self._all(False)
        if expr.function in COMPARISON_FUNCTIONS:
            left, right = expr.args
            if not (isinstance(left, Column | Literal) and isinstance(right, Column | Literal)):
                return self._all(False)
            return self.never_null(left) & self.never_null(right)
        if expr.function in (BOOLEAN["and"], BOOLEAN["or"], BOOLEAN["not"]):
            result = self._all(True)
            for arg in expr.args:
                result &= self.never_null(arg)
            return result
        return self._all(False)

    def truth(self, expr: Expr, exact: bool) -> Answers:
        if isinstance(expr, Literal) and isinstance(expr.value, bool):
            return self._all(expr.value), self._all(not expr.value)
        if not isinstance(expr, Call):
            return self._all(True), self._all(True)
        fn, args = expr.function, expr.args
        if fn == BOOLEAN["not"]:
            can_true, can_false = self.truth(args[0], exact)
            return can_false, can_true
        if fn in (BOOLEAN["and"], BOOLEAN["or"]):
            (at, af), (bt, bf) = self.truth(args[0], exact), self.truth(args[1], exact)
            if fn == BOOLEAN["and"]:
                return at & bt, af | bf
            return at | bt, af & bf
        if fn == "any":
            return self.truth(args[0], False)[0], self._all(True)
        if fn == "all":
            return self._all(True), self.truth(args[0], False)[1]
        if fn in COMPARISON_FUNCTIONS:
            return self.compare(fn, args, exact)
        if fn == COALESCE and args[1] == Literal(False, "bool"):
            return self.truth(args[0], exact)[0], self._all(True)
        return self._all(True), self._all(True)

    def compare(self, function: str, args: tuple[Expr, ...], exact: bool) -> Answers:
        left, right = args
        if isinstance(left, Literal):
            function, left, right = MIRRORED[function], right, left
        if isinstance(left, Call) and left.function == TO_FLOAT64:
            left = left.args[0]
        if isinstance(left, Call) and left.function in ("min", "max", ELEMENT):
            left = left.args[0]
        unknown = self._all(True), self._all(True)
        if not isinstance(left, Column) or not isinstance(right, Literal):
            return unknown
        found = self.bounds(left.name)
        value = right.value
        if (
            found is None
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and math.isnan(value))
        ):
            return unknown
        if isinstance(value, int) and abs(value) >= _EXACT_LIMIT:
            raise _Inexact  # rounding it to float64 could move it across a bound
        low_bound, high_bound, valid, floats = found
        if right.type == "float":
            value, domains = _round(value, _F32, 0), (_F32, _F64)
        elif right.type == "double":
            domains = (_F64,)
        else:
            domains = (_EXACT, _F32, _F64)
        can_true, can_false = self._all(False), self._all(False)
        for domain in domains:
            low = _round_all(low_bound, domain, -1, floats)
            high = _round_all(high_bound, domain, 1, floats)
            c = float(value if domain == _EXACT else _round(value, domain, 0))
            t, f = _interval_answers(function, low, high, c)
            can_true, can_false = can_true | t, can_false | f
        if not exact:
            can_false = can_false | (function != "not_equal")
        # where the bounds are unknown, anything may be
        return can_true | ~valid, can_false | ~valid


def _round_all(values: np.ndarray, domain: str, direction: int, floats: bool) -> np.ndarray:
    """:func:`skipping._round` of every value (float64 holding floats, or exact integers)."""
    if domain == _F64:
        return values
    if domain == _EXACT:
        if not floats:
            return values
        big = (np.abs(values) >= _EXACT_LIMIT) & np.isfinite(values)
        return np.where(big, np.nextafter(values, direction * np.inf), values)
    with np.errstate(over="ignore"):  # beyond float32: infinity, as one value converts
        rounded = values.astype(np.float32)
        moved = rounded.astype(np.float64) != values
        outward = np.nextafter(rounded, np.float32(direction * np.inf))
    return np.where(moved, outward, rounded).astype(np.float64)
