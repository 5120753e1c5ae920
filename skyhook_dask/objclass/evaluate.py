"""Expression evaluation of the Python reference class (:mod:`skyhook_dask.objclass.scan`):
one value per row of an Arrow table, with the semantics of :mod:`skyhook_dask.query.expr`.

Elementwise functions are Arrow compute functions called by name (``pc.call_function``), with
Arrow's implicit casts. Rules the shared documents leave open, fixed here (the C++ class follows
them):

* A null per-event operand next to a list operand makes that event's *list* null (awkward's
  broadcasting rule), as does a null list in any list operand; such an event's elements are
  dropped before the per-event lengths of list operands are compared.
* ``divide`` casts both operands to float64 with an *unsafe* cast (int64/uint64 beyond 2**53
  round, as Python's ``float(int)`` does), then calls Arrow's ``divide``.
* ``any``/``all``/``count`` need ``list<bool>``; every list reduction needs a list operand;
  ``sum``/``min``/``max`` of a null list are null; a list of nulls sums to 0; integer sums
  wrap modulo 2**64. Lists of lists are refused. A list-valued result of :func:`evaluate` is
  a ``large_list`` array.
* ``min``/``max`` propagate NaN as numpy does (expr.py). Awkward 2.14 does not: its ``ak.min``
  and ``ak.max`` skip NaN (and give -inf/+inf for ``[nan]``). Float ``sum`` adds in float64;
  its rounding may differ from another implementation's in the last bits.
* Type errors (a list predicate, ``any`` of numbers, no Arrow kernel or cast for the operand
  types) raise QueryTypeError naming the expression; a column the table lacks raises
  UnknownColumnError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import QueryTypeError, UnknownColumnError
from ..query.expr import (
    ARITHMETIC,
    BOOLEAN,
    COALESCE,
    COMPARISONS,
    ELEMENT,
    FILTER,
    LIST_REDUCTIONS,
    MATH,
    POWER,
    TO_FLOAT64,
    Call,
    Column,
    Expr,
    Literal,
)

__all__ = ["call_arrow", "evaluate"]

_ARITY = {
    **dict.fromkeys(COMPARISONS.values(), 2),
    **dict.fromkeys(ARITHMETIC.values(), 2),
    "and_kleene": 2,
    "or_kleene": 2,
    BOOLEAN["not"]: 1,
    "abs": 1,
    "negate": 1,
    **dict.fromkeys(MATH.values(), 1),
    "atan2": 2,
    POWER: 2,
    ELEMENT: 2,
    FILTER: 2,
    COALESCE: 2,
    TO_FLOAT64: 1,
    **dict.fromkeys(LIST_REDUCTIONS, 1),
}


@dataclass
class _Jagged:
    """A list column in canonical form: ``values`` holds the elements of the non-null lists only,
    ``offsets`` (int64, from 0) index them, null lists have length 0 and ``valid`` False."""

    offsets: np.ndarray
    values: pa.Array
    valid: np.ndarray | None  # None: no null lists
    text: str  # the expression, for messages

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


_Value = Union[pa.Array, pa.Scalar, _Jagged]  # noqa: UP007


def _jagged_from_arrow(array: pa.Array, text: str) -> _Jagged:
    offsets = np.asarray(array.offsets, dtype=np.int64)  # honours a slice of the array
    lengths = np.diff(offsets)
    valid = None
    if array.null_count:
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        lengths = np.where(valid, lengths, 0)
    if pa.types.is_nested(array.type.value_type):
        raise QueryTypeError(f"column {text} is a list of {array.type.value_type}: not supported")
    values = array.flatten()  # drops the elements behind null lists, honours the slice
    return _Jagged(np.concatenate([[0], np.cumsum(lengths)]), values, valid, text)


def _jagged_to_arrow(jagged: _Jagged) -> pa.Array:
    mask = None if jagged.valid is None else pa.array(~jagged.valid)
    return pa.LargeListArray.from_arrays(pa.array(jagged.offsets), jagged.values, mask=mask)


def _restrict(jagged: _Jagged, valid: np.ndarray) -> _Jagged:
    """Null (and empty) the lists of events where ``valid`` is False."""
    lengths = jagged.lengths
    values = jagged.values
    dropped = ~valid & (lengths > 0)
    if dropped.any():
        values = values.filter(pa.array(np.repeat(valid, lengths)))
        lengths = np.where(valid, lengths, 0)
    return _Jagged(np.concatenate([[0], np.cumsum(lengths)]), values, valid, jagged.text)


class _Evaluator:
    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.columns: dict[str, _Value] = {}

    def eval(self, expr: Expr) -> _Value:
        if isinstance(expr, Column):
            return self.column(expr.name)
        if isinstance(expr, Literal):
            try:
                return pa.scalar(expr.value, pa.type_for_alias(expr.type))
            except (pa.ArrowException, ValueError, OverflowError) as exc:
                raise QueryTypeError(f"literal {expr} is not a valid {expr.type}: {exc}") from exc
        if isinstance(expr, Call):
            arity = _ARITY.get(expr.function)
            if arity is None:
                raise QueryTypeError(f"unknown function {expr.function!r} in {expr}")
            if len(expr.args) != arity:
                raise QueryTypeError(
                    f"{expr.function} takes {arity} argument(s), {len(expr.args)} given in {expr}"
                )
            args = [self.eval(arg) for arg in expr.args]
            if expr.function == ELEMENT:
                return _element(args[0], expr)
            if expr.function == FILTER:
                return _filter(args[0], args[1], expr)
            if expr.function in LIST_REDUCTIONS:
                return _reduce(expr.function, args[0], expr)
            return _elementwise(expr.function, args, expr)
        raise QueryTypeError(f"not an expression node: {expr!r}")

    def column(self, name: str) -> _Value:
        if name not in self.columns:
            if name not in self.table.column_names:
                raise UnknownColumnError(name, self.table.column_names)
            array = self.table.column(name).combine_chunks()
            if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
                self.columns[name] = _jagged_from_arrow(array, name)
            else:
                self.columns[name] = array
        return self.columns[name]


def call_arrow(function: str, args: Sequence[pa.Array | pa.Scalar], expr: Expr) -> pa.Array:
    """Arrow's compute function ``function`` on ``args``; QueryTypeError naming ``expr`` when
    Arrow has no kernel for their types."""
    try:
        return pc.call_function(function, list(args))
    except pa.ArrowException as exc:
        types = ", ".join(str(a.type) for a in args)
        raise QueryTypeError(f"cannot evaluate {expr} on ({types}): {exc}") from exc


def _to_float64(value: _Value, operand: Expr, expr: Call) -> _Value:
    """``value`` (the operand ``operand`` of ``expr``) cast to float64, unsafely: integers
    beyond 2**53 round. QueryTypeError when Arrow cannot cast its type (a struct, a string)."""
    elements = value.values if isinstance(value, _Jagged) else value
    try:
        as_float = pc.cast(elements, pa.float64(), safe=False)
    except pa.ArrowException as exc:
        raise QueryTypeError(
            f"cannot evaluate {expr}: its operand {operand} of type {elements.type} cannot be "
            f"cast to double: {exc}"
        ) from exc
    if isinstance(value, _Jagged):
        return _Jagged(value.offsets, as_float, value.valid, value.text)
    return as_float


def _elementwise(function: str, args: list[_Value], expr: Call) -> _Value:
    if function in ("divide", TO_FLOAT64):
        args = [_to_float64(a, operand, expr) for a, operand in zip(args, expr.args, strict=True)]
        if function == TO_FLOAT64:
            return args[0]
    lists = [arg for arg in args if isinstance(arg, _Jagged)]
    if not lists:
        return call_arrow(function, args, expr)  # type: ignore[arg-type]
    valid = _common_validity(args)
    if valid is not None:
        lists = [_restrict(jagged, valid) for jagged in lists]
    offsets = lists[0].offsets
    for other in lists[1:]:
        if not np.array_equal(other.offsets, offsets):
            event = int(np.flatnonzero(other.lengths != lists[0].lengths)[0])
            raise QueryTypeError(
                f"{expr}: lists {lists[0].text} and {other.text} differ in length in row "
                f"{event} ({lists[0].lengths[event]} vs {other.lengths[event]})"
            )
    parents: pa.Array | None = None
    operands: list[pa.Array | pa.Scalar] = []
    restricted = iter(lists)
    for arg in args:
        if isinstance(arg, _Jagged):
            operands.append(next(restricted).values)
        elif isinstance(arg, pa.Scalar):
            operands.append(arg)
        else:  # a per-event value: repeat it for each element of its event's list
            if parents is None:
                parents = pa.array(np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)))
            operands.append(arg.take(parents))
    return _Jagged(offsets, call_arrow(function, operands, expr), valid, str(expr))


def _element(value: _Value, expr: Call) -> pa.Array:
    """``x[i]`` per event: null where the list is null or has no element ``i``."""
    index = expr.args[1]
    if not isinstance(value, _Jagged):
        raise QueryTypeError(f"{expr}: {expr.args[0]} is not a list (jagged) value")
    if not (isinstance(index, Literal) and index.type == "int64"):
        raise QueryTypeError(f"{expr}: the index must be an int64 literal")
    lengths = value.lengths
    position = np.full(len(lengths), int(index.value), dtype=np.int64)
    if index.value < 0:
        position += lengths
    present = (position >= 0) & (position < lengths)
    if value.valid is not None:
        present &= value.valid
    where = np.where(present, value.offsets[:-1] + position, 0)
    return value.values.take(pa.array(where, mask=~present))


def _filter(value: _Value, mask: _Value, expr: Call) -> _Jagged:
    """``x[mask]`` per event: the elements where the mask is true (null counts as false); an
    event whose list or mask is null stays null."""
    if not isinstance(value, _Jagged) or not isinstance(mask, _Jagged):
        raise QueryTypeError(f"{expr}: the values and the mask must both be lists per event")
    if not pa.types.is_boolean(mask.values.type):
        raise QueryTypeError(f"{expr}: the mask {mask.text} is not a list of booleans")
    valid = _common_validity([value, mask])
    if valid is not None:
        value, mask = _restrict(value, valid), _restrict(mask, valid)
    if not np.array_equal(value.offsets, mask.offsets):
        event = int(np.flatnonzero(value.lengths != mask.lengths)[0])
        raise QueryTypeError(
            f"{expr}: the mask {mask.text} and the values {value.text} differ in length in row "
            f"{event} ({mask.lengths[event]} vs {value.lengths[event]}); a mask must come from "
            "the same collection as the values"
        )
    keep = mask.values.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    kept = np.concatenate([[0], np.cumsum(keep)])[value.offsets]
    return _Jagged(kept - kept[0], value.values.filter(pa.array(keep)), valid, str(expr))


def _common_validity(args: list[_Value]) -> np.ndarray | None:
    valid: np.ndarray | None = None
    for arg in args:
        if isinstance(arg, _Jagged):
            mask = arg.valid
        elif isinstance(arg, pa.Array) and arg.null_count:
            mask = arg.is_valid().to_numpy(zero_copy_only=False)
        else:
            continue
        if mask is not None:
            valid = mask if valid is None else valid & mask
    return valid


def _segment_counts(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Number of True flags in each list (exact, handles empty lists)."""
    cumulative = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return cumulative[offsets[1:]] - cumulative[offsets[:-1]]


def _segment_reduce(ufunc: np.ufunc, values: np.ndarray, offsets: np.ndarray, empty: object):
    """``ufunc.reduce`` over each list; ``empty`` for empty lists (reduceat cannot do those)."""
    lengths = np.diff(offsets)
    out = np.full(len(lengths), empty, dtype=values.dtype)
    nonempty = lengths > 0
    if nonempty.any():
        # Non-empty lists are contiguous in canonical form, so each starts where the last ends.
        with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as intended
            out[nonempty] = ufunc.reduceat(values, offsets[:-1][nonempty])
    return out


def _reduce(function: str, arg: _Value, expr: Call) -> pa.Array:
    if not isinstance(arg, _Jagged):
        raise QueryTypeError(f"{function}() needs a list (jagged) operand, not {expr.args[0]}")
    values, offsets = arg.values, arg.offsets
    vtype = values.type
    null: np.ndarray | None = None
    if function in ("any", "all", "count"):
        if not pa.types.is_boolean(vtype):
            raise QueryTypeError(f"{function}() needs a list of booleans, {arg.text} is {vtype}")
        if function == "all":
            falses = ~values.fill_null(True).to_numpy(zero_copy_only=False)
            result = pa.array(_segment_counts(falses, offsets) == 0)
        else:
            counts = _segment_counts(
                values.fill_null(False).to_numpy(zero_copy_only=False), offsets
            )
            result = pa.array(counts if function == "count" else counts > 0)
    elif function == "len":
        result = pa.array(np.diff(offsets))
    elif function == "sum":
        result = _list_sum(values, offsets, arg.text)
    else:
        result, null = _list_extreme(function, values, offsets, arg.text)
    if arg.valid is not None:
        null = ~arg.valid if null is None else null | ~arg.valid
    if null is not None and null.any():
        result = pa.array(result.to_numpy(zero_copy_only=False), type=result.type, mask=null)
    return result


def _list_sum(values: pa.Array, offsets: np.ndarray, text: str) -> pa.Array:
    vtype = values.type
    if pa.types.is_floating(vtype):
        as_float = values.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        return pa.array(_segment_reduce(np.add, as_float, offsets, 0.0))
    if pa.types.is_unsigned_integer(vtype):
        target = pa.uint64()
    elif pa.types.is_integer(vtype) or pa.types.is_boolean(vtype):
        target = pa.int64()
    else:
        raise QueryTypeError(f"sum() needs a list of numbers, {text} is list<{vtype}>")
    # Integer prefix sums wrap modulo 2**64, so their differences are the exact (wrapped) sums.
    ints = values.cast(target).fill_null(0).to_numpy(zero_copy_only=False)
    target = ints.dtype
    cumulative = np.concatenate([np.zeros(1, target), np.cumsum(ints, dtype=target)])
    return pa.array(cumulative[offsets[1:]] - cumulative[offsets[:-1]])


def _list_extreme(
    function: str, values: pa.Array, offsets: np.ndarray, text: str
) -> tuple[pa.Array, np.ndarray]:
    vtype = values.type
    is_min = function == "min"
    if pa.types.is_floating(vtype):
        identity: object = np.inf if is_min else -np.inf
    elif pa.types.is_integer(vtype):
        info = np.iinfo(vtype.to_pandas_dtype())
        identity = info.max if is_min else info.min
    elif pa.types.is_boolean(vtype):
        identity = is_min
    else:
        raise QueryTypeError(f"{function}() needs a list of numbers, {text} is list<{vtype}>")
    present = values.is_valid().to_numpy(zero_copy_only=False)
    filled = values.fill_null(pa.scalar(identity, vtype)).to_numpy(zero_copy_only=False)
    ufunc = np.minimum if is_min else np.maximum  # both propagate NaN
    reduced = _segment_reduce(ufunc, filled, offsets, identity)
    return pa.array(reduced, type=vtype), _segment_counts(present, offsets) == 0


def evaluate(expr: Expr, table: pa.Table) -> pa.Array:
    """Evaluate an expression on every row of ``table`` (one value per row)."""
    result = _Evaluator(table).eval(expr)
    if isinstance(result, _Jagged):
        return _jagged_to_arrow(result)
    if isinstance(result, pa.Scalar):
        return pa.repeat(result, table.num_rows)
    return result
