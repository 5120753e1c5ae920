"""The Python reference object class, checked against awkward/numpy on real and random data."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st

from skyhook_dask import scan
from skyhook_dask.data import DATA_DIR
from skyhook_dask.exceptions import (
    ObjectFormatError,
    ProtocolError,
    QueryTypeError,
    UnknownColumnError,
)
from skyhook_dask.expr import Call, Column, Expr, Literal
from skyhook_dask.objects import RangeFile, write_object
from skyhook_dask.protocol import Aggregate, ScanRequest, decode_result


def sample_file(name: str = "nano_dy.root") -> Path:
    """The bundled sample (package data), else the copy beside the tests."""
    try:
        from skyhook_dask.data import sample_path
    except ImportError:
        return DATA_DIR / name
    return sample_path(name)


DATA = sample_file()
BRANCHES = "/^(Muon|Jet|MET|Electron)_|^n(Muon|Jet|Electron)$/"


def col(name: str) -> Column:
    return Column(name)


def lit(value: bool | int | float, type_: str = "double") -> Literal:
    return Literal(value, type_)


def call(function: str, *args: Expr) -> Call:
    return Call(function, args)


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(DATA)["Events"].arrays(filter_name=BRANCHES, library="ak")


@pytest.fixture(scope="module")
def table(events: ak.Array) -> pa.Table:
    table = ak.to_arrow_table(events, extensionarray=False)
    return table.add_column(0, "event_id", pa.array(np.arange(len(events)), pa.int64()))


@pytest.fixture(scope="module")
def obj(table: pa.Table) -> bytes:
    return write_object(table, "lz4")


def selected_ids(table: pa.Table, predicate: Expr) -> list[int]:
    result = scan.scan_table(table, ScanRequest(("event_id",), predicate))
    assert result.column_names == ["event_id"]
    return result.column("event_id").to_pylist()


def expected_ids(mask: ak.Array) -> list[int]:
    return np.flatnonzero(ak.to_numpy(ak.fill_none(mask, False))).tolist()


# --- predicates on the real sample, against awkward ------------------------------------------

PREDICATES = {
    "flat comparison": (call("greater", col("MET_pt"), lit(30.0)), lambda e: e.MET_pt > 30),
    "and": (
        call(
            "and_kleene",
            call("greater_equal", col("nMuon"), lit(2, "int64")),
            call("less", col("MET_pt"), lit(40.0)),
        ),
        lambda e: (e.nMuon >= 2) & (e.MET_pt < 40),
    ),
    "or, not": (
        call(
            "or_kleene",
            call("invert", call("greater", col("MET_pt"), lit(30.0))),
            call("equal", col("nMuon"), lit(0, "int64")),
        ),
        lambda e: ~(e.MET_pt > 30) | (e.nMuon == 0),
    ),
    "abs of arithmetic": (
        call("less", call("abs", call("subtract", col("MET_pt"), lit(40.0))), lit(10.0)),
        lambda e: abs(e.MET_pt - 40) < 10,
    ),
    "any": (
        call("any", call("greater", col("Muon_pt"), lit(20.0))),
        lambda e: ak.any(e.Muon_pt > 20, axis=1),
    ),
    "all (empty lists are True)": (
        call("all", call("greater", col("Jet_pt"), lit(25.0))),
        lambda e: ak.all(e.Jet_pt > 25, axis=1),
    ),
    "count": (
        call(
            "greater_equal",
            call("count", call("greater", col("Jet_pt"), lit(20.0))),
            lit(2, "int64"),
        ),
        lambda e: ak.count_nonzero(e.Jet_pt > 20, axis=1) >= 2,
    ),
    "count of a bool branch": (
        call("greater_equal", call("count", col("Muon_isGlobal")), lit(1, "int64")),
        lambda e: ak.count_nonzero(e.Muon_isGlobal, axis=1) >= 1,
    ),
    "len": (
        call("equal", call("len", col("Muon_pt")), lit(2, "int64")),
        lambda e: ak.num(e.Muon_pt, axis=1) == 2,
    ),
    "sum": (
        call("greater", call("sum", col("Jet_pt")), lit(100.0)),
        lambda e: ak.sum(e.Jet_pt, axis=1) > 100,
    ),
    "integer sum": (
        call("equal", call("sum", col("Muon_charge")), lit(0, "int64")),
        lambda e: ak.sum(e.Muon_charge, axis=1) == 0,
    ),
    "max (empty -> null -> dropped)": (
        call("greater", call("max", col("Muon_pt")), lit(30.0)),
        lambda e: ak.max(e.Muon_pt, axis=1, mask_identity=True) > 30,
    ),
    "min": (
        call("less", call("min", col("Jet_pt")), lit(20.0)),
        lambda e: ak.min(e.Jet_pt, axis=1, mask_identity=True) < 20,
    ),
    "list vs per-event value": (
        call("any", call("greater", col("Muon_pt"), col("MET_pt"))),
        lambda e: ak.any(e.Muon_pt > e.MET_pt, axis=1),
    ),
    "list vs list": (
        call("all", call("greater", call("multiply", col("Muon_pt"), lit(0.05)), col("Muon_eta"))),
        lambda e: ak.all(e.Muon_pt * 0.05 > e.Muon_eta, axis=1),
    ),
    "negate on a list": (
        call("any", call("greater", call("negate", col("Muon_eta")), lit(1.0))),
        lambda e: ak.any(-e.Muon_eta > 1, axis=1),
    ),
    "divide is true division": (
        call("equal", call("divide", col("nMuon"), lit(2, "int64")), lit(0.5)),
        lambda e: e.nMuon / 2 == 0.5,
    ),
    "divide broadcast": (
        call("any", call("greater", call("divide", col("Muon_pt"), col("nMuon")), lit(15.0))),
        lambda e: ak.any(e.Muon_pt / e.nMuon > 15, axis=1),
    ),
    "int list vs literal": (
        call("any", call("equal", col("Electron_lostHits"), lit(1, "int64"))),
        lambda e: ak.any(e.Electron_lostHits == 1, axis=1),
    ),
    "literal only": (lit(True, "bool"), lambda e: ak.ones_like(e.MET_pt, dtype=bool)),
}


@pytest.mark.parametrize("case", PREDICATES, ids=list(PREDICATES))
def test_predicates_match_awkward(case: str, table: pa.Table, events: ak.Array) -> None:
    predicate, truth = PREDICATES[case]
    expected = expected_ids(truth(events))
    assert selected_ids(table, predicate) == expected
    assert 0 < len(expected) < len(events) or case == "literal only"


def test_scan_projects_in_request_order(table: pa.Table, events: ak.Array) -> None:
    predicate = call("greater", col("MET_pt"), lit(30.0))
    result = scan.scan_table(table, ScanRequest(("Muon_pt", "event_id"), predicate))
    assert result.column_names == ["Muon_pt", "event_id"]
    assert result.column("Muon_pt").to_pylist() == events.Muon_pt[events.MET_pt > 30].tolist()
    everything = scan.scan_table(table, ScanRequest((), predicate))
    assert everything.column_names == table.column_names


def test_elementwise_list_results_keep_offsets(table: pa.Table, events: ak.Array) -> None:
    doubled = scan.evaluate(call("multiply", col("Muon_pt"), lit(2, "int64")), table)
    assert doubled.to_pylist() == (events.Muon_pt * 2).tolist()
    shifted = scan.evaluate(call("subtract", col("Jet_pt"), col("MET_pt")), table.slice(7, 20))
    assert shifted.to_pylist() == (events.Jet_pt - events.MET_pt)[7:27].tolist()


def test_lists_of_different_lengths_are_refused(table: pa.Table) -> None:
    with pytest.raises(QueryTypeError, match=r"Muon_pt.*Jet_pt.*row \d+"):
        scan.evaluate(call("greater", col("Muon_pt"), col("Jet_pt")), table)


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        (call("greater", col("Muon_pt"), lit(20.0)), "reduce it with any"),
        (call("any", col("Muon_pt")), "list of booleans"),
        (call("sum", col("MET_pt")), "needs a list"),
        (call("add", col("MET_pt"), lit(1.0)), "not a boolean"),
        (call("greater", col("Muon_pt")), "takes 2 argument"),
        (call("equal", col("Muon_isGlobal"), lit(1, "int64")), "cannot evaluate"),
    ],
)
def test_type_errors_name_the_expression(table: pa.Table, predicate: Expr, message: str) -> None:
    with pytest.raises(QueryTypeError, match=message):
        scan.scan_table(table, ScanRequest((), predicate))


def test_kleene_logic_on_nulls() -> None:
    values = [True, False, None]
    left = [a for a in values for _ in values]
    right = [b for _ in values for b in values]
    table = pa.table({"a": pa.array(left, pa.bool_()), "b": pa.array(right, pa.bool_())})

    def kleene_and(a: bool | None, b: bool | None) -> bool | None:
        return False if a is False or b is False else (None if None in (a, b) else True)

    def kleene_or(a: bool | None, b: bool | None) -> bool | None:
        return True if a is True or b is True else (None if None in (a, b) else False)

    both = scan.evaluate(call("and_kleene", col("a"), col("b")), table).to_pylist()
    either = scan.evaluate(call("or_kleene", col("a"), col("b")), table).to_pylist()
    assert both == [kleene_and(a, b) for a, b in zip(left, right, strict=True)]
    assert either == [kleene_or(a, b) for a, b in zip(left, right, strict=True)]
    kept = scan.scan_table(table, ScanRequest((), call("or_kleene", col("a"), col("b"))))
    assert kept.num_rows == sum(kleene_or(a, b) is True for a, b in zip(left, right, strict=True))


# --- random tables: every width, nulls, empty lists, NaN -----------------------------------

TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "float32", "float64", "bool"]  # fmt: skip


def elements(type_: str) -> st.SearchStrategy[object]:
    if type_ == "bool":
        return st.booleans()
    if type_.startswith("float"):
        finite = st.floats(-1e6, 1e6, width=32 if type_ == "float32" else 64)
        return st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf]))
    info = np.iinfo(type_)
    return st.integers(int(info.min), int(info.max))


@st.composite
def random_tables(draw: st.DrawFn) -> pa.Table:
    """Columns x (list), z (list, same lengths as x where both are non-null) and y (flat)."""
    type_ = draw(st.sampled_from(TYPES))
    value = st.one_of(st.none(), elements(type_))
    n = draw(st.integers(0, 20))
    x = draw(st.lists(st.one_of(st.none(), st.lists(value, max_size=5)), min_size=n, max_size=n))
    z = [
        draw(st.one_of(st.none(), st.lists(value, min_size=len(v), max_size=len(v))))
        if v is not None
        else draw(st.one_of(st.none(), st.lists(value, max_size=3)))
        for v in x
    ]
    y = draw(st.lists(value, min_size=n, max_size=n))
    arrow_type = pa.type_for_alias("float" if type_ == "float32" else type_)
    list_class = draw(st.sampled_from([pa.ListArray, pa.LargeListArray]))
    # Null lists may hide elements behind them (legal Arrow); they must never show.
    hidden = st.lists(st.lists(elements(type_), max_size=2), min_size=n, max_size=n)

    def list_array(lists: list[list[object] | None], behind_nulls: list[list[object]]) -> pa.Array:
        offsets, values = [0], []
        for items, garbage in zip(lists, behind_nulls, strict=True):
            values.extend(garbage if items is None else items)
            offsets.append(len(values))
        mask = pa.array([items is None for items in lists], pa.bool_())
        return list_class.from_arrays(offsets, pa.array(values, arrow_type), mask=mask)

    table = pa.table(
        {
            "x": list_array(x, draw(hidden)),
            "z": list_array(z, draw(hidden)),
            "y": pa.array(y, arrow_type),
        }
    )
    start = draw(st.integers(0, min(3, n)))  # a sliced table: offsets not starting at 0
    return table.slice(start)


def to_awkward(table: pa.Table) -> ak.Array:
    # A compact copy: ak.from_arrow misreads validity bitmaps of sliced arrays (awkward 2.14).
    return ak.from_arrow(table.take(pa.array(np.arange(table.num_rows))))


def assert_same(actual: list[object], expected: list[object]) -> None:
    """Equal lists (nested once), NaN equal to NaN, floats to 1e-12 relative."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        if isinstance(e, list) and isinstance(a, list):
            assert_same(a, e)
        elif isinstance(e, float) and a is not None:
            assert isinstance(a, float | int)
            assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, rel=1e-12), (a, e)
        else:
            assert a == e, (a, e)


def reduce(function: str, operand: Expr, table: pa.Table) -> list[object]:
    return scan.evaluate(call(function, operand), table).to_pylist()


@settings(max_examples=50, deadline=None)
@given(random_tables())
def test_list_reductions_match_awkward(table: pa.Table) -> None:
    events = to_awkward(table)
    x, y, is_float = events.x, events.y, table.schema.field("x").type.value_type
    is_float = pa.types.is_floating(is_float)
    flags = x if table.schema.field("x").type.value_type == pa.bool_() else x > y
    flags_expr = col("x") if flags is x else call("greater", col("x"), col("y"))
    assert reduce("any", flags_expr, table) == ak.any(flags, axis=1).tolist()
    assert reduce("all", flags_expr, table) == ak.all(flags, axis=1).tolist()
    assert reduce("count", flags_expr, table) == ak.count_nonzero(flags, axis=1).tolist()
    assert reduce("len", col("x"), table) == ak.num(x, axis=1).tolist()
    wide = ak.values_astype(x, np.float64) if is_float else x  # sum() adds floats in float64
    assert_same(reduce("sum", col("x"), table), ak.sum(wide, axis=1).tolist())
    nan_in_list = ak.fill_none(ak.any(np.isnan(x), axis=1), False) if is_float else None
    for function, truth in (("min", ak.min), ("max", ak.max)):
        expected = truth(x, axis=1, mask_identity=True)
        if is_float:  # documented: a NaN element makes the result NaN (awkward skips NaN)
            expected = ak.where(nan_in_list, math.nan, expected)
        assert_same(reduce(function, col("x"), table), expected.tolist())


@settings(max_examples=50, deadline=None)
@given(random_tables())
@np.errstate(all="ignore")  # integer wrap-around, inf - inf: Arrow and numpy agree silently
def test_elementwise_on_lists_match_awkward(table: pa.Table) -> None:
    events = to_awkward(table)
    x, y, z = events.x, events.y, events.z
    value_type = table.schema.field("x").type.value_type
    evaluate = scan.evaluate
    assert_same(evaluate(col("x"), table).to_pylist(), x.tolist())
    # A null per-event operand, or a null list in any operand, nulls the event (as awkward).
    assert evaluate(call("greater", col("x"), col("y")), table).to_pylist() == (x > y).tolist()
    assert evaluate(call("less_equal", col("x"), col("z")), table).to_pylist() == (x <= z).tolist()
    if value_type == pa.bool_():
        return
    assert_same(evaluate(call("add", col("x"), col("y")), table).to_pylist(), (x + y).tolist())
    assert_same(evaluate(call("multiply", col("z"), col("x")), table).to_pylist(), (z * x).tolist())
    as_float = ak.values_astype(x, np.float64), ak.values_astype(y, np.float64)
    quotient = (as_float[0] / as_float[1]).tolist()
    assert_same(evaluate(call("divide", col("x"), col("y")), table).to_pylist(), quotient)
    if not pa.types.is_unsigned_integer(value_type):
        assert_same(evaluate(call("abs", col("x")), table).to_pylist(), abs(x).tolist())
        assert_same(evaluate(call("negate", col("z")), table).to_pylist(), (-z).tolist())


@settings(max_examples=40, deadline=None)
@given(random_tables())
def test_scan_with_list_predicate_matches_awkward(table: pa.Table) -> None:
    events = to_awkward(table)
    table = table.append_column("row", pa.array(np.arange(table.num_rows)))
    predicate = call("any", call("greater_equal", col("x"), col("y")))
    if table.schema.field("x").type.value_type == pa.bool_():
        predicate = call("all", call("equal", col("x"), col("y")))
        expected = ak.all(events.x == events.y, axis=1)
    else:
        expected = ak.any(events.x >= events.y, axis=1)
    result = scan.scan_table(table, ScanRequest(("row", "y"), predicate))
    assert result.column("row").to_pylist() == expected_ids(expected)


def flat_values(column: pa.ChunkedArray) -> np.ndarray:
    values = ak.drop_none(
        ak.flatten(ak.drop_none(to_awkward(pa.table({"c": column})).c, axis=0), axis=None)
    )
    return ak.to_numpy(values)


@settings(max_examples=40, deadline=None)
@given(random_tables())
@np.errstate(invalid="ignore")  # inf - inf in the sums
def test_aggregates_and_stats_match_numpy(table: pa.Table) -> None:
    request = ScanRequest(
        aggregates=(Aggregate("count"), Aggregate("sum", col("x")), Aggregate("min", col("x")),
                    Aggregate("max", col("x")), Aggregate("count", col("y")))
    )  # fmt: skip
    row = scan.aggregate_table(table, request).to_pylist()[0]
    values = flat_values(table.column("x"))
    is_float = values.dtype.kind == "f"
    assert row["0"] == row["0.n"] == table.num_rows
    assert row["1.n"] == row["2.n"] == row["3.n"] == len(values)
    assert row["4"] == row["4.n"] == table.num_rows - table.column("y").null_count
    if len(values) == 0:
        assert row["1"] is row["2"] is row["3"] is None
    else:
        with warnings.catch_warnings():  # all-NaN input: Arrow and nanmin both give NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = (np.nanmin(values), np.nanmax(values)) if is_float else (
                values.min(), values.max())  # fmt: skip
        total = values.astype(np.float64 if is_float else np.uint64 if values.dtype.kind == "u"
                              else np.int64).sum()  # fmt: skip
        assert_same([row["1"], row["2"], row["3"]], [total.item(), low.item(), high.item()])
    stats = scan.stat_table(table).to_pylist()
    assert [s["column"] for s in stats] == ["x", "z", "y"]
    assert stats[0]["nulls"] == table.column("x").null_count
    numeric = values.dtype.kind in "iuf"
    if numeric and len(values) and not np.isnan(values.astype(np.float64)).all():
        finite = values[~np.isnan(values)] if is_float else values
        assert (stats[0]["min"], stats[0]["max"]) == (float(finite.min()), float(finite.max()))
    elif not numeric or len(values) == 0:
        assert stats[0]["min"] is stats[0]["max"] is None


def test_aggregates_on_real_data(table: pa.Table, events: ak.Array) -> None:
    predicate = call("greater_equal", col("nMuon"), lit(1, "int64"))
    request = ScanRequest(
        predicate=predicate,
        aggregates=(Aggregate("count"), Aggregate("sum", col("Muon_pt")),
                    Aggregate("max", col("MET_pt")), Aggregate("mean", col("Jet_pt")),
                    Aggregate("min", call("divide", col("Muon_pt"), col("nMuon")))),
    )  # fmt: skip
    row = scan.aggregate_table(table, request).to_pylist()[0]
    chosen = events[events.nMuon >= 1]
    muon_pt = ak.to_numpy(ak.flatten(chosen.Muon_pt)).astype(np.float64)
    jet_pt = ak.to_numpy(ak.flatten(chosen.Jet_pt)).astype(np.float64)
    assert row["0"] == len(chosen)
    assert (row["1"], row["1.n"]) == (pytest.approx(muon_pt.sum(), rel=1e-9), len(muon_pt))
    assert row["2"] == pytest.approx(float(ak.max(chosen.MET_pt)))
    assert row["3"] / row["3.n"] == pytest.approx(jet_pt.mean(), rel=1e-9)
    per_muon = ak.flatten(chosen.Muon_pt / chosen.nMuon)
    assert row["4"] == pytest.approx(float(ak.min(per_muon)), rel=1e-12)
    nothing = ScanRequest(predicate=lit(False, "bool"), aggregates=request.aggregates)
    empty = scan.aggregate_table(table, nothing).to_pylist()[0]
    assert (empty["0"], empty["1"], empty["1.n"], empty["2"]) == (0, None, 0, None)


# --- execute(): the object class entry point --------------------------------------------------


@pytest.fixture(params=["bytes", "buffer_reader", "memory_map", "range_file"], scope="module")
def sources(request: pytest.FixtureRequest, obj: bytes, tmp_path_factory: pytest.TempPathFactory):
    """A factory of fresh sources of one kind over the same object."""
    if request.param == "bytes":
        return lambda: obj
    if request.param == "buffer_reader":
        return lambda: pa.BufferReader(obj)
    if request.param == "memory_map":
        path = tmp_path_factory.mktemp("objects") / "object.arrow"
        path.write_bytes(obj)
        return lambda: pa.memory_map(str(path))
    return lambda: RangeFile(lambda offset, length: obj[offset : offset + length], len(obj))


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_execute_scan_round_trip(sources, obj: bytes, table: pa.Table, compression) -> None:
    predicate = call("any", call("greater", col("Muon_pt"), lit(20.0)))
    request = ScanRequest(("event_id", "Muon_pt", "MET_pt"), predicate, (), compression)
    source = sources()
    result, metrics = decode_result(scan.execute("scan", source, request.encode(), name="ds/0"))
    expected = scan.scan_table(table, request)
    assert result.equals(expected.replace_schema_metadata(None))
    assert (metrics.rows_in, metrics.rows_out) == (table.num_rows, expected.num_rows)
    assert metrics.object_size == len(obj)
    # 4 of 162 columns; with 40 events the footer and batch metadata are most of what is read.
    assert 0 < metrics.bytes_read < len(obj) / 2
    assert metrics.elapsed_ns > 0
    if isinstance(source, RangeFile):  # every byte counted came through the source
        assert metrics.bytes_read == source.bytes_read


def test_bytes_read_grows_with_columns(obj: bytes, table: pa.Table) -> None:
    def bytes_read(method: str, request: ScanRequest) -> int:
        return decode_result(scan.execute(method, obj, request.encode()))[1].bytes_read

    one = bytes_read("scan", ScanRequest(("MET_pt",)))
    three = bytes_read("scan", ScanRequest(("MET_pt", "Jet_pt", "Muon_pt")))
    everything = bytes_read("scan", ScanRequest())
    counting = bytes_read("aggregate", ScanRequest(aggregates=(Aggregate("count"),)))
    assert max(counting, one) < three < everything <= len(obj)


def test_execute_aggregate_and_stat(obj: bytes, table: pa.Table, events: ak.Array) -> None:
    request = ScanRequest(
        predicate=call("greater", col("MET_pt"), lit(30.0)),
        aggregates=(Aggregate("count"), Aggregate("max", col("Jet_pt"))),
        compression="zstd",
    )
    result, metrics = decode_result(scan.execute("aggregate", obj, request.encode()))
    assert result.equals(scan.aggregate_table(table, request))
    assert metrics.rows_out == result.column("0")[0].as_py() == int(ak.sum(events.MET_pt > 30))
    stats, metrics = decode_result(scan.execute("stat", obj, b"", object_size=123))
    assert (metrics.rows_in, metrics.object_size) == (table.num_rows, 123)
    assert stats.column("column").to_pylist() == table.column_names
    met = stats.to_pylist()[table.column_names.index("MET_pt")]
    assert (met["min"], met["max"]) == (float(ak.min(events.MET_pt)), float(ak.max(events.MET_pt)))


@pytest.mark.parametrize(
    "payload",
    [b"", b"XXXX\x01\x00\x00\x00", ScanRequest().encode()[:-1], ScanRequest().encode() + b"\x00"],
    ids=["empty", "bad magic", "truncated", "trailing"],
)
def test_malformed_payloads(obj: bytes, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        scan.execute("scan", obj, payload)


def test_unknown_method_and_empty_aggregate(obj: bytes) -> None:
    with pytest.raises(ProtocolError, match="unknown method 'delete'"):
        scan.execute("delete", obj, ScanRequest().encode())
    with pytest.raises(ProtocolError, match="at least one aggregate"):
        scan.execute("aggregate", obj, ScanRequest().encode())


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("scan", ScanRequest(("Muon_ptt",))),
        ("scan", ScanRequest(("MET_pt",), call("greater", col("Muon_ptt"), lit(1.0)))),
        ("scan", ScanRequest((), call("greater", col("Muon_ptt"), lit(1.0)))),
        ("aggregate", ScanRequest(aggregates=(Aggregate("sum", col("Muon_ptt")),))),
    ],
)
def test_unknown_column_names_column_and_object(obj: bytes, method: str, request_) -> None:
    with pytest.raises(UnknownColumnError, match=r"'Muon_ptt' in object ds/7.*'Muon_pt'"):
        scan.execute(method, obj, request_.encode(), name="ds/7")


def test_not_an_object(obj: bytes) -> None:
    with pytest.raises(ObjectFormatError, match="ds/9"):
        scan.execute("stat", b"not an arrow file at all", b"", name="ds/9")
    with pytest.raises(ObjectFormatError, match="ds/9"):
        scan.execute(
            "scan", obj[: len(obj) // 2] + obj[-4096:], ScanRequest().encode(), name="ds/9"
        )


def test_stat_of_half_floats_reports_no_bounds() -> None:
    halves = pa.array(np.array([1.0, -3.5], dtype=np.float16))
    table = pa.table({"h": halves, "hs": pa.array([[1.0], [2.0, None]], pa.list_(pa.float16()))})
    stats = scan.stat_table(table).to_pylist()
    assert [(s["column"], s["type"], s["min"], s["max"]) for s in stats] == [
        ("h", "halffloat", None, None),
        ("hs", "list<item: halffloat>", None, None),
    ]
    assert stats[1]["nulls"] == 0
