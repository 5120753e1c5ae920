"""Binding queries to trees: tree/cycle resolution, names, types, literal typing against numpy
and awkward, and the scan requests a bound query becomes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot
from planning_support import SAMPLE, evaluate, sample_events, selected

from skyhook_dask.exceptions import (
    QueryError,
    QueryTypeError,
    UnknownColumnError,
    UnknownTreeError,
)
from skyhook_dask.formats.protocol import ScanRequest, decode_request
from skyhook_dask.ingest import write_dataset
from skyhook_dask.plan import plan
from skyhook_dask.query.binding import BoundQuery, resolve_tree, split_key
from skyhook_dask.query.binding import bind as bind_query
from skyhook_dask.query.expr import Call, Column, Expr, Literal
from skyhook_dask.query.parser import Query, parse_query

events = pytest.fixture(scope="module")(sample_events)


def bind(query: str | Query, trees: dict[str, pa.Schema], default: str = "Events") -> BoundQuery:
    return bind_query(parse_query(query) if isinstance(query, str) else query, trees, default)


@pytest.fixture(scope="module")
def trees(events: pa.Table) -> dict[str, pa.Schema]:
    runs = uproot.open(SAMPLE)["Runs"].arrays(library="ak")
    return {
        "Events;1": events.schema,
        "Runs;1": ak.to_arrow_table(runs, extensionarray=False).schema,
    }


def awkward_truth(table: pa.Table, rule: Callable[[Any], Any]) -> list[int]:
    """Rows where ``rule`` (written with awkward and Python numbers) holds."""
    array = ak.from_arrow(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mask = ak.to_numpy(rule(array)).astype(bool)
    return table["event_id"].filter(pa.array(mask)).to_pylist()


# --- trees -------------------------------------------------------------------------------------


def test_split_key() -> None:
    assert split_key("Events;1") == ("Events", 1)
    assert split_key("dir/sub/Tree;22") == ("dir/sub/Tree", 22)
    assert split_key("Events") == ("Events", None)
    assert split_key("a;b") == ("a;b", None)


def test_unqualified_columns_use_events(trees: dict[str, pa.Schema]) -> None:
    assert resolve_tree(parse_query("select nMuon > 1"), trees) == "Events;1"
    assert resolve_tree(parse_query(""), trees) == "Events;1"
    assert resolve_tree(parse_query("project run"), {"Runs;1": trees["Runs;1"]}) == "Runs;1"


def test_qualified_tree_decides_for_unqualified_columns(trees: dict[str, pa.Schema]) -> None:
    assert resolve_tree(parse_query("select run > 1, project Runs.genEventCount_"), trees) == (
        "Runs;1"
    )
    assert resolve_tree(parse_query("project Events;1.nMuon"), trees) == "Events;1"


def test_highest_cycle_without_cycle_and_exact_cycle_with_one() -> None:
    schema = pa.schema([("x", pa.int64())])
    trees = {"Events;1": schema, "Events;3": schema, "Events;2": schema}
    assert resolve_tree(parse_query("project x"), trees) == "Events;3"
    assert resolve_tree(parse_query("project Events.x"), trees) == "Events;3"
    assert resolve_tree(parse_query("project Events;2.x"), trees) == "Events;2"
    nested = {"dir/sub/Tree;2": schema, "Other;1": schema}
    assert resolve_tree(parse_query("project `dir/sub/Tree`;2.x"), nested) == "dir/sub/Tree;2"


def test_unknown_cycle_names_the_existing_ones(trees: dict[str, pa.Schema]) -> None:
    with pytest.raises(UnknownTreeError) as info:
        resolve_tree(parse_query("select event_id>5, project Events;75.Muon_phi"), trees)
    assert "'Events;75'" in str(info.value) and "Events;1" in str(info.value)
    with pytest.raises(UnknownTreeError, match="'Jets'"):
        resolve_tree(parse_query("project Jets.pt"), trees)
    with pytest.raises(UnknownTreeError):
        resolve_tree(parse_query("project x"), {})


def test_one_tree_per_query(trees: dict[str, pa.Schema]) -> None:
    with pytest.raises(QueryError) as info:
        resolve_tree(parse_query("select Events.nMuon > 1, project Runs.run"), trees)
    assert "'Events;1'" in str(info.value) and "'Runs;1'" in str(info.value)


def test_several_trees_without_events_need_qualification() -> None:
    schema = pa.schema([("x", pa.int64())])
    with pytest.raises(QueryError, match="qualify"):
        resolve_tree(parse_query("project x"), {"A;1": schema, "B;1": schema})


# --- binding: names ----------------------------------------------------------------------------


def test_seed_queries_bind(trees: dict[str, pa.Schema]) -> None:
    seed = {"Events;75": trees["Events;1"]}  # the seed's file has cycle 75
    bound = bind("select event_id>5, project Events;75.Muon_pt,Events;75.Muon_eta", seed)
    assert bound == BoundQuery(
        "Events;75",
        ("Muon_pt", "Muon_eta"),
        Call("greater", (Column("event_id"), Literal(5, "int64"))),
    )


def test_unknown_column_names_position_and_near_matches(trees: dict[str, pa.Schema]) -> None:
    text = "select nMuon > 1, project Muon_ptt"
    with pytest.raises(UnknownColumnError) as info:
        bind(text, trees)
    message = str(info.value)
    assert "'Muon_ptt'" in message and "'Muon_pt'" in message
    assert f"position {text.index('Muon_ptt')}" in message and "Events;1" in message


def test_unknown_column_says_which_tree_has_it(trees: dict[str, pa.Schema]) -> None:
    with pytest.raises(UnknownColumnError, match="tree 'Events;1' has it"):
        bind("select nMuon > 1, project Runs.genEventCount_", trees)


def test_projection_is_kept_in_order_and_checked_for_duplicates(
    trees: dict[str, pa.Schema],
) -> None:
    assert bind("project MET_pt Muon_pt nMuon", trees).columns == ("MET_pt", "Muon_pt", "nMuon")
    assert bind("select nMuon > 0", trees).columns == ()
    with pytest.raises(QueryError, match="twice"):
        bind("project Muon_pt, Events.Muon_pt", trees)


# --- binding: literal types against numpy/awkward -----------------------------------------------

CASES = [
    ("nMuon > 1", lambda a: a.nMuon > 1, "uint32"),
    ("nMuon >= 1.5", lambda a: a.nMuon >= 1.5, "double"),
    ("nMuon > 300", lambda a: a.nMuon > 300, "uint32"),
    ("nMuon < 5000000000", lambda a: np.asarray(a.nMuon) < 5000000000, "uint32"),
    ("nMuon > -1", lambda a: np.asarray(a.nMuon) > -1, "uint32"),
    ("-1 == nMuon", lambda a: np.asarray(a.nMuon) == -1, "uint32"),
    ("event != 18446744073709551615", lambda a: np.asarray(a.event) != 2**64 - 1, "uint64"),
    ("event > -5", lambda a: np.asarray(a.event) > -5, "uint64"),
    ("MET_pt > 20.1", lambda a: a.MET_pt > 20.1, "float"),
    ("MET_pt < 1e39", lambda a: a.MET_pt < np.float32(np.inf), "float"),
    ("MET_pt * 2 > 50 - 9.5", lambda a: a.MET_pt * 2 > 40.5, "float"),
    ("MET_pt / 3 > 10", lambda a: a.MET_pt / np.float64(3) > 10, "double"),  # / in float64
    ("nMuon + 5000000000 > 5000000001", lambda a: a.nMuon > 1, "int64"),
    ("PV_npvs * 0.5 >= 10", lambda a: a.PV_npvs * 0.5 >= 10, "double"),
    ("abs(PV_npvs - 30) < 5", lambda a: abs(a.PV_npvs - 30) < 5, "int32"),
    ("-PV_npvs < -20", lambda a: -a.PV_npvs < -20, "int32"),
    ("HLT_IsoMu24 == true", lambda a: a.HLT_IsoMu24, "bool"),
    ("not HLT_IsoMu24 or nMuon == 0", lambda a: ~a.HLT_IsoMu24 | (a.nMuon == 0), "uint32"),
    ("any(Muon_pt > 25.3)", lambda a: ak.any(a.Muon_pt > 25.3, axis=1), "float"),
    ("all(abs(Muon_eta) < 1.5)", lambda a: ak.all(abs(a.Muon_eta) < 1.5, axis=1), "float"),
    ("count(Muon_tightId) >= 1", lambda a: ak.count_nonzero(a.Muon_tightId, axis=1) >= 1, "int64"),
    ("len(Jet_pt) > nMuon * 2", lambda a: ak.num(a.Jet_pt) > a.nMuon * 2, "uint32"),
    ("sum(Muon_charge) == 0 and nMuon == 2",
     lambda a: (ak.sum(a.Muon_charge, axis=1) == 0) & (a.nMuon == 2), "int64"),
    ("max(Muon_pt) - min(Muon_pt) > 10",
     lambda a: ak.fill_none(ak.max(a.Muon_pt, 1) - ak.min(a.Muon_pt, 1) > 10, False), "float"),
    ("any(Muon_pt > MET_pt)", lambda a: ak.any(a.Muon_pt > a.MET_pt, axis=1), None),
    ("any(Muon_pt * Muon_charge > 5)",
     lambda a: ak.any(a.Muon_pt * a.Muon_charge > 5, axis=1), "double"),
    ("any(Muon_tightId and Muon_pt > 20)",
     lambda a: ak.any(a.Muon_tightId & (a.Muon_pt > 20), axis=1), "float"),
]  # fmt: skip


ALWAYS_OR_NEVER = {
    "nMuon > 300", "nMuon < 5000000000", "nMuon > -1", "-1 == nMuon", "event > -5",
    "event != 18446744073709551615", "MET_pt < 1e39",
}  # fmt: skip


@pytest.mark.parametrize("text, rule, literal_type", CASES, ids=[c[0] for c in CASES])
def test_bound_predicates_select_what_awkward_selects(
    text: str, rule: Callable[[Any], Any], literal_type: str | None, events: pa.Table
) -> None:
    bound = bind(f"select {text}", {"Events;1": events.schema})
    truth = awkward_truth(events, rule)
    assert selected(bound.predicate, events) == truth
    if text not in ALWAYS_OR_NEVER:
        assert 0 < len(truth) < len(events)  # the case can tell right from wrong
    literals = _literals(bound.predicate)
    if literal_type is not None:
        assert literal_type in {lit.type for lit in literals}, literals


def _literals(expr: Expr | None) -> list[Literal]:
    if isinstance(expr, Literal):
        return [expr]
    if isinstance(expr, Call):
        return [lit for arg in expr.args for lit in _literals(arg)]
    return []


def test_float_literal_compares_in_float32_like_numpy() -> None:
    """0.1 is rounded to float32 before comparing with a float32 column, as numpy does."""
    values = np.array([np.float32(0.1), 0.05, 0.2], dtype=np.float32)
    table = pa.table({"event_id": [0, 1, 2], "x": values})
    for text, python_rule in [
        ("x > 0.1", values > 0.1),
        ("x >= 0.1", values >= 0.1),
        ("x == 0.1", values == 0.1),
    ]:
        bound = bind(f"select {text}", {"T;1": table.schema})
        assert bound.predicate.args[1] == Literal(float(np.float32(0.1)), "float")  # type: ignore[union-attr]
        assert list(evaluate(bound.predicate, table)) == list(python_rule)  # type: ignore[arg-type]
    assert list(values == 0.1) == [True, False, False]  # the case double comparison gets wrong


def test_int_literal_widens_for_arithmetic_on_small_types() -> None:
    table = pa.table({"event_id": [0, 1], "x": pa.array([10, 250], pa.uint8())})
    bound = bind("select x + 300 > 500", {"T;1": table.schema})
    add = bound.predicate.args[0]  # type: ignore[union-attr]
    assert add.args[1] == Literal(300, "int16")
    assert bound.predicate.args[1] == Literal(500, "int16")  # type: ignore[union-attr]
    assert list(evaluate(bound.predicate, table)) == [False, True]  # type: ignore[arg-type]


def test_constant_predicates_fold(trees: dict[str, pa.Schema]) -> None:
    assert bind("select 1 < 2", trees).predicate is None
    assert bind("select 2 < 1 or false", trees).predicate == Literal(False, "bool")
    assert bind("select nMuon > 2 * 3 - 1", trees).predicate == Call(
        "greater", (Column("nMuon"), Literal(5, "uint32"))
    )
    assert bind("select MET_pt > 1 / 4", trees).predicate == Call(
        "greater", (Column("MET_pt"), Literal(0.25, "float"))
    )


# --- binding: type errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("select Muon_pt > 20", ["list of booleans", "any(Muon_pt > 20)", "all(Muon_pt > 20)"]),
        ("select any(nMuon > 1)", ["any()", "nMuon", "one value per event"]),
        ("select len(MET_pt) > 1", ["len()", "MET_pt", "position 11"]),
        ("select sum(HLT_IsoMu24) > 1", ["sum()", "HLT_IsoMu24"]),
        ("select any(Muon_pt)", ["any()", "list of booleans", "Muon_pt"]),
        ("select max(Muon_tightId) > 0", ["max()", "numbers"]),
        ("select HLT_IsoMu24 == 1", ["cannot compare bool with the number 1"]),
        ("select nMuon and HLT_IsoMu24", ["nMuon is not a boolean"]),
        ("select HLT_IsoMu24 + 1 > 0", ["HLT_IsoMu24 is not a number"]),
        ("select nMuon", ["gives uint32, not a boolean"]),
        ("select 5", ["not a boolean"]),
        ("select nMuon > 1 / 0", ["division by zero"]),
        ("select nMuon > true + 1", ["numbers"]),
        ("select nMuon > 9223372036854775807 * 4", ["64 bits"]),
    ],
)
def test_type_errors_name_function_and_column(
    text: str, fragments: list[str], trees: dict[str, pa.Schema]
) -> None:
    with pytest.raises(QueryTypeError) as info:
        bind(text, trees)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_sum_of_booleans_and_comparing_two_lists_are_allowed(trees: dict[str, pa.Schema]) -> None:
    assert bind("select sum(Muon_tightId) >= 1", trees).predicate is not None
    assert bind("select any(Muon_pt > Muon_eta)", trees).predicate is not None


def test_unsupported_column_types_are_named() -> None:
    schema = pa.schema([("name", pa.string()), ("nested", pa.list_(pa.list_(pa.float32())))])
    with pytest.raises(QueryTypeError, match="'name' has type string"):
        bind("select name == 1", {"T;1": schema})
    with pytest.raises(QueryTypeError, match="'nested'"):
        bind("select any(any(nested > 1))", {"T;1": schema})
    assert bind("project name nested", {"T;1": schema}).columns == ("name", "nested")


# --- requests ----------------------------------------------------------------------------------


def test_plan_requests_round_trip_through_the_wire_format() -> None:
    file = write_dataset("memory://planning-wire", [SAMPLE], "wire", trees=["Events"]).files[0]
    query = parse_query("select any(Muon_pt > 20.5) and nMuon >= 2, project Muon_pt nMuon")
    scan = plan(file, query, compression="zstd")
    bound = bind(query, {k: t.schema for k, t in file.trees.items()})
    assert scan.objects and not any(o.unfiltered for o in scan.objects)
    for obj in scan.objects:
        request = scan.request(obj)
        assert request == ScanRequest(("Muon_pt", "nMuon"), bound.predicate, (), "zstd")
        assert decode_request(scan.payload(obj)) == request


def test_plans_refuse_what_the_wire_cannot_carry() -> None:
    file = write_dataset("memory://planning-deep", [SAMPLE], "deep", trees=["Events"]).files[0]
    terms = [f"MET_pt > {k}" for k in range(1500)]  # ~6000 nodes, more than the wire's 4096
    while len(terms) > 1:  # a balanced "or" tree: shallow enough for the parser
        pairs = zip(terms[::2], terms[1::2], strict=False)
        terms = [f"({a} or {b})" for a, b in pairs] + (terms[-1:] if len(terms) % 2 else [])
    with pytest.raises(QueryError, match=r"cannot be sent to storage.*nodes"):
        plan(file, parse_query(f"select {terms[0]}"))
