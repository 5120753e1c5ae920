"""The C++ object class ``skyhook`` inside a real OSD, against the Python reference class.

Every result the class returns must equal what :func:`skyhook_dask.scan.execute` returns for
the same object bytes and request (schema, types and values; NaN equals NaN), and every error
must be the reference's error class: ProtocolError <-> EINVAL, UnknownColumnError <-> ENODATA,
QueryTypeError <-> EDOM, ObjectFormatError <-> EIO. The reference itself is checked against
uproot + awkward in test_scan.py; a few queries here are checked against awkward directly too.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import random
import struct
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skyhook_dask import scan
from skyhook_dask.ceph import build_class as builder
from skyhook_dask.exceptions import (
    ClassNotAvailableError,
    ObjectFormatError,
    ProtocolError,
    QueryTypeError,
    UnknownColumnError,
)
from skyhook_dask.expr import LITERAL_TYPES, Call, Column, Expr, Literal
from skyhook_dask.objects import write_object
from skyhook_dask.protocol import Aggregate, ScanRequest, decode_result

try:
    import rados
except ImportError:  # the ceph_cluster fixture skips (or fails under CI) without it
    rados = None

CEPH = pytest.mark.ceph

DATA = Path(__file__).parent / "data" / "nano_dy.root"
BRANCHES = "/^(Muon|Jet|MET|Electron)_|^n(Muon|Jet|Electron)$/"
OUTPUT_LIMIT = 32 << 20  # bound for Ioctx.execute's output buffer (the results here are small)
ERRNO_OF = (  # the reference's error classes and the errno the class returns for each
    (ProtocolError, errno.EINVAL),
    (UnknownColumnError, errno.ENODATA),
    (QueryTypeError, errno.EDOM),
    (ObjectFormatError, errno.EIO),
)


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ioctx(ceph_cluster: object) -> Iterator[object]:
    cluster = rados.Rados(
        conffile=str(ceph_cluster.conf_path),  # type: ignore[attr-defined]
        name=f"client.{ceph_cluster.user}",  # type: ignore[attr-defined]
        conf={"keyring": str(ceph_cluster.keyring_path)},  # type: ignore[attr-defined]
    )
    cluster.connect()
    io = cluster.open_ioctx(ceph_cluster.pool)  # type: ignore[attr-defined]
    yield io
    io.close()
    cluster.shutdown()


@pytest.fixture(scope="module")
def osd_pid(ceph_cluster: object) -> int:
    pid_files = sorted((Path(ceph_cluster.dir) / "run").glob("osd.*.pid"))  # type: ignore[attr-defined]
    assert pid_files, "the dev cluster has no OSD pid file"
    return int(pid_files[0].read_text().strip())


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


def call_reference(data: bytes, method: str, payload: bytes) -> bytes | int:
    try:
        return scan.execute(method, data, payload)
    except tuple(cls for cls, _ in ERRNO_OF) as exc:
        return next(code for cls, code in ERRNO_OF if isinstance(exc, cls))
    except pa.ArrowNotImplementedError:
        # The reference lets Arrow's error through when divide cannot cast an operand
        # (e.g. a struct) to float64; the query is ill-typed, which the class reports as EDOM.
        return errno.EDOM


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
    assert same_values(table.to_pydict(), expected.to_pydict())
    return table


def check(io: object, data: bytes, method: str, request: ScanRequest | None) -> pa.Table | None:
    payload = request.encode() if request is not None else b""
    name = put(io, data)
    try:
        want = call_reference(data, method, payload)
        return assert_same_result(call_class(io, name, method, payload), want)
    finally:
        io.remove_object(name)  # type: ignore[attr-defined]


def outcome(table: pa.Table | None) -> str:
    """A label for hypothesis' statistics: did the random cases exercise real results?"""
    if table is None:
        return "error"
    return "rows" if table.num_rows else "no rows"


# --- real NanoAOD data, against the reference and awkward --------------------------------------


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(DATA)["Events"].arrays(filter_name=BRANCHES, library="ak")


@pytest.fixture(scope="module")
def nano(events: ak.Array) -> bytes:
    table = ak.to_arrow_table(events, extensionarray=False)
    table = table.add_column(0, "event_id", pa.array(np.arange(len(events)), pa.int64()))
    return write_object(table, "lz4")


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


@CEPH
@pytest.mark.parametrize("query", NANO_QUERIES)
def test_scan_on_nanoaod_matches_reference_and_awkward(
    ioctx: object, nano: bytes, events: ak.Array, query: str
) -> None:
    predicate, truth = NANO_QUERIES[query]
    request = ScanRequest(("event_id", "Muon_pt", "MET_pt"), predicate, compression="zstd")
    table = check(ioctx, nano, "scan", request)
    assert table is not None
    mask = ak.fill_none(truth(events), False)
    assert table.column("event_id").to_pylist() == np.flatnonzero(ak.to_numpy(mask)).tolist()
    assert table.column("Muon_pt").to_pylist() == ak.to_list(events.Muon_pt[mask])


@CEPH
def test_aggregate_on_nanoaod(ioctx: object, nano: bytes, events: ak.Array) -> None:
    request = ScanRequest(
        predicate=fn("greater_equal", col("nMuon"), lit(1, "uint32")),
        aggregates=(
            Aggregate("count"),
            Aggregate("sum", col("Muon_pt")),
            Aggregate("min", col("MET_pt")),
            Aggregate("max", fn("len", col("Jet_pt"))),
            Aggregate("mean", col("Jet_eta")),
        ),
    )
    table = check(ioctx, nano, "aggregate", request)
    assert table is not None
    row = table.to_pylist()[0]
    sel = events[events.nMuon >= 1]
    assert row["0"] == len(sel)
    assert row["1"] == pytest.approx(float(ak.sum(sel.Muon_pt)), rel=1e-6)
    assert row["1.n"] == int(ak.count(sel.Muon_pt))
    assert row["2"] == pytest.approx(float(ak.min(sel.MET_pt)))
    assert row["3"] == int(ak.max(ak.num(sel.Jet_pt)))
    assert row["4"] / row["4.n"] == pytest.approx(float(ak.mean(ak.flatten(sel.Jet_eta))))


@CEPH
def test_stat_on_nanoaod(ioctx: object, nano: bytes, events: ak.Array) -> None:
    table = check(ioctx, nano, "stat", None)
    assert table is not None
    rows = {r["column"]: r for r in table.to_pylist()}
    muon_pt = ak.to_arrow(events.Muon_pt, extensionarray=False)
    assert rows["Muon_pt"]["type"] == str(muon_pt.type)  # large_list<item: float not null>
    assert rows["Muon_pt"]["nulls"] == 0
    assert rows["Muon_pt"]["min"] == pytest.approx(float(ak.min(events.Muon_pt)))
    assert rows["nMuon"]["max"] == float(ak.max(events.nMuon))


@CEPH
def test_every_column_and_no_predicate(ioctx: object, nano: bytes) -> None:
    table = check(ioctx, nano, "scan", ScanRequest(compression="lz4"))
    assert table is not None and table.num_rows == 40


# --- differential testing on random data -------------------------------------------------------

INT_TYPES = {
    "i8": pa.int8(), "i16": pa.int16(), "i32": pa.int32(), "i64": pa.int64(),
    "u8": pa.uint8(), "u16": pa.uint16(), "u32": pa.uint32(), "u64": pa.uint64(),
}  # fmt: skip
FLAT_NUMBERS = [*INT_TYPES, "f32", "f64", "event_id"]
SAME_LENGTH_LISTS = ["lf", "lf2", "lu"]  # lb has these lengths too; li has its own
ALL_COLUMNS = [*FLAT_NUMBERS, "b", "lf", "lf2", "lu", "lb", "li", "s"]
ARITHMETIC = ["add", "subtract", "multiply", "divide"]
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
        choice = draw(st.sampled_from(["arith", "unary", "reduce", "count"]))
        if choice == "arith":
            return Call(draw(st.sampled_from(ARITHMETIC)), (draw(sub("num")), draw(sub("num"))))
        if choice == "unary":
            return Call(draw(st.sampled_from(["abs", "negate"])), (draw(sub("num")),))
        if choice == "reduce":
            return Call(draw(st.sampled_from(["sum", "min", "max", "len"])), (draw(sub("jnum")),))
        return Call("count", (draw(sub("jbool")),))
    if kind == "jnum":
        if leaf:
            return Column(draw(st.sampled_from([*SAME_LENGTH_LISTS * 8, "li"])))
        if draw(st.booleans()):
            return Call(draw(st.sampled_from(["abs", "negate"])), (draw(sub("jnum")),))
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
    choice = draw(st.sampled_from(["compare", "logic", "invert", "reduce", "reduce"]))
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
    names = st.sampled_from([*ALL_COLUMNS * 10, "no_such_column"])
    return ScanRequest(
        columns=tuple(draw(st.lists(names, max_size=4))),
        predicate=None if draw(st.integers(0, 7)) == 0 else draw(expressions("bool")),
        compression=draw(st.sampled_from([None, "lz4", "zstd"])),
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


SETTINGS = settings(
    max_examples=int(os.environ.get("SKYHOOK_CLS_EXAMPLES", "120")),  # raise it for a soak run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@CEPH
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40), request=scan_requests())
def test_random_scans_match_reference(ioctx: object, seed: int, rows: int, request: object) -> None:
    compression = random.Random(seed).choice([None, "lz4", "zstd"])
    table = check(ioctx, write_object(random_table(seed, rows), compression), "scan", request)
    event(outcome(table))


@CEPH
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40), request=aggregate_requests())
def test_random_aggregates_match_reference(
    ioctx: object, seed: int, rows: int, request: object
) -> None:
    table = check(ioctx, write_object(random_table(seed, rows), "lz4"), "aggregate", request)
    event(outcome(table))


@CEPH
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40))
def test_random_stats_match_reference(ioctx: object, seed: int, rows: int) -> None:
    check(ioctx, write_object(random_table(seed, rows), None), "stat", None)


@CEPH
def test_multi_batch_object(ioctx: object) -> None:
    table = pa.concat_tables([random_table(1, 30), random_table(2, 25), random_table(3, 0)])
    table = table.set_column(0, "event_id", pa.array(np.arange(table.num_rows), pa.int64()))
    predicate = fn("any", fn("greater", col("lf"), col("f64")))
    result = check(ioctx, write_object(table, "zstd"), "scan", ScanRequest((), predicate))
    assert result is not None and result.num_rows > 0


@CEPH
def test_float_list_sums_equal_numpy_bit_for_bit(ioctx: object) -> None:
    """Long float lists: sum() adds as numpy's add.reduceat does (pairwise), to the last bit."""
    rng = np.random.default_rng(8)
    lengths = rng.integers(0, 400, 60)
    values = rng.standard_normal(int(lengths.sum())) * 10.0 ** rng.uniform(-5, 8, lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    spans = list(itertools.pairwise(offsets))
    expected = [float(np.add.reduceat(values[a:b], [0])[0]) if b > a else 0.0 for a, b in spans]
    exact = [math.fsum(values[a:b]) for a, b in spans]
    table = pa.table(
        {
            "event_id": pa.array(np.arange(60), pa.int64()),
            "x": pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values)),
            "numpy_sum": pa.array(expected),
        }
    )
    request = ScanRequest(("event_id",), fn("equal", fn("sum", col("x")), col("numpy_sum")))
    result = check(ioctx, write_object(table, "lz4"), "scan", request)
    assert result is not None and result.num_rows == 60
    assert expected != exact  # the data does tell summation orders apart


# --- errors, malformed input, robustness -------------------------------------------------------


@pytest.fixture(scope="module")
def small(ioctx: object) -> Iterator[tuple[str, bytes]]:
    data = write_object(random_table(7, 20), "lz4")
    name = put(ioctx, data)
    yield name, data
    ioctx.remove_object(name)  # type: ignore[attr-defined]


@CEPH
@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (ScanRequest(("no_such_column",)), errno.ENODATA),
        (ScanRequest((), fn("greater", col("missing"), lit(1.0))), errno.ENODATA),
        (ScanRequest((), fn("invert", col("f64"))), errno.EDOM),
        (ScanRequest((), fn("greater", col("lf"), lit(1.0))), errno.EDOM),  # not reduced
        (ScanRequest((), fn("any", col("b"))), errno.EDOM),  # reduction of a flat column
        (ScanRequest((), fn("any", fn("greater", col("li"), col("lf")))), errno.EDOM),
        (ScanRequest((), fn("equal", col("i8"), lit(300, "int8"))), errno.EDOM),
        (ScanRequest((), fn("abs", col("f64"), col("f32"))), errno.EDOM),  # arity
    ],
)
def test_query_errors(
    ioctx: object, small: tuple[str, bytes], request_: ScanRequest, code: int
) -> None:
    name, data = small
    payload = request_.encode()
    assert call_reference(data, "scan", payload) == code
    assert call_class(ioctx, name, "scan", payload) == code


@CEPH
def test_object_errors(ioctx: object) -> None:
    payload = ScanRequest().encode()
    assert call_class(ioctx, f"missing-{uuid.uuid4().hex}", "scan", payload) == errno.ENOENT
    name = put(ioctx, b"not an arrow file" * 10)
    assert call_class(ioctx, name, "scan", payload) == errno.EIO
    ioctx.remove_object(name)  # type: ignore[attr-defined]
    aggregate_nothing = ScanRequest().encode()
    name = put(ioctx, write_object(random_table(3, 5)))
    assert call_class(ioctx, name, "aggregate", aggregate_nothing) == errno.EINVAL
    ioctx.remove_object(name)  # type: ignore[attr-defined]


def _nested(depth: int) -> bytes:
    node = b"\x01" + struct.pack("<H", 3) + b"f64"
    for _ in range(depth - 1):
        node = b"\x03" + struct.pack("<H", 6) + b"negate" + b"\x01" + node
    return node


def _request(predicate: bytes, columns: bytes = b"\x00\x00\x00\x00") -> bytes:
    return b"SKYQ\x01\x00\x00\x00" + columns + b"\x01" + predicate + b"\x00\x00\x00\x00"


def _many_nodes(total: int) -> bytes:
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
    "version 2": b"SKYQ\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
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
    "too deep": _request(_nested(65)),
    "too many nodes": _request(_many_nodes(4097)),
    "unknown tag": _request(b"\x07"),
    "unknown literal code": _request(b"\x02\x0c" + b"\x00" * 8),
    "unknown function": _request(b"\x03\x04\x00exec\x00"),
    "too many args": _request(b"\x03\x03\x00add\x09" + b"\x02\x01\x01" * 9),
    "truncated literal": _request(b"\x02\x05\x01\x02"),
    "trailing bytes": _request(b"\x02\x01\x01") + b"\x00",
    "unknown aggregate op": b"SKYQ\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09\x00",
    "sum without expression": b"SKYQ\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00",
}


@CEPH
@pytest.mark.parametrize("case", CRAFTED)
def test_malformed_requests_are_einval(
    ioctx: object, small: tuple[str, bytes], osd_pid: int, case: str
) -> None:
    name, data = small
    for method in ("scan", "aggregate"):
        assert call_reference(data, method, CRAFTED[case]) == errno.EINVAL
        assert call_class(ioctx, name, method, CRAFTED[case]) == errno.EINVAL
    assert_alive(osd_pid)


@CEPH
def test_limits_are_inclusive(ioctx: object, small: tuple[str, bytes]) -> None:
    """Depth 64 and 4096 nodes are still accepted (and agree with the reference)."""
    name, data = small
    for payload in (_request(_nested(64)), _request(_many_nodes(4096))):
        want = call_reference(data, "scan", payload)
        assert want == errno.EDOM  # valid requests whose predicate is not boolean
        assert call_class(ioctx, name, "scan", payload) == want


@CEPH
def test_fuzzed_requests(ioctx: object, small: tuple[str, bytes], osd_pid: int) -> None:
    """Random bytes and mutations of valid requests: same outcome as the reference."""
    name, data = small
    rng = random.Random(20240611)
    valid = [
        ScanRequest(("event_id", "lf"), fn("any", fn("greater", col("lf"), col("f32")))),
        ScanRequest((), fn("and_kleene", col("b"), fn("less", col("i16"), lit(3, "int16")))),
        ScanRequest(aggregates=(Aggregate("sum", col("li")), Aggregate("count"))),
    ]
    outcomes: dict[object, int] = {}
    for i in range(400):
        if i % 4 == 0:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
            if i % 8 == 0:
                payload = b"SKYQ\x01\x00\x00\x00" + payload
        else:
            raw = bytearray(rng.choice(valid).encode())
            for _ in range(rng.randint(1, 3)):
                kind = rng.randrange(3)
                if kind == 0 and raw:
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
                elif kind == 1:
                    raw = raw[: rng.randrange(len(raw) + 1)]
                else:
                    raw.insert(rng.randrange(len(raw) + 1), rng.randrange(256))
            payload = bytes(raw)
        method = "aggregate" if i % 3 == 0 else "scan"
        want = call_reference(data, method, payload)
        got = call_class(ioctx, name, method, payload)
        if isinstance(want, int):
            assert got == want, f"payload {payload!r}: class {got!r:.100}, reference {want}"
        else:
            assert_same_result(got, want)
        key = want if isinstance(want, int) else "ok"
        outcomes[key] = outcomes.get(key, 0) + 1
    assert_alive(osd_pid)
    assert outcomes.get(errno.EINVAL, 0) > 100  # the fuzzing did exercise the decoder


@CEPH
def test_corrupt_objects_never_crash_the_osd(ioctx: object, osd_pid: int) -> None:
    rng = random.Random(99)
    good = write_object(random_table(11, 30), rng.choice(["lz4", None]))
    payload = ScanRequest((), fn("any", fn("greater", col("lf"), col("f64")))).encode()
    results = {"ok": 0, "error": 0}
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        name = put(ioctx, bytes(data))
        got = call_class(ioctx, name, "scan", payload)
        ioctx.remove_object(name)  # type: ignore[attr-defined]
        if isinstance(got, int):
            assert got in (errno.EIO, errno.EDOM, errno.ENODATA), got
            results["error"] += 1
        else:
            decode_result(got)  # whatever came back is a readable stream
            results["ok"] += 1
    assert_alive(osd_pid)
    assert results["error"] > 0


# --- column selectivity ------------------------------------------------------------------------


@CEPH
def test_projection_reads_only_the_needed_columns(ioctx: object) -> None:
    rng = np.random.default_rng(5)
    rows = 20_000
    columns = {"event_id": pa.array(np.arange(rows), pa.int64())}
    for i in range(99):
        columns[f"c{i:02d}"] = pa.array(rng.standard_normal(rows).astype(np.float32))
    data = write_object(pa.table(columns), "lz4")
    request = ScanRequest(("event_id", "c10"), fn("greater", col("c42"), lit(2.0)))
    name = put(ioctx, data)
    try:
        got = call_class(ioctx, name, "scan", request.encode())
        full = call_class(ioctx, name, "scan", ScanRequest().encode())
    finally:
        ioctx.remove_object(name)  # type: ignore[attr-defined]
    assert_same_result(got, scan.execute("scan", data, request.encode()))
    _, metrics = decode_result(got)  # type: ignore[arg-type]
    _, full_metrics = decode_result(full)  # type: ignore[arg-type]
    assert metrics.object_size == len(data)
    assert metrics.rows_in == rows
    assert metrics.rows_out == int(np.sum(columns["c42"].to_numpy() > 2.0))
    # 3 of 100 columns: about 3 % of the body plus the footer.
    assert 0 < metrics.bytes_read < 0.06 * len(data), (metrics.bytes_read, len(data))
    # Every column: all but the file's leading magic and schema message (the footer has both).
    assert 0.99 * len(data) < full_metrics.bytes_read <= len(data)


@CEPH
def test_concurrent_calls(ioctx: object, small: tuple[str, bytes]) -> None:
    """Calls running at once in the OSD's op threads share nothing: every result is right."""
    name, data = small
    requests = [
        ScanRequest(("event_id", "lf"), fn("any", fn("greater", col("lf"), col("f64")))),
        ScanRequest((), fn("less", col("i32"), lit(0, "int32")), compression="zstd"),
    ]
    payloads = [r.encode() for r in requests]
    expected = [scan.execute("scan", data, p) for p in payloads]
    failures: list[str] = []

    def worker(k: int) -> None:
        for i in range(25):
            which = (k + i) % 2
            got = call_class(ioctx, name, "scan", payloads[which])
            try:
                assert_same_result(got, expected[which])
            except AssertionError as exc:
                failures.append(str(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- building the class ------------------------------------------------------------------------


def _fake_build(out_dir: Path, build_hash: str) -> Path:
    library = out_dir / builder.LIBRARY_NAME
    library.write_bytes(b"stand-in library")
    (out_dir / (builder.LIBRARY_NAME + builder.HASH_SUFFIX)).write_text(build_hash + "\n")
    return library


def test_build_is_skipped_when_sources_and_flags_are_unchanged(tmp_path: Path) -> None:
    library = _fake_build(tmp_path, builder.current_build_hash())
    assert builder.build_class(tmp_path) == library
    assert library.read_bytes() == b"stand-in library"  # not rebuilt
    assert builder.main([str(tmp_path)]) == 0


def test_stale_build_is_rebuilt_and_a_missing_header_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_build(tmp_path, "0" * 64)  # built from other sources
    monkeypatch.setattr(builder, "_OBJCLASS_HEADER", "rados/no_such_header.h")
    with pytest.raises(ClassNotAvailableError, match="rados-objclass-dev"):
        builder.build_class(tmp_path)
    with pytest.raises(ClassNotAvailableError, match="rados-objclass-dev"):
        builder.build_class(tmp_path / "fresh", force=True)
    assert builder.main([str(tmp_path)]) == 1
    assert "apt-get install rados-objclass-dev" in capsys.readouterr().err


def test_build_hash_covers_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "skyhook"
    copy.mkdir()
    for source in builder.source_dir().iterdir():
        (copy / source.name).write_bytes(source.read_bytes())
    monkeypatch.setattr(builder, "source_dir", lambda: copy)
    before = builder.current_build_hash()
    with open(copy / "request.cc", "a") as handle:
        handle.write("\n// changed\n")
    assert builder.current_build_hash() != before


@CEPH
def test_installed_class_is_up_to_date(ceph_cluster: object) -> None:
    build_dir = Path(ceph_cluster.class_build_dir)  # type: ignore[attr-defined]
    library = build_dir / builder.LIBRARY_NAME
    if not library.is_file():
        pytest.skip("the cluster was started without building the class here")
    mtime = library.stat().st_mtime_ns
    assert builder.build_class(build_dir) == library
    assert library.stat().st_mtime_ns == mtime
