"""The Python reference of the ``skyhook`` object class: what runs "in storage" on the local and
memory backends, and the oracle the C++ class is tested against.

Semantics are those of :mod:`skyhook_dask.expr` and :mod:`skyhook_dask.protocol`; elementwise
functions are Arrow compute functions called by name (``pc.call_function``), with Arrow's
implicit casts. Rules the shared documents leave open, fixed here (the C++ class follows them):

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
* Aggregates (protocol.py) evaluate their expression on the selected rows, flatten lists
  (skipping null lists) and call Arrow's ``sum``/``min``/``max`` with default options: an empty
  or all-null input gives null, and ``min``/``max`` skip NaN. ``count`` without an expression is
  the number of rows selected; with one, the number of its non-null (flattened) values.
  Columns are ``"i"`` then ``"i.n"`` for each aggregate ``i``.
* ``stat``: ``nulls`` counts null entries of the column itself (null lists, not null elements);
  ``min``/``max`` are Arrow's ``min_max`` of the flattened values of integer and floating
  columns (NaN skipped unless all NaN) cast to float64, null for bool and other types.
* Type errors (a list predicate, ``any`` of numbers, no Arrow kernel for the operand types)
  raise QueryTypeError naming the expression; a column the object lacks raises
  UnknownColumnError naming the column and the object. Scan results keep the object's schema
  (field nullability and schema metadata).
* Metrics: ``rows_in`` = rows of the object; ``rows_out`` = rows the predicate selected (scan,
  aggregate) or ``rows_in`` (stat). ``bytes_read`` counts the bytes fetched from the object:
  every source is read through a counting range reader, so it covers the footer, the batch
  metadata and the buffers of the needed columns. The footer is read once (memoized between
  the schema probe and the column read). A count-only aggregate reads column 0 (``event_id``)
  to learn the row count. ``elapsed_ns`` spans decoding to the end of the computation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .exceptions import ObjectFormatError, ProtocolError, QueryTypeError, UnknownColumnError
from .expr import (
    ARITHMETIC,
    BOOLEAN,
    COMPARISONS,
    LIST_REDUCTIONS,
    Call,
    Column,
    Expr,
    Literal,
    columns_of,
)
from .objects import RangeFile, open_object
from .protocol import Aggregate, ScanRequest, decode_request, encode_result

__all__ = ["METHODS", "aggregate_table", "evaluate", "execute", "scan_table", "stat_table"]

METHODS = ("scan", "aggregate", "stat")

_ARITY = {
    **dict.fromkeys(COMPARISONS.values(), 2),
    **dict.fromkeys(ARITHMETIC.values(), 2),
    "and_kleene": 2,
    "or_kleene": 2,
    BOOLEAN["not"]: 1,
    "abs": 1,
    "negate": 1,
    **dict.fromkeys(LIST_REDUCTIONS, 1),
}


# --- expression evaluation ---------------------------------------------------------------------


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


def _call(function: str, args: Sequence[pa.Array | pa.Scalar], expr: Expr) -> pa.Array:
    try:
        return pc.call_function(function, list(args))
    except pa.ArrowException as exc:
        types = ", ".join(str(a.type) for a in args)
        raise QueryTypeError(f"cannot evaluate {expr} on ({types}): {exc}") from exc


def _to_float64(value: _Value) -> _Value:
    if isinstance(value, _Jagged):
        values = pc.cast(value.values, pa.float64(), safe=False)
        return _Jagged(value.offsets, values, value.valid, value.text)
    return pc.cast(value, pa.float64(), safe=False)


def _elementwise(function: str, args: list[_Value], expr: Call) -> _Value:
    if function == "divide":
        args = [_to_float64(arg) for arg in args]
    lists = [arg for arg in args if isinstance(arg, _Jagged)]
    if not lists:
        return _call(function, args, expr)  # type: ignore[arg-type]
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
    return _Jagged(offsets, _call(function, operands, expr), valid, str(expr))


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


# --- table-level methods -----------------------------------------------------------------------


def _select_rows(table: pa.Table, predicate: Expr | None) -> pa.Table:
    if predicate is None:
        return table
    mask = evaluate(predicate, table)
    if not pa.types.is_boolean(mask.type):
        kind = "a list per row" if pa.types.is_large_list(mask.type) else f"of type {mask.type}"
        raise QueryTypeError(
            f"predicate {predicate} is {kind}, not a boolean per row"
            + ("; reduce it with any(), all(), count(), ..." if "list" in kind else "")
        )
    return table.filter(mask)  # null counts as false


def scan_table(table: pa.Table, request: ScanRequest) -> pa.Table:
    """Rows where the predicate is true, projected to the request's columns (all when none)."""
    selected = _select_rows(table, request.predicate)
    columns = list(request.columns) or selected.column_names
    for name in columns:
        if name not in selected.column_names:
            raise UnknownColumnError(name, selected.column_names)
    return selected.select(columns)


def aggregate_table(table: pa.Table, request: ScanRequest) -> pa.Table:
    """One row: ``"i"`` and ``"i.n"`` for each aggregate of the request (see protocol.py)."""
    return _aggregate_rows(_select_rows(table, request.predicate), request.aggregates)


def _aggregate_rows(selected: pa.Table, aggregates: Sequence[Aggregate]) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for i, aggregate in enumerate(aggregates):
        if aggregate.expr is None:
            value: pa.Scalar = pa.scalar(selected.num_rows, pa.int64())
            count = selected.num_rows
        else:
            values = evaluate(aggregate.expr, selected)
            if pa.types.is_large_list(values.type) or pa.types.is_list(values.type):
                values = values.flatten()
            count = len(values) - values.null_count
            if aggregate.op == "count":
                value = pa.scalar(count, pa.int64())
            else:
                function = {"sum": "sum", "mean": "sum", "min": "min", "max": "max"}[aggregate.op]
                value = _call(function, [values], aggregate.expr)
        columns[str(i)] = pa.array([value.as_py()], type=value.type)
        columns[f"{i}.n"] = pa.array([count], pa.int64())
    return pa.table(columns)


def stat_table(table: pa.Table) -> pa.Table:
    """One row per column: name, Arrow type, null count, min and max of the (flattened) values."""
    rows: dict[str, list[object]] = {"column": [], "type": [], "nulls": [], "min": [], "max": []}
    for field, column in zip(table.schema, table.columns, strict=True):
        values = column
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            values = pc.list_flatten(column)
        low = high = None
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            extremes = pc.min_max(values)
            low, high = extremes["min"].as_py(), extremes["max"].as_py()
        rows["column"].append(field.name)
        rows["type"].append(str(field.type))
        rows["nulls"].append(column.null_count)
        rows["min"].append(None if low is None else float(low))
        rows["max"].append(None if high is None else float(high))
    schema = pa.schema(
        [
            ("column", pa.string()),
            ("type", pa.string()),
            ("nulls", pa.int64()),
            ("min", pa.float64()),
            ("max", pa.float64()),
        ],
        metadata={"skyhook.rows": str(table.num_rows)},
    )
    return pa.table(rows, schema=schema)


# --- reading an object -------------------------------------------------------------------------


class _CountingSource:
    """Byte ranges of an object, counted; reads made while ``memoize`` is set are kept, so
    reopening the file (after learning the schema) does not fetch its footer again."""

    def __init__(self, read_range: Callable[[int, int], object], size: int) -> None:
        self._read_range, self.size, self.bytes_read = read_range, size, 0
        self.memoize = True
        self._memo: dict[tuple[int, int], object] = {}

    def read(self, offset: int, length: int) -> object:
        cached = self._memo.get((offset, length))
        if cached is not None:
            return cached
        data = self._read_range(offset, length)
        self.bytes_read += len(data)  # type: ignore[arg-type]
        if self.memoize:
            self._memo[(offset, length)] = data
        return data

    def file(self) -> RangeFile:
        return RangeFile(self.read, self.size)  # type: ignore[arg-type]


def _counting_source(source: object) -> _CountingSource:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        return _CountingSource(lambda offset, length: view[offset : offset + length], len(view))
    if isinstance(source, RangeFile):
        size = source.seek(0, 2)

        def read_range_file(offset: int, length: int) -> bytes:
            source.seek(offset)
            return source.read(length)

        return _CountingSource(read_range_file, size)
    if isinstance(source, pa.NativeFile):
        native = source

        def read_native(offset: int, length: int) -> pa.Buffer:
            native.seek(offset)
            return native.read_buffer(length)

        return _CountingSource(read_native, native.size())
    raise TypeError(f"cannot read an object from {type(source).__name__}")


def _read_object(
    counted: _CountingSource, referenced: list[str], read_all: bool, name: str
) -> pa.Table:
    """The ``referenced`` columns of the object (every column if ``read_all``), reading only
    their bytes; a referenced column the object lacks raises UnknownColumnError."""
    where = f"object {name or '<bytes>'}"
    reader = open_object(counted.file(), name)
    names = reader.schema.names
    for column in referenced:
        if column not in names:
            raise UnknownColumnError(column, names, where=where)
    # Column 0 (event_id) stands in when no column is needed: it gives the row count.
    wanted = sorted({names.index(c) for c in referenced}) or [0]
    if not read_all and wanted != list(range(len(names))):
        options = pa.ipc.IpcReadOptions(included_fields=wanted)
        reader = open_object(counted.file(), name, options)
    counted.memoize = False
    try:
        return reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise ObjectFormatError(f"{where} is truncated or corrupt: {exc}") from exc


def _referenced_columns(method: str, request: ScanRequest) -> list[str]:
    """Columns a request names: projection (scan), predicate, aggregate expressions."""
    found = dict.fromkeys(request.columns if method == "scan" else ())
    exprs = [request.predicate]
    if method == "aggregate":
        exprs += [aggregate.expr for aggregate in request.aggregates]
    for expr in exprs:
        found.update(dict.fromkeys(columns_of(expr)))
    return list(found)


def execute(
    method: str,
    source: pa.NativeFile | bytes | RangeFile,
    payload: bytes,
    *,
    object_size: int | None = None,
    name: str = "",
) -> bytes:
    """Run ``skyhook.<method>`` on one object and return the encoded result stream."""
    start = time.perf_counter_ns()
    if method not in METHODS:
        raise ProtocolError(
            f"unknown method {method!r} of class skyhook (object {name or '<bytes>'}); "
            f"known: {', '.join(METHODS)}"
        )
    # stat takes no request; whatever input it is given is ignored.
    request = ScanRequest() if method == "stat" else decode_request(bytes(payload))
    if method == "aggregate" and not request.aggregates:
        raise ProtocolError("an aggregate request must name at least one aggregate")
    counted = _counting_source(source)
    read_all = method == "stat" or (method == "scan" and not request.columns)
    table = _read_object(counted, _referenced_columns(method, request), read_all, name)
    if method == "scan":
        result = scan_table(table, request)
        rows_out = result.num_rows
    elif method == "aggregate":
        selected = _select_rows(table, request.predicate)
        rows_out = selected.num_rows
        result = _aggregate_rows(selected, request.aggregates)
    else:
        result = stat_table(table)
        rows_out = table.num_rows
    metrics = {
        "rows_in": table.num_rows,
        "rows_out": rows_out,
        "bytes_read": counted.bytes_read,
        "object_size": counted.size if object_size is None else object_size,
        "elapsed_ns": time.perf_counter_ns() - start,
    }
    return encode_result(result, metrics, request.compression)
