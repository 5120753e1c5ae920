"""The Python reference of the ``skyhook`` object class: what runs "in storage" on the local and
memory backends, and the oracle the C++ class is tested against.

Semantics are those of :mod:`skyhook_dask.query.expr` and
:mod:`skyhook_dask.formats.protocol`; expressions are evaluated by
:mod:`skyhook_dask.objclass.evaluate`, whose docstring lists the rules of evaluation the
shared documents leave open. The rules fixed here (the C++ class follows them too):

* Aggregates (protocol.py) evaluate their expression on the selected rows, flatten lists
  (skipping null lists) and call Arrow's ``sum``/``min``/``max`` with default options: an empty
  or all-null input gives null, and ``min``/``max`` skip NaN. ``count`` without an expression is
  the number of rows selected; with one, the number of its non-null (flattened) values.
  Columns are ``"i"`` then ``"i.n"`` for each aggregate ``i``.
* ``stat``: ``nulls`` counts null entries of the column itself (null lists, not null elements);
  ``min``/``max`` are Arrow's ``min_max`` of the flattened values of integer and floating
  columns (NaN skipped unless all NaN) cast to float64, null for bool and other types.
* Type errors (see :mod:`~skyhook_dask.objclass.evaluate`) raise QueryTypeError naming the
  expression; a column the object lacks raises UnknownColumnError naming the column and the
  object. Scan results keep the object's schema (field nullability and schema metadata).
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

import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import ObjectFormatError, ProtocolError, QueryTypeError, UnknownColumnError
from ..formats.objects import RangeFile, open_object
from ..formats.protocol import Aggregate, ScanRequest, decode_request, encode_result
from ..query.expr import Expr, columns_of
from .evaluate import call_arrow, evaluate
from .histogram import hist_table

__all__ = ["METHODS", "aggregate_table", "evaluate", "execute", "scan_table", "stat_table"]

METHODS = ("scan", "aggregate", "hist", "stat")


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
    """Rows where the predicate is true, projected to the request's columns (all when none);
    derived columns are computed on those rows."""
    selected = _select_rows(table, request.predicate)
    columns = list(request.columns) or selected.column_names
    derived = dict(request.derived)
    for name in columns:
        if name not in derived and name not in selected.column_names:
            raise UnknownColumnError(name, selected.column_names)
    if not derived:
        return selected.select(columns)
    fields, arrays = [], []
    for name in columns:
        if name in derived:
            values = evaluate(derived[name], selected)
            fields.append(pa.field(name, values.type))
        else:
            values = selected.column(name)
            fields.append(selected.schema.field(name))
        arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, selected.schema.metadata))


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
                value = call_arrow(function, [values], aggregate.expr)
        columns[str(i)] = pa.array([value.as_py()], type=value.type)
        columns[f"{i}.n"] = pa.array([count], pa.int64())
    return pa.table(columns)


def _is_wide_float(kind: pa.DataType) -> bool:
    return pa.types.is_floating(kind) and not pa.types.is_float16(kind)


def stat_table(table: pa.Table) -> pa.Table:
    """One row per column: name, Arrow type, null count, min and max of the (flattened) values."""
    rows: dict[str, list[object]] = {"column": [], "type": [], "nulls": [], "min": [], "max": []}
    for field, column in zip(table.schema, table.columns, strict=True):
        values = column
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            values = pc.list_flatten(column)
        low = high = None
        # no min_max kernel for half floats (the C++ class skips them too)
        if pa.types.is_integer(values.type) or _is_wide_float(values.type):
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
    if len(set(names)) != len(names):
        raise ObjectFormatError(f"{where} is corrupt: its schema repeats a column name")
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
        table = reader.read_all()
        # read_all() trusts the offsets and lengths it finds; on corrupt ones the compute
        # kernels would read out of bounds (Arrow aborts the process). Check them first.
        table.validate(full=True)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise ObjectFormatError(f"{where} is truncated or corrupt: {exc}") from exc
    return table


def _referenced_columns(method: str, request: ScanRequest) -> list[str]:
    """Columns a request reads: projection (scan; derived ones: what their expressions read),
    predicate, aggregate expressions."""
    derived = dict(request.derived)
    projected = [c for c in request.columns if c not in derived] if method == "scan" else []
    found = dict.fromkeys(projected)
    exprs = [request.predicate]
    if method == "scan":
        exprs += list(derived.values())
    if method == "aggregate":
        exprs += [aggregate.expr for aggregate in request.aggregates]
    if method == "hist" and request.histogram is not None:
        exprs += [axis.value for axis in request.histogram.axes] + [request.histogram.weight]
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
    if method == "hist" and request.histogram is None:
        raise ProtocolError("a hist request must carry a histogram (request version 3)")
    counted = _counting_source(source)
    read_all = method == "stat" or (method == "scan" and not request.columns)
    table = _read_object(counted, _referenced_columns(method, request), read_all, name)
    if method == "scan":
        result = scan_table(table, request)
        rows_out = result.num_rows
    elif method in ("aggregate", "hist"):
        selected = _select_rows(table, request.predicate)
        rows_out = selected.num_rows
        if request.histogram is not None and method == "hist":
            result = hist_table(selected, request.histogram)
        else:
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
