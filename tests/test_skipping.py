"""Skipping objects by their statistics: ``may_match`` skips only objects that provably hold no
matching row, on the sample file and on random tables with nulls, NaN and extreme values."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from planning_support import sample_events

from skyhook_dask.formats import manifest as mf
from skyhook_dask.objclass.evaluate import evaluate
from skyhook_dask.query.binding import BoundQuery
from skyhook_dask.query.binding import bind as bind_query
from skyhook_dask.query.expr import Call, Column, Expr, Literal
from skyhook_dask.query.parser import parse_query
from skyhook_dask.query.skipping import may_match, must_match
from skyhook_dask.query.skipping_table import may_match_all, must_match_all

events = pytest.fixture(scope="module")(sample_events)


def bind(text: str, trees: Any) -> BoundQuery:
    return bind_query(parse_query(text), trees)


def column_stats(table: pa.Table, as_float: bool = True) -> dict[str, dict[str, Any]]:
    """min/max/nulls per column over the flattened non-null values, as the ``stat`` method
    reports them (float64 when ``as_float``)."""
    stats = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = column.combine_chunks()
        while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.list_flatten(values)
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
            continue
        bounds = pc.min_max(values).as_py()
        if as_float:
            bounds = {k: None if v is None else float(v) for k, v in bounds.items()}
        stats[name] = {**bounds, "nulls": values.null_count}
    return stats


def scanned(predicate: Expr | None, table: pa.Table) -> list[int]:
    """The event_ids the scan keeps (the reference class; null counts as false)."""
    if predicate is None:
        return table["event_id"].to_pylist()
    mask = evaluate(predicate, table)
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return table["event_id"].filter(mask.fill_null(False)).to_pylist()


def test_may_match_on_the_sample_file(events: pa.Table) -> None:
    stats = column_stats(events)
    max_muons = int(stats["nMuon"]["max"])
    max_pt, min_met = stats["Muon_pt"]["max"], stats["MET_pt"]["min"]
    schema = {"Events;1": events.schema}
    cases = {
        f"nMuon > {max_muons}": False,
        f"nMuon >= {max_muons}": True,
        f"{max_muons} < nMuon": False,
        f"nMuon == {max_muons + 1}": False,
        f"nMuon == {max_muons} - 0.5": True,
        f"any(Muon_pt > {max_pt!r})": False,
        f"any(Muon_pt >= {max_pt!r})": True,
        f"max(Muon_pt) > {max_pt!r}": False,
        f"Muon_pt[0] > {max_pt!r}": False,  # an element lies within the values' bounds
        f"Muon_pt[-1] >= {max_pt!r}": True,
        f"not (Muon_pt[1] > {max_pt!r})": True,  # a missing element compares false
        "all(Muon_pt > 1e6)": True,  # empty lists make all() true
        f"not all(Muon_pt <= {max_pt!r})": True,  # a NaN element would make it true
        f"nMuon > {max_muons} or MET_pt < {min_met!r}": False,
        f"nMuon > {max_muons} or MET_pt <= {min_met!r}": True,
        f"nMuon > {max_muons} and MET_pt > 0": False,
        f"not (nMuon <= {max_muons})": True,  # a NaN would satisfy it: not provable
        f"nMuon * 2 > {2 * max_muons}": True,  # arithmetic is not analysed
        "1 > 2": False,
        "1 < 2": True,
    }
    for text, expected in cases.items():
        bound = bind(f"select {text}", schema)
        assert may_match(bound.predicate, stats) is expected, text
        if not expected:  # a skipped object really has no matching row
            assert scanned(bound.predicate, events) == []
    assert may_match(bind(f"select nMuon > {max_muons}", schema).predicate, {}) is True


INT64 = st.one_of(
    st.integers(-10, 10),
    st.integers(2**53 - 3, 2**53 + 3),
    st.integers(2**63 - 4, 2**63 - 1),
    st.integers(-(2**63), -(2**63) + 4),
)
FLOAT64 = st.one_of(
    st.floats(-100, 100), st.sampled_from([0.1, -0.0, math.inf, -math.inf, math.nan])
)
FLOAT32 = st.floats(width=32)
COLUMNS = {"i": pa.int64(), "f": pa.float64(), "g": pa.float32(), "l": pa.list_(pa.float32())}


@st.composite
def tables(draw: st.DrawFn, nulls: bool = True) -> pa.Table:
    rows = draw(st.integers(1, 6))

    def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.none() | values if nulls else values

    data = {
        "i": draw(st.lists(maybe(INT64), min_size=rows, max_size=rows)),
        "f": draw(st.lists(maybe(FLOAT64), min_size=rows, max_size=rows)),
        "g": draw(st.lists(maybe(FLOAT32), min_size=rows, max_size=rows)),
        "l": draw(
            st.lists(maybe(st.lists(maybe(FLOAT32), max_size=3)), min_size=rows, max_size=rows)
        ),
    }
    return pa.table({k: pa.array(v, COLUMNS[k]) for k, v in data.items()})


def literals_for(column: str) -> st.SearchStrategy[Literal]:
    if column == "i":
        return st.one_of(
            INT64.map(lambda v: Literal(v, "int64")), FLOAT64.map(lambda v: Literal(v, "double"))
        )
    return st.one_of(
        st.integers(-(2**24), 2**24).map(lambda v: Literal(v, "int64")),
        FLOAT64.map(lambda v: Literal(v, "double")),
        st.floats(-1e30, 1e30).map(lambda v: Literal(v, "float")),
    )


@st.composite
def comparisons(draw: st.DrawFn) -> Expr:
    column = draw(st.sampled_from(["i", "f", "g", "min(l)", "max(l)", "any(l)", "all(l)"]))
    function = draw(st.sampled_from(["less", "less_equal", "greater", "greater_equal", "equal",
                                     "not_equal"]))  # fmt: skip
    source = "i" if column == "i" else "g"
    literal = draw(literals_for(source))
    target: Expr = Column(column[-2] if "(" in column else column)
    if column.startswith(("min", "max")):
        target = Call(column[:3], (target,))
    args = (literal, target) if draw(st.booleans()) else (target, literal)
    if column.startswith(("any", "all")):
        return Call(column[:3], (Call(function, args),))
    return Call(function, args)


def _combined(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(lambda a, b: Call("and_kleene", (a, b)), inner, inner),
        st.builds(lambda a, b: Call("or_kleene", (a, b)), inner, inner),
        st.builds(lambda a: Call("invert", (a,)), inner),
    )


PREDICATES = st.recursive(comparisons(), _combined, max_leaves=4)


def arrow_rows(expr: Expr, table: pa.Table) -> list[bool | None]:
    """Row-wise truth (None = null) with Arrow's comparisons and Kleene logic (the scan's)."""
    assert isinstance(expr, Call)
    fn, args = expr.function, expr.args
    if fn == "invert":
        return [None if v is None else not v for v in arrow_rows(args[0], table)]
    if fn in ("and_kleene", "or_kleene"):
        kleene = pc.and_kleene if fn == "and_kleene" else pc.or_kleene
        a, b = arrow_rows(args[0], table), arrow_rows(args[1], table)
        return kleene(pa.array(a, pa.bool_()), pa.array(b, pa.bool_())).to_pylist()
    if fn in ("any", "all"):
        lists = table["l"].to_pylist()
        flat = pa.array([v for x in lists if x for v in x], pa.float32())
        results = iter(_compare(args[0], flat))
        out: list[bool | None] = []
        for row in lists:
            elements = [next(results) for _ in row or []]
            if row is None:
                out.append(None)
            elif fn == "any":
                out.append(any(e is True for e in elements))
            else:
                out.append(all(e for e in elements if e is not None))
        return out
    left, right = args
    side = right if isinstance(left, Literal) else left
    if isinstance(side, Call):  # min/max of each list; NaN wins, empty or null lists give null
        reduce = min if side.function == "min" else max
        values = [
            None if not [v for v in (x or []) if v is not None]
            else math.nan if any(v != v for v in x if v is not None)
            else reduce(v for v in x if v is not None)
            for x in table["l"].to_pylist()
        ]  # fmt: skip
        return _compare(expr, pa.array(values, pa.float32()))
    return _compare(expr, table[side.name].combine_chunks())  # type: ignore[union-attr]


def _compare(expr: Expr, values: pa.Array) -> list[bool | None]:
    assert isinstance(expr, Call)
    arrow_types = {"int64": pa.int64(), "double": pa.float64(), "float": pa.float32()}
    args = [
        pa.scalar(a.value, arrow_types[a.type]) if isinstance(a, Literal) else values
        for a in expr.args
    ]
    return pc.call_function(expr.function, args).to_pylist()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), PREDICATES, st.booleans())
def test_may_match_never_skips_an_object_with_a_matching_row(
    table: pa.Table, predicate: Expr, as_float: bool
) -> None:
    try:
        rows = arrow_rows(predicate, table)
    except (pa.ArrowInvalid, OverflowError):
        reject()  # Arrow refuses this comparison (e.g. a lossy cast), so does the scan
    if any(value is True for value in rows):
        assert may_match(predicate, column_stats(table, as_float)), rows


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables() | tables(nulls=False), PREDICATES)
def test_must_match_only_objects_whose_every_row_matches(table: pa.Table, predicate: Expr) -> None:
    """Objects read without filtering hold no row the predicate would drop (statistics as the
    manifest records them: no bounds for a column holding NaN)."""
    try:
        rows = arrow_rows(predicate, table)
    except (pa.ArrowInvalid, OverflowError):
        reject()
    if must_match(predicate, mf.table_stats(table)):
        assert all(value is True for value in rows), rows


def test_must_match_on_the_sample_file(events: pa.Table) -> None:
    stats = mf.table_stats(events)
    low, high = stats["nMuon"]["min"], stats["nMuon"]["max"]
    min_met = stats["MET_pt"]["min"]
    schema = {"Events;1": events.schema}
    cases = {
        f"nMuon >= {low}": True,
        f"nMuon > {low}": False,
        f"nMuon <= {high} and MET_pt >= {min_met!r}": True,
        f"nMuon < {high} or MET_pt >= {min_met!r}": True,
        f"not (nMuon > {high})": True,
        f"nMuon != {high + 1}": True,
        f"nMuon == {low}": low == high,
        "any(Muon_pt > -1)": False,  # empty lists: not every row
        "Muon_pt[0] > -1": False,  # events without a muon: missing, so false
        "nMuon * 1 >= 0": False,  # arithmetic is not analysed
        "1 < 2": True,
    }
    for text, expected in cases.items():
        bound = bind(f"select {text}", schema)
        assert must_match(bound.predicate, stats) is expected, text
        if expected:
            assert len(scanned(bound.predicate, events)) == events.num_rows, text
    assert must_match(bind(f"select nMuon >= {low}", schema).predicate, {}) is False
    assert must_match(None, {}) is True


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tables() | tables(nulls=False), min_size=1, max_size=5), PREDICATES)
def test_skipping_a_table_of_objects_equals_asking_each(objects: list[pa.Table],
                                                        predicate: Expr) -> None:  # fmt: skip
    """The statistics table answers every object as the per-object functions do (or declines,
    None, when an integer is too large for float64)."""
    per_object = [mf.table_stats(t) for t in objects]
    table = mf.stats_table(per_object, objects[0].schema)
    may, must = may_match_all(predicate, table), must_match_all(predicate, table)
    for i, stats in enumerate(per_object):
        if may is not None:
            assert bool(may[i]) == may_match(predicate, stats), (i, stats)
        if must is not None:
            assert bool(must[i]) == must_match(predicate, stats), (i, stats)


def test_a_table_of_ordinary_statistics_is_answered_at_once() -> None:
    objects = [
        pa.table({"i": pa.array([1, 5], pa.int64()), "g": pa.array([0.5, 2.5], pa.float32())}),
        pa.table({"i": pa.array([7, 9], pa.int64()), "g": pa.array([None, 1.0], pa.float32())}),
    ]
    table = mf.stats_table([mf.table_stats(t) for t in objects], objects[0].schema)
    expr = Call("and_kleene", (Call("greater", (Column("i"), Literal(6, "int64"))),
                               Call("less", (Column("g"), Literal(2.0, "float")))))  # fmt: skip
    assert may_match_all(expr, table).tolist() == [False, True]
    assert must_match_all(expr, table).tolist() == [False, False]  # g has a null in object 2
    big = pa.table({"i": pa.array([2**60], pa.int64()), "g": pa.array([1.0], pa.float32())})
    huge = mf.stats_table([mf.table_stats(big)], big.schema)
    assert may_match_all(expr, huge) is None  # beyond float64's exact integers: asked per object
