"""The Python reference object class on the real sample, checked against awkward: predicates,
projections, type errors, Kleene logic, aggregates and column statistics."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
from scan_support import call, col, events_table, expected_ids, lit, sample_events

from skyhook_dask.exceptions import QueryTypeError
from skyhook_dask.formats.protocol import Aggregate, ScanRequest
from skyhook_dask.objclass import scan
from skyhook_dask.query.expr import Expr

events = pytest.fixture(scope="module")(sample_events)
table = pytest.fixture(scope="module")(events_table)


def selected_ids(table: pa.Table, predicate: Expr) -> list[int]:
    result = scan.scan_table(table, ScanRequest(("event_id",), predicate))
    assert result.column_names == ["event_id"]
    return result.column("event_id").to_pylist()


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


# --- aggregates and statistics ----------------------------------------------------------------


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


def test_stat_of_half_floats_reports_no_bounds() -> None:
    halves = pa.array(np.array([1.0, -3.5], dtype=np.float16))
    table = pa.table({"h": halves, "hs": pa.array([[1.0], [2.0, None]], pa.list_(pa.float16()))})
    stats = scan.stat_table(table).to_pylist()
    assert [(s["column"], s["type"], s["min"], s["max"]) for s in stats] == [
        ("h", "halffloat", None, None),
        ("hs", "list<item: halffloat>", None, None),
    ]
    assert stats[1]["nulls"] == 0
