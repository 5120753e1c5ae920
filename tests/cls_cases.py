"""Calls and cases for test_cls_skyhook.py: a call of the class and of the reference and the
comparison of their outcomes, queries on NanoAOD, random tables and requests (hypothesis
strategies), and crafted or mutated requests and objects."""

from __future__ import annotations

import errno
import math
import os
import random
import struct
import uuid

import awkward as ak
import numpy as np
import pyarrow as pa
from hypothesis import assume
from hypothesis import strategies as st

from skyhook_dask.exceptions import (
    ObjectFormatError,
    ProtocolError,
    QueryTypeError,
    UnknownColumnError,
)
from skyhook_dask.formats.histogram import Axis, Histogram
from skyhook_dask.formats.protocol import Aggregate, ScanRequest, decode_result
from skyhook_dask.objclass import scan
from skyhook_dask.query.expr import LITERAL_TYPES, Call, Column, Expr, Literal

try:
    import rados
except ImportError:  # the ceph_cluster fixture skips (or fails under CI) without it
    rados = None

OUTPUT_LIMIT = 32 << 20  # bound for Ioctx.execute's output buffer (the results here are small)

ERRNO_OF = (  # the reference's error classes and the errno the class returns for each
    (ProtocolError, errno.EINVAL),
    (UnknownColumnError, errno.ENODATA),
    (QueryTypeError, errno.EDOM),
    (ObjectFormatError, errno.EIO),
)


# --- calls and their outcomes ------------------------------------------------------------------


def assert_alive(pid: int) -> None:
    os.kill(pid, 0)  # raises ProcessLookupError if the OSD died


def put(io: object, data: bytes) -> str:
    name = f"cls-{uuid.uuid4().hex[:16]}"
    io.write_full(name, data)  # type: ignore[attr-defined]
    return name


def call_class(io: object, name: str, method: str, payload: bytes) -> bytes | int:
    """The class's output, or the errno it failed with."""
    try:
        _, out = io.execute(name, "skyhook", method, payload, length=OUTPUT_LIMIT)  # type: ignore[attr-defined]
    except rados.Error as exc:
        return int(exc.errno)
    return bytes(out)


def check(io: object, data: bytes, method: str, request: ScanRequest | None) -> pa.Table | None:
    payload = request.encode() if request is not None else b""
    name = put(io, data)
    try:
        want = call_reference(data, method, payload)
        return assert_same_result(call_class(io, name, method, payload), want)
    finally:
        io.remove_object(name)  # type: ignore[attr-defined]


def call_reference(data: bytes, method: str, payload: bytes) -> bytes | int:
    """The reference's output, or the errno the class returns for the reference's error."""
    try:
        return scan.execute(method, data, payload)
    except tuple(cls for cls, _ in ERRNO_OF) as exc:
        return next(code for cls, code in ERRNO_OF if isinstance(exc, cls))


def same_values(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_values, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def assert_same_result(got: bytes | int, want: bytes | int) -> pa.Table | None:
    """Equal tables (schema, metadata, values) or the same errno; returns the table."""
    if isinstance(want, int) or isinstance(got, int):
        assert got == want, f"class gave {got!r:.200}, reference {want!r:.200}"
        return None
    table, metrics = decode_result(got)
    expected, expected_metrics = decode_result(want)
    assert table.schema.equals(expected.schema, check_metadata=True), (
        f"schema differs:\n{table.schema}\nvs reference\n{expected.schema}"
    )
    for key in ("rows_in", "rows_out", "object_size", "bytes_read"):
        assert getattr(metrics, key) == getattr(expected_metrics, key), key
    # An explicit message: pytest rewrites the asserts of test modules only, not of this one.
    values, expected_values = table.to_pydict(), expected.to_pydict()
    assert same_values(values, expected_values), (
        f"values differ:\n{values!r:.1000}\nvs reference\n{expected_values!r:.1000}"
    )
    return table


def outcome(table: pa.Table | None) -> str:
    """A label for hypothesis' statistics: did the random cases exercise real results?"""
    if table is None:
        return "error"
    return "rows" if table.num_rows else "no rows"


# --- expressions, and queries on NanoAOD -------------------------------------------------------


def col(name: str) -> Column:
    return Column(name)


def lit(value: float | int, type_: str = "double") -> Literal:
    return Literal(value, type_)


def fn(function: str, *args: Expr) -> Call:
    return Call(function, args)


NANO_QUERIES = {
    "flat": (fn("greater", col("MET_pt"), lit(30.0)), lambda e: e.MET_pt > 30),
    "any jagged": (
        fn("any", fn("greater", col("Muon_pt"), lit(20.0))),
        lambda e: ak.any(e.Muon_pt > 20, axis=1),
    ),
    "broadcast": (
        fn("any", fn("greater", col("Jet_pt"), fn("multiply", col("MET_pt"), lit(0.5)))),
        lambda e: ak.any(e.Jet_pt > e.MET_pt * 0.5, axis=1),
    ),
    "two lists and divide": (
        fn("all", fn("less", fn("divide", col("Muon_pt"), col("Muon_eta")), lit(1e9))),
        lambda e: ak.all(e.Muon_pt / e.Muon_eta < 1e9, axis=1),
    ),
    "reductions": (
        fn(
            "and_kleene",
            fn("greater_equal", fn("len", col("Jet_pt")), lit(2, "int64")),
            fn("greater", fn("sum", col("Jet_pt")), fn("max", col("Jet_pt"))),
        ),
        lambda e: (ak.num(e.Jet_pt) >= 2) & (ak.sum(e.Jet_pt, axis=1) > ak.max(e.Jet_pt, axis=1)),
    ),
}


# --- random data and requests ------------------------------------------------------------------

INT_TYPES = {
    "i8": pa.int8(), "i16": pa.int16(), "i32": pa.int32(), "i64": pa.int64(),
    "u8": pa.uint8(), "u16": pa.uint16(), "u32": pa.uint32(), "u64": pa.uint64(),
}  # fmt: skip
FLAT_NUMBERS = [*INT_TYPES, "f32", "f64", "event_id"]
SAME_LENGTH_LISTS = ["lf", "lf2", "lu"]  # lb has these lengths too; li has its own
ALL_COLUMNS = [*FLAT_NUMBERS, "b", "lf", "lf2", "lu", "lb", "li", "s"]
ARITHMETIC = ["add", "subtract", "multiply", "divide", "power", "atan2"]
MATH = ["sqrt", "exp", "ln", "log10", "sin", "cos", "tan", "asin", "acos", "atan"]
MATH += ["sinh", "cosh", "tanh", "floor", "ceil"]
COMPARISONS = ["less", "less_equal", "greater", "greater_equal", "equal", "not_equal"]


def random_table(seed: int, rows: int) -> pa.Table:
    """Every column kind the class handles, with nulls, NaN, infinities, -0.0, extreme
    integers, empty lists, null lists (some hiding elements) and null list elements."""
    rng = np.random.default_rng(seed)

    def nulls(n: int, p: float = 0.15) -> np.ndarray:
        return rng.random(n) < p

    def floats(n: int, dtype: type) -> np.ndarray:
        values = rng.standard_normal(n) * 20
        special = rng.random(n) < 0.15
        values[special] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.0], special.sum())
        return values.astype(dtype)

    def ints(n: int, type_: pa.DataType) -> np.ndarray:
        info = np.iinfo(type_.to_pandas_dtype())
        values = rng.integers(max(info.min, -50), min(info.max, 50), n, endpoint=True)
        values = values.astype(type_.to_pandas_dtype())
        extreme = rng.random(n) < 0.1
        bounds = np.array([info.min, info.max], dtype=values.dtype)
        values[extreme] = rng.choice(bounds, extreme.sum())
        return values

    def lists(lengths: np.ndarray, values: pa.Array) -> pa.Array:
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        return pa.ListArray.from_arrays(offsets, values, mask=pa.array(nulls(len(lengths))))

    columns: dict[str, pa.Array] = {"event_id": pa.array(np.arange(rows), pa.int64())}
    for name, type_ in INT_TYPES.items():
        columns[name] = pa.array(ints(rows, type_), type_, mask=nulls(rows))
    columns["f32"] = pa.array(floats(rows, np.float32), mask=nulls(rows))
    columns["f64"] = pa.array(floats(rows, np.float64), mask=nulls(rows))
    columns["b"] = pa.array(rng.random(rows) < 0.5, mask=nulls(rows))
    lengths = rng.integers(0, 5, rows)
    long = rng.random(rows) < 0.05  # long lists exercise the pairwise float summation
    lengths[long] = rng.integers(5, 300, long.sum())
    total = int(lengths.sum())
    columns["lf"] = lists(lengths, pa.array(floats(total, np.float32), mask=nulls(total)))
    columns["lf2"] = lists(lengths, pa.array(floats(total, np.float64), mask=nulls(total, 0.05)))
    columns["lu"] = lists(lengths, pa.array(ints(total, pa.uint8()), pa.uint8()))
    columns["lb"] = lists(lengths, pa.array(rng.random(total) < 0.5, mask=nulls(total)))
    other = rng.integers(0, 4, rows)
    columns["li"] = lists(other, pa.array(ints(int(other.sum()), pa.int32()), pa.int32()))
    columns["s"] = pa.StructArray.from_arrays(
        [pa.array(ints(rows, pa.int32()), pa.int32()), pa.array(floats(rows, np.float64))],
        names=["a", "b"],
        mask=pa.array(nulls(rows)),
    )
    return pa.table(columns)


@st.composite
def literals(draw: st.DrawFn) -> Literal:
    type_ = draw(st.sampled_from(LITERAL_TYPES[1:]))
    if type_ == "float":
        return Literal(draw(st.floats(width=32)), type_)
    if type_ == "double":
        return Literal(draw(st.floats()), type_)
    info = np.iinfo(type_)
    if draw(st.integers(0, 40)) == 0 and info.min < 0:  # sometimes out of its type's range
        return Literal(draw(st.integers(-(2**63), 2**63 - 1)), type_)
    return Literal(draw(st.integers(int(info.min), int(info.max))), type_)


@st.composite
def expressions(draw: st.DrawFn, kind: str, depth: int = 3) -> Expr:
    """An expression giving ``kind``: num/bool per event, jnum/jbool per list element; rarely
    one of another kind, to compare the errors too."""
    if draw(st.integers(0, 40)) == 0:
        kind = draw(st.sampled_from(["num", "bool", "jnum", "jbool", "struct"]))
    leaf = depth <= 0 or draw(st.integers(0, 2)) == 0
    sub = lambda k: expressions(k, depth - 1)  # noqa: E731
    if kind == "struct":
        return Column("s")
    if kind == "num":
        if leaf:
            return draw(st.sampled_from(FLAT_NUMBERS).map(Column) | literals())
        choice = draw(st.sampled_from(["arith", "unary", "reduce", "count", "element"]))
        if choice == "element":  # x[i]: missing where the list is too short
            index = Literal(draw(st.integers(-4, 4)), "int64")
            return Call("list_element", (draw(sub("jnum")), index))
        if choice == "arith":
            return Call(draw(st.sampled_from(ARITHMETIC)), (draw(sub("num")), draw(sub("num"))))
        if choice == "unary":
            unary = ["abs", "negate", "to_float64", *MATH]
            return Call(draw(st.sampled_from(unary)), (draw(sub("num")),))
        if choice == "reduce":
            return Call(draw(st.sampled_from(["sum", "min", "max", "len"])), (draw(sub("jnum")),))
        return Call("count", (draw(sub("jbool")),))
    if kind == "jnum":
        if leaf:
            return Column(draw(st.sampled_from([*SAME_LENGTH_LISTS * 8, "li"])))
        choice = draw(st.sampled_from(["unary", "unary", "mask", "arith", "arith"]))
        if choice == "unary":
            unary = ["abs", "negate", "to_float64", *MATH]
            return Call(draw(st.sampled_from(unary)), (draw(sub("jnum")),))
        if choice == "mask":  # x[mask]: lengths differ from the other lists afterwards
            return Call("list_filter", (draw(sub("jnum")), draw(sub("jbool"))))
        args = [draw(sub("jnum")), draw(sub(draw(st.sampled_from(["num", "jnum"]))))]
        return Call(draw(st.sampled_from(ARITHMETIC)), tuple(draw(st.permutations(args))))
    if kind == "jbool":
        if leaf:
            return Column("lb")
        choice = draw(st.sampled_from(["compare", "logic", "invert"]))
        if choice == "compare":
            args = [draw(sub("jnum")), draw(sub(draw(st.sampled_from(["num", "jnum"]))))]
            return Call(draw(st.sampled_from(COMPARISONS)), tuple(draw(st.permutations(args))))
        if choice == "logic":
            args = [draw(sub("jbool")), draw(sub(draw(st.sampled_from(["bool", "jbool"]))))]
            function = draw(st.sampled_from(["and_kleene", "or_kleene"]))
            return Call(function, tuple(draw(st.permutations(args))))
        return Call("invert", (draw(sub("jbool")),))
    # kind == "bool"
    if leaf:
        return draw(st.just(Column("b")) | st.booleans().map(lambda v: Literal(v, "bool")))
    choice = draw(
        st.sampled_from(["compare", "logic", "invert", "reduce", "reduce", "element", "coalesce"])
    )
    if choice == "element":
        index = Literal(draw(st.integers(-3, 3)), "int64")
        return Call("list_element", (draw(sub("jbool")), index))
    if choice == "coalesce":  # what the binder wraps comparisons of x[i] in
        return Call("coalesce", (draw(sub("bool")), draw(sub("bool"))))
    if choice == "compare":
        return Call(draw(st.sampled_from(COMPARISONS)), (draw(sub("num")), draw(sub("num"))))
    if choice == "logic":
        function = draw(st.sampled_from(["and_kleene", "or_kleene"]))
        return Call(function, (draw(sub("bool")), draw(sub("bool"))))
    if choice == "invert":
        return Call("invert", (draw(sub("bool")),))
    return Call(draw(st.sampled_from(["any", "all"])), (draw(sub("jbool")),))


@st.composite
def scan_requests(draw: st.DrawFn) -> ScanRequest:
    """Projected columns, a predicate, and sometimes derived columns (``expr as d0``) placed
    among the columns; one may shadow a stored column's name."""
    names = st.sampled_from([*ALL_COLUMNS * 10, "no_such_column"])
    columns = draw(st.lists(names, max_size=4))
    derived = []
    for i in range(draw(st.sampled_from([0, 0, 1, 2]))):
        name = "f32" if draw(st.integers(0, 9)) == 0 and "f32" not in columns else f"d{i}"
        kind = draw(st.sampled_from(["num", "jnum", "bool", "jbool"]))
        derived.append((name, draw(expressions(kind, 2))))
        columns.insert(draw(st.integers(0, len(columns))), name)
    if derived and len(set(columns)) != len(columns):  # a derived name must appear once
        columns = list(dict.fromkeys(columns))
    return ScanRequest(
        columns=tuple(columns),
        predicate=None if draw(st.integers(0, 7)) == 0 else draw(expressions("bool")),
        compression=draw(st.sampled_from([None, "lz4", "zstd"])),
        derived=tuple(derived),
    )


@st.composite
def aggregate_requests(draw: st.DrawFn) -> ScanRequest:
    aggregates = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["count", "sum", "min", "max", "mean"]))
        expr = (
            None
            if op == "count" and draw(st.booleans())
            else draw(expressions(draw(st.sampled_from(["num", "jnum", "bool"])), 2))
        )
        aggregates.append(Aggregate(op, expr))
    return ScanRequest(
        predicate=draw(st.none() | expressions("bool", 2)), aggregates=tuple(aggregates)
    )


@st.composite
def hist_requests(draw: st.DrawFn) -> ScanRequest:
    """1 or 2 axes of per-row or list values, regular or variable bins, sometimes weighted."""
    axes = []
    kinds = draw(st.sampled_from([["num"], ["jnum"], ["num", "num"], ["jnum", "num"]]))
    for kind in kinds:
        value = draw(expressions(kind, 2))
        if draw(st.booleans()):
            low = draw(st.floats(-100, 50))
            high = low + draw(st.floats(0.5, 200))
            axes.append(Axis(value, draw(st.integers(1, 12)), low, high))
        else:
            edges = sorted(set(draw(st.lists(st.floats(-100, 100), min_size=2, max_size=6))))
            assume(len(edges) >= 2)
            axes.append(Axis(value, edges=tuple(edges)))
    weight = draw(st.none() | expressions(draw(st.sampled_from(["num", "jnum"])), 1))
    return ScanRequest(
        predicate=draw(st.none() | expressions("bool", 2)), histogram=Histogram(tuple(axes), weight)
    )


# --- crafted and mutated input -----------------------------------------------------------------


def nested_predicate(depth: int) -> bytes:
    node = b"\x01" + struct.pack("<H", 3) + b"f64"
    for _ in range(depth - 1):
        node = b"\x03" + struct.pack("<H", 6) + b"negate" + b"\x01" + node
    return node


def raw_request(predicate: bytes, columns: bytes = b"\x00\x00\x00\x00") -> bytes:
    return b"SKYQ\x01\x00\x00\x00" + columns + b"\x01" + predicate + b"\x00\x00\x00\x00"


def many_nodes(total: int) -> bytes:
    """A predicate of exactly ``total`` nodes: a balanced tree of 'add' calls (a chain would nest
    too deep), wrapped in one 'negate' when ``total`` is even."""
    leaf = b"\x02\x0b" + struct.pack("<d", 1.0)  # double literal
    nodes = [leaf] * ((total + 1) // 2)
    while len(nodes) > 1:
        pairs = [nodes[i : i + 2] for i in range(0, len(nodes), 2)]
        nodes = [b"\x03\x03\x00add\x02" + p[0] + p[1] if len(p) == 2 else p[0] for p in pairs]
    return nodes[0] if total % 2 else b"\x03\x06\x00negate\x01" + nodes[0]


CRAFTED = {
    "empty": b"",
    "bad magic": b"SKYX\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    "version 3": b"SKYQ\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    # version 2: derived columns after the aggregates (u32 count, then name and node each)
    "version 2 without its derived part": b"SKYQ\x02" + b"\x00" * 12,
    "version 2 deriving nothing": b"SKYQ\x02" + b"\x00" * 12 + b"\x00" * 4,
    "derived column not projected": b"SKYQ\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00a"
    + b"\x00\x00\x00\x00\x00"
    + b"\x01\x00\x00\x00\x01\x00b\x01\x02\x00lf",
    "derived column twice": b"SKYQ\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00a"
    + b"\x00\x00\x00\x00\x00"
    + b"\x02\x00\x00\x00"
    + b"\x01\x00a\x01\x02\x00lf" * 2,
    "derived column projected twice": b"SKYQ\x02\x00\x00\x00\x02\x00\x00\x00"
    + b"\x01\x00a" * 2
    + b"\x00\x00\x00\x00\x00"
    + b"\x01\x00\x00\x00\x01\x00a\x01\x02\x00lf",
    "huge derived count": b"SKYQ\x02" + b"\x00" * 12 + b"\xff\xff\xff\xff",
    # version 3: a histogram after the (possibly empty) derived part
    "histogram without axes": b"SKYQ\x03" + b"\x00" * 16 + b"\x00\x00",
    "histogram of 0 bins": b"SKYQ\x03"
    + b"\x00" * 16
    + b"\x01\x01\x02\x00lf\x01"
    + struct.pack("<Idd", 0, 0.0, 1.0)
    + b"\x00",
    "histogram with low == high": b"SKYQ\x03"
    + b"\x00" * 16
    + b"\x01\x01\x02\x00lf\x01"
    + struct.pack("<Idd", 4, 1.0, 1.0)
    + b"\x00",
    "histogram with NaN edges": b"SKYQ\x03"
    + b"\x00" * 16
    + b"\x01\x01\x02\x00lf\x02"
    + struct.pack("<I2d", 2, 0.0, float("nan"))
    + b"\x00",
    "histogram of too many cells": b"SKYQ\x03"
    + b"\x00" * 16
    + b"\x02"
    + (b"\x01\x02\x00lf\x01" + struct.pack("<Idd", 4000, 0.0, 1.0)) * 2
    + b"\x00",
    "unknown axis kind": b"SKYQ\x03" + b"\x00" * 16 + b"\x01\x01\x02\x00lf\x03\x00",
    "huge edge count": b"SKYQ\x03" + b"\x00" * 16 + b"\x01\x01\x02\x00lf\x02\xff\xff\xff\xff",
    "derived column with an unknown node": b"SKYQ\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00a"
    + b"\x00\x00\x00\x00\x00"
    + b"\x01\x00\x00\x00\x01\x00a\x09",
    "compression 3": b"SKYQ\x01\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    "flags set": b"SKYQ\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    "huge column count": b"SKYQ\x01\x00\x00\x00\xff\xff\xff\xff",
    "huge aggregate count": b"SKYQ\x01\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff",
    "string too long": b"SKYQ\x01\x00\x00\x00\x01\x00\x00\x00"
    + struct.pack("<H", 4097)
    + b"a" * 4097
    + b"\x00\x00\x00\x00\x00",
    "string past end": b"SKYQ\x01\x00\x00\x00\x01\x00\x00\x00\xff\x00abc",
    "bad utf-8": b"SKYQ\x01\x00\x00\x00\x01\x00\x00\x00\x02\x00\xc3\x28\x00\x00\x00\x00\x00",
    "surrogate": b"SKYQ\x01\x00\x00\x00\x01\x00\x00\x00\x03\x00\xed\xa0\x80\x00\x00\x00\x00\x00",
    "too deep": raw_request(nested_predicate(65)),
    "too many nodes": raw_request(many_nodes(4097)),
    "unknown tag": raw_request(b"\x07"),
    "unknown literal code": raw_request(b"\x02\x0c" + b"\x00" * 8),
    "unknown function": raw_request(b"\x03\x04\x00exec\x00"),
    "too many args": raw_request(b"\x03\x03\x00add\x09" + b"\x02\x01\x01" * 9),
    "truncated literal": raw_request(b"\x02\x05\x01\x02"),
    "trailing bytes": raw_request(b"\x02\x01\x01") + b"\x00",
    "unknown aggregate op": b"SKYQ\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09\x00",
    "sum without expression": b"SKYQ\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00",
    # x[i] with a column, a uint64 or a float as the index, or with one argument
    "index not a literal": raw_request(
        b"\x03\x0c\x00list_element\x02" + b"\x01\x02\x00li" + b"\x01\x01\x00x"
    ),
    "uint64 index": raw_request(
        b"\x03\x0c\x00list_element\x02\x01\x02\x00li\x02\x09" + b"\xff" * 8
    ),
    "float index": raw_request(b"\x03\x0c\x00list_element\x02\x01\x02\x00li\x02\x0b" + b"\x00" * 8),
    "index without a value": raw_request(b"\x03\x0c\x00list_element\x01\x02\x05" + b"\x00" * 8),
}


def fuzzed_payload(rng: random.Random, valid: list[ScanRequest], i: int) -> bytes:
    """Case ``i``: random bytes (every 4th; every 8th behind a valid header), else one of the
    ``valid`` requests with 1 to 3 bytes changed, cut off or inserted."""
    if i % 4 == 0:
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        if i % 8 == 0:
            payload = b"SKYQ\x01\x00\x00\x00" + payload
        return payload
    raw = bytearray(rng.choice(valid).encode())
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(3)
        if kind == 0 and raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 1:
            raw = raw[: rng.randrange(len(raw) + 1)]
        else:
            raw.insert(rng.randrange(len(raw) + 1), rng.randrange(256))
    return bytes(raw)


def corrupted(good: bytes, rng: random.Random) -> bytes:
    """``good`` with 1 to 8 random bytes overwritten."""
    data = bytearray(good)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)
