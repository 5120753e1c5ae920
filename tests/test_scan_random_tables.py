"""The Python reference object class on random tables of every integer and float width, with
nulls, empty and null lists and NaN: list reductions, element-wise arithmetic, list predicates,
aggregates and statistics equal what awkward and numpy compute."""

from __future__ import annotations

import math
import warnings

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scan_support import call, col, expected_ids

from skyhook_dask.formats.protocol import Aggregate, ScanRequest
from skyhook_dask.objclass import scan
from skyhook_dask.query.expr import Expr

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
