"""The wire format between clients and the ``skyhook`` object class (Python and C++ alike).

Request (method ``scan``, ``aggregate`` or ``hist``; ``stat`` takes an empty input),
little-endian::

    magic    4 bytes  b"SKYQ"
    version  u8       the lowest that carries the request: 1; 2 with derived columns; 3 with
                      a histogram
    compress u8       result body compression: 0 none, 1 lz4_frame, 2 zstd
    flags    u16      0 (reserved)
    columns  u32 n, then n x str          projection; n == 0 means every column
    predicate u8 present, then node       rows where it is true are kept (null counts as false)
    aggregates u32 n, then n x (u8 op, u8 present, node)   op: 1 count 2 sum 3 min 4 max 5 mean
    derived  u32 n, then n x (str name, node)   version 2 and 3: columns computed by the scan
                                                (version 2: n >= 1)
    histogram version 3 only: u8 axes (1 to 3), per axis: node value, u8 kind, then kind 1
             (regular): u32 bins, f64 low, f64 high; kind 2 (variable): u32 n, n x f64 edges;
             then u8 weighted, and the weight node if it is 1 (see histogram.py for the limits)

    A derived name is one of the projected ``columns`` (each exactly once; the projection is
    not empty); the scan computes it from the selected rows instead of reading it, so it
    shadows a stored column of that name. Names are unique.

    str      u16 length, then UTF-8 bytes (length <= 4096)
    node     u8 tag:
             1 column   str name
             2 literal  u8 type code, then the value: 1 byte for bool, 8 bytes for every
                        integer type (two's complement int64 / uint64), 4 for float, 8 for double
             3 call     str function, u8 argc (<= 8), argc x node
    Limits: nesting depth <= 64, nodes <= 4096, the whole input consumed exactly.

Result: one Arrow IPC *stream*. Its schema metadata carries the scan's instrumentation:
``skyhook.rows_in``, ``skyhook.rows_out``, ``skyhook.bytes_read`` (object bytes the scan read),
``skyhook.object_size`` and ``skyhook.elapsed_ns``.

* ``scan``: the projected columns of the selected rows, in request order (all when none given);
  a derived column is the value of its expression (a list value: ``large_list``), nullable.
* ``aggregate``: one row; for aggregate ``i`` a column ``"i"`` (count: int64 rows selected,
  sum/mean: Arrow ``sum`` of the values, min/max: Arrow ``min``/``max``; list columns are
  flattened first) and a column ``"i.n"``: how many non-null values went in (int64). The client
  combines objects: counts and sums add up, min/max of mins/maxes, mean = sum of sums / sum of n.
* ``hist``: the histogram of the selected rows (an axis's value per row, or per element of a
  list value; null values and rows with any null value are not filled), one row per cell
  (histogram.py): ``count`` (int64), or when weighted ``sumw`` and ``sumw2`` (float64).
* ``stat``: one row per column: ``column`` (string), ``type`` (string, Arrow's spelling),
  ``nulls`` (int64), ``min`` and ``max`` (float64, of the flattened values of list columns;
  null where not numeric or empty); metadata ``skyhook.rows``.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

import pyarrow as pa

from ..exceptions import ProtocolError
from ..query.expr import (
    ALL_FUNCTIONS,
    ELEMENT,
    LITERAL_TYPES,
    MAX_DEPTH,
    Call,
    Column,
    Expr,
    Literal,
)
from .histogram import Axis, Histogram

MAGIC = b"SKYQ"
VERSION = 3  # the newest; a request is written in the lowest version that carries it
CLASS_NAME = "skyhook"
COMPRESSION_CODES = {None: 0, "lz4": 1, "zstd": 2}
COMPRESSION_NAMES = {v: k for k, v in COMPRESSION_CODES.items()}
AGGREGATE_OPS = {"count": 1, "sum": 2, "min": 3, "max": 4, "mean": 5}
AGGREGATE_NAMES = {v: k for k, v in AGGREGATE_OPS.items()}
LITERAL_CODES = {name: i + 1 for i, name in enumerate(LITERAL_TYPES)}
LITERAL_NAMES = {v: k for k, v in LITERAL_CODES.items()}

MAX_STRING = 4096
MAX_NODES = 4096
MAX_ARGS = 8

TAG_COLUMN, TAG_LITERAL, TAG_CALL = 1, 2, 3

METRIC_KEYS = ("rows_in", "rows_out", "bytes_read", "object_size", "elapsed_ns")


@dataclass(frozen=True)
class Aggregate:
    op: str  # count | sum | min | max | mean
    expr: Expr | None = None  # None only for count (rows selected)

    def __post_init__(self) -> None:
        if self.op not in AGGREGATE_OPS:
            raise ValueError(f"unknown aggregate {self.op!r}; known: {', '.join(AGGREGATE_OPS)}")
        if self.expr is None and self.op != "count":
            raise ValueError(f"aggregate {self.op!r} needs a column or expression")


@dataclass(frozen=True)
class ScanRequest:
    columns: tuple[str, ...] = ()
    predicate: Expr | None = None
    aggregates: tuple[Aggregate, ...] = ()
    compression: str | None = None
    derived: tuple[tuple[str, Expr], ...] = ()  # (name, expression): columns the scan computes
    histogram: Histogram | None = None  # what the hist method fills

    def encode(self) -> bytes:
        return encode_request(self)


@dataclass
class ScanMetrics:
    """What one in-storage call did; summed over objects by the layers above."""

    rows_in: int = 0
    rows_out: int = 0
    bytes_read: int = 0
    object_size: int = 0
    elapsed_ns: int = 0
    bytes_returned: int = 0
    calls: int = field(default=0)

    def add(self, other: ScanMetrics) -> None:
        for key in (*METRIC_KEYS, "bytes_returned", "calls"):
            setattr(self, key, getattr(self, key) + getattr(other, key))


# --- encoding ----------------------------------------------------------------------------------


def _str(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > MAX_STRING:
        raise ProtocolError(f"string of {len(raw)} bytes exceeds the {MAX_STRING}-byte limit")
    return struct.pack("<H", len(raw)) + raw


def _literal(lit: Literal) -> bytes:
    if lit.type not in LITERAL_CODES:
        raise ProtocolError(f"literal type {lit.type!r} cannot be sent")
    code = struct.pack("<B", LITERAL_CODES[lit.type])
    if lit.type == "bool":
        return code + struct.pack("<B", bool(lit.value))
    if lit.type == "float":
        return code + struct.pack("<f", float(lit.value))
    if lit.type == "double":
        return code + struct.pack("<d", float(lit.value))
    fmt = "<Q" if lit.type.startswith("uint") else "<q"
    return code + struct.pack(fmt, int(lit.value))


def _check_element(call: Call) -> None:
    """``list_element`` takes a value and an int64 literal index (the C++ decoder checks too)."""
    if call.function == ELEMENT and (
        len(call.args) != 2 or not isinstance(call.args[1], Literal) or call.args[1].type != "int64"
    ):
        raise ProtocolError(f"{ELEMENT} takes a value and an int64 literal index")


def _node(expr: Expr, depth: int = 0) -> bytes:
    if depth >= MAX_DEPTH:
        raise ProtocolError(f"expression nests deeper than {MAX_DEPTH}")
    if isinstance(expr, Column):
        return bytes([TAG_COLUMN]) + _str(expr.name)
    if isinstance(expr, Literal):
        return bytes([TAG_LITERAL]) + _literal(expr)
    if isinstance(expr, Call):
        if expr.function not in ALL_FUNCTIONS:
            raise ProtocolError(f"unknown function {expr.function!r}")
        _check_element(expr)
        if len(expr.args) > MAX_ARGS:
            raise ProtocolError(f"{expr.function} has more than {MAX_ARGS} arguments")
        body = b"".join(_node(arg, depth + 1) for arg in expr.args)
        return bytes([TAG_CALL]) + _str(expr.function) + bytes([len(expr.args)]) + body
    raise ProtocolError(f"not an expression node: {expr!r}")


def _count_nodes(expr: Expr | None) -> int:
    if expr is None:
        return 0
    return 1 + sum(_count_nodes(arg) for arg in expr.args) if isinstance(expr, Call) else 1


def encode_request(req: ScanRequest) -> bytes:
    if req.compression not in COMPRESSION_CODES:
        raise ProtocolError(f"unknown result compression {req.compression!r}")
    # The decoders (here and in the C++ class) refuse more nodes than this: refuse them first.
    nodes = _count_nodes(req.predicate) + sum(_count_nodes(a.expr) for a in req.aggregates)
    nodes += sum(_count_nodes(expr) for _, expr in req.derived)
    if req.histogram is not None:
        req.histogram.check()
        nodes += sum(_count_nodes(a.value) for a in req.histogram.axes)
        nodes += _count_nodes(req.histogram.weight)
    if nodes > MAX_NODES:
        raise ProtocolError(f"expression has more than {MAX_NODES} nodes ({nodes})")
    _check_derived(req.columns, [name for name, _ in req.derived])
    version = 3 if req.histogram is not None else 2 if req.derived else 1
    out = [MAGIC, struct.pack("<BBH", version, COMPRESSION_CODES[req.compression], 0)]
    out.append(struct.pack("<I", len(req.columns)))
    out.extend(_str(c) for c in req.columns)
    out.append(b"\x01" + _node(req.predicate) if req.predicate is not None else b"\x00")
    out.append(struct.pack("<I", len(req.aggregates)))
    for agg in req.aggregates:
        out.append(struct.pack("<B", AGGREGATE_OPS[agg.op]))
        out.append(b"\x01" + _node(agg.expr) if agg.expr is not None else b"\x00")
    if version >= 2:
        out.append(struct.pack("<I", len(req.derived)))
        out.extend(_str(name) + _node(expr) for name, expr in req.derived)
    if req.histogram is not None:
        out.append(_histogram(req.histogram))
    return b"".join(out)


def _histogram(histogram: Histogram) -> bytes:
    out = [struct.pack("<B", len(histogram.axes))]
    for axis in histogram.axes:
        out.append(_node(axis.value))
        if axis.edges:
            out.append(struct.pack(f"<BI{len(axis.edges)}d", 2, len(axis.edges), *axis.edges))
        else:
            out.append(struct.pack("<BIdd", 1, axis.bins, axis.low, axis.high))
    weight = histogram.weight
    out.append(b"\x01" + _node(weight) if weight is not None else b"\x00")
    return b"".join(out)


def _check_derived(columns: tuple[str, ...], names: list[str]) -> None:
    """Each derived name unique and projected exactly once (the C++ decoder checks the same)."""
    for name in names:
        if names.count(name) > 1:
            raise ProtocolError(f"derived column {name!r} is defined twice")
        if columns.count(name) != 1:
            raise ProtocolError(f"derived column {name!r} must be projected exactly once")


# --- decoding (the Python reference class uses this; the C++ class mirrors it) ----------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.nodes = memoryview(data), 0, 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ProtocolError(f"request truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> int | float:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]  # type: ignore[no-any-return]

    def count(self, min_item_bytes: int) -> int:
        """A u32 item count; one that the remaining bytes cannot hold is malformed."""
        n = int(self.unpack("<I"))
        if n * min_item_bytes > len(self.data) - self.pos:
            raise ProtocolError(f"count {n} at byte {self.pos - 4} exceeds the request's length")
        return n

    def string(self) -> str:
        n = int(self.unpack("<H"))
        if n > MAX_STRING:
            raise ProtocolError(f"string length {n} exceeds {MAX_STRING} at byte {self.pos}")
        try:
            return bytes(self.take(n)).decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"invalid UTF-8 at byte {self.pos}") from exc

    def node(self, depth: int = 0) -> Expr:
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"expression nests deeper than {MAX_DEPTH}")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ProtocolError(f"expression has more than {MAX_NODES} nodes")
        tag = int(self.unpack("<B"))
        if tag == TAG_COLUMN:
            return Column(self.string())
        if tag == TAG_LITERAL:
            code = int(self.unpack("<B"))
            type_ = LITERAL_NAMES.get(code)
            if type_ is None:
                raise ProtocolError(f"unknown literal type code {code} at byte {self.pos - 1}")
            if type_ == "bool":
                return Literal(bool(self.unpack("<B")), type_)
            if type_ == "float":
                return Literal(float(self.unpack("<f")), type_)
            if type_ == "double":
                return Literal(float(self.unpack("<d")), type_)
            return Literal(int(self.unpack("<Q" if type_.startswith("uint") else "<q")), type_)
        if tag == TAG_CALL:
            function = self.string()
            if function not in ALL_FUNCTIONS:
                raise ProtocolError(f"unknown function {function!r}")
            argc = int(self.unpack("<B"))
            if argc > MAX_ARGS:
                raise ProtocolError(f"{function} has {argc} arguments (max {MAX_ARGS})")
            call = Call(function, tuple(self.node(depth + 1) for _ in range(argc)))
            _check_element(call)
            return call
        raise ProtocolError(f"unknown node tag {tag} at byte {self.pos - 1}")


@functools.lru_cache(maxsize=64)
def decode_request(data: bytes) -> ScanRequest:
    """The request ``data`` encodes; the objects of one query share one request, decoded once
    (a request is immutable)."""
    r = _Reader(data)
    if bytes(r.take(4)) != MAGIC:
        raise ProtocolError("not a skyhook request (bad magic)")
    version, compress, flags = struct.unpack("<BBH", r.take(4))
    if not 1 <= version <= VERSION:
        supported = f"this side: 1 to {VERSION}"
        raise ProtocolError(f"request version {version} is not supported ({supported})")
    if compress not in COMPRESSION_NAMES or flags != 0:
        raise ProtocolError(f"bad compression code {compress} or flags {flags}")
    columns = tuple(r.string() for _ in range(r.count(min_item_bytes=2)))
    predicate = r.node() if int(r.unpack("<B")) else None
    aggregates = []
    for _ in range(r.count(min_item_bytes=2)):
        op = AGGREGATE_NAMES.get(int(r.unpack("<B")))
        if op is None:
            raise ProtocolError(f"unknown aggregate op at byte {r.pos - 1}")
        expr = r.node() if int(r.unpack("<B")) else None
        try:
            aggregates.append(Aggregate(op, expr))
        except ValueError as exc:
            raise ProtocolError(str(exc)) from exc
    derived = []
    if version >= 2:
        for _ in range(r.count(min_item_bytes=3)):
            derived.append((r.string(), r.node()))
        if version == 2 and not derived:
            raise ProtocolError("a version 2 request derives at least one column")
        _check_derived(columns, [name for name, _ in derived])
    histogram = _read_histogram(r) if version == 3 else None
    if r.pos != len(r.data):
        raise ProtocolError(f"{len(r.data) - r.pos} trailing bytes after the request")
    compression = COMPRESSION_NAMES[compress]
    aggregated = tuple(aggregates)
    return ScanRequest(columns, predicate, aggregated, compression, tuple(derived), histogram)


def _read_histogram(r: _Reader) -> Histogram:
    axes = []
    for _ in range(int(r.unpack("<B"))):
        value, kind = r.node(), int(r.unpack("<B"))
        if kind == 1:
            bins, low, high = int(r.unpack("<I")), float(r.unpack("<d")), float(r.unpack("<d"))
            axes.append(Axis(value, bins, low, high))
        elif kind == 2:
            n = r.count(min_item_bytes=8)
            axes.append(Axis(value, edges=tuple(float(r.unpack("<d")) for _ in range(n))))
        else:
            raise ProtocolError(f"unknown axis kind {kind} at byte {r.pos - 1}")
    weight = r.node() if int(r.unpack("<B")) else None
    histogram = Histogram(tuple(axes), weight)
    histogram.check()
    return histogram


# --- results -----------------------------------------------------------------------------------


def encode_result(table: pa.Table, metrics: dict[str, int], compression: str | None) -> bytes:
    meta = {f"skyhook.{k}": str(int(metrics.get(k, 0))) for k in METRIC_KEYS}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    sink = pa.BufferOutputStream()
    # on this thread: a result's buffers are small, and a hand-off to Arrow's pool costs more
    codec = {"lz4": "lz4", "zstd": "zstd", None: None}[compression]
    options = pa.ipc.IpcWriteOptions(compression=codec, use_threads=False)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


def decode_result(data: bytes) -> tuple[pa.Table, ScanMetrics]:
    """Read a result stream; returns the table (metadata stripped) and the scan's metrics."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ProtocolError(f"cannot decode a scan result of {len(data)} bytes: {exc}") from exc
    raw = table.schema.metadata or {}
    values = {k: int(raw.get(f"skyhook.{k}".encode(), b"0")) for k in METRIC_KEYS}
    metrics = ScanMetrics(**values, bytes_returned=len(data), calls=1)
    keep = {k: v for k, v in raw.items() if not k.startswith(b"skyhook.")}
    return table.replace_schema_metadata(keep or None), metrics
