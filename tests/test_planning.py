"""Binding queries to trees: tree/cycle resolution, names, types, literal typing against numpy and
awkward, filters and pyarrow expressions against pyarrow's own filtering, object skipping."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import uproot
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from skyhook_dask.data import DATA_DIR
from skyhook_dask.exceptions import (
    QueryError,
    QueryTypeError,
    UnknownColumnError,
    UnknownTreeError,
)
from skyhook_dask.expr import Call, Column, Expr, Literal
from skyhook_dask.planning import (
    BoundQuery,
    arrow_expression_to_expr,
    bind,
    filters_to_expr,
    may_match,
    resolve_tree,
    split_key,
    to_request,
)
from skyhook_dask.protocol import ScanRequest, decode_request
from skyhook_dask.query import parse_query

DATA = DATA_DIR
BRANCHES = [
    "run", "luminosityBlock", "event", "nMuon", "Muon_pt", "Muon_eta", "Muon_charge",
    "Muon_tightId", "MET_pt", "PV_npvs", "HLT_IsoMu24", "Jet_pt",
]  # fmt: skip


@pytest.fixture(scope="module")
def events() -> pa.Table:
    """The sample file's Events tree as an object holds it: event_id first, then branches."""
    arrays = uproot.open(DATA / "nano_dy.root")["Events"].arrays(BRANCHES, library="ak")
    table = ak.to_arrow_table(arrays, extensionarray=False)
    return table.add_column(0, "event_id", pa.array(np.arange(len(table), dtype=np.int64)))


@pytest.fixture(scope="module")
def trees(events: pa.Table) -> dict[str, pa.Schema]:
    runs = uproot.open(DATA / "nano_dy.root")["Runs"].arrays(library="ak")
    return {
        "Events;1": events.schema,
        "Runs;1": ak.to_arrow_table(runs, extensionarray=False).schema,
    }


# A reference evaluation of bound predicates: awkward/numpy with the literals' *assigned*
# types as numpy scalars. Correct literal typing makes it equal the query evaluated by
# awkward with plain Python numbers (numpy's weak scalars).
NP_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "less": np.less, "less_equal": np.less_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "equal": np.equal, "not_equal": np.not_equal,
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply,
    "divide": lambda a, b: np.true_divide(a * np.float64(1), b),
    "and_kleene": np.logical_and, "or_kleene": np.logical_or, "invert": np.logical_not,
    "negate": np.negative, "abs": np.abs,
    "any": lambda a: ak.any(a, axis=1), "all": lambda a: ak.all(a, axis=1),
    "count": lambda a: ak.count_nonzero(a, axis=1), "len": lambda a: ak.num(a, axis=1),
    "sum": lambda a: ak.sum(a, axis=1), "min": lambda a: ak.min(a, axis=1),
    "max": lambda a: ak.max(a, axis=1),
}  # fmt: skip
NP_TYPES = {"float": np.float32, "double": np.float64, "bool": np.bool_}


def evaluate(expr: Expr, table: pa.Table) -> np.ndarray:
    def walk(node: Expr) -> Any:
        if isinstance(node, Column):
            return ak.from_arrow(table[node.name])
        if isinstance(node, Literal):
            return NP_TYPES.get(node.type, getattr(np, node.type, None))(node.value)
        assert isinstance(node, Call)
        return NP_FUNCTIONS[node.function](*(walk(a) for a in node.args))

    result = walk(expr)
    return np.asarray(
        ak.to_numpy(ak.fill_none(result, False)) if isinstance(result, ak.Array) else result
    )


def selected(expr: Expr | None, table: pa.Table) -> list[int]:
    if expr is None:
        return table["event_id"].to_pylist()
    mask = np.broadcast_to(evaluate(expr, table), (len(table),))  # a constant predicate too
    return table["event_id"].filter(pa.array(mask.astype(bool))).to_pylist()


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
    ("MET_pt / 3 > 10", lambda a: a.MET_pt / np.float64(3) > 10, "float"),
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


def test_to_request_round_trips_through_the_wire_format(trees: dict[str, pa.Schema]) -> None:
    bound = bind("select any(Muon_pt > 20.5) and nMuon >= 2, project Muon_pt nMuon", trees)
    request = to_request(bound, compression="zstd")
    assert request == ScanRequest(("Muon_pt", "nMuon"), bound.predicate, (), "zstd")
    assert decode_request(request.encode()) == request


def test_to_request_rejects_what_the_wire_cannot_carry() -> None:
    deep: Expr = Column("x")
    for _ in range(70):
        deep = Call("negate", (deep,))
    with pytest.raises(QueryError, match="deeper"):
        to_request(BoundQuery("T;1", (), Call("greater", (deep, Literal(1, "int64")))))


# --- dask/pyarrow filters ----------------------------------------------------------------------

FILTERS = [
    [("nMuon", ">", 1)],
    [("nMuon", "=", 2), ("MET_pt", "<", 30.5)],
    [("nMuon", "==", 2), ("HLT_IsoMu24", "==", True)],
    [[("nMuon", ">=", 3)], [("MET_pt", ">", 50), ("PV_npvs", "!=", 20)]],
    [("PV_npvs", "in", [10, 12, np.int32(14), 15])],
    [("PV_npvs", "not in", (10, 12, 14)), ("MET_pt", "<=", np.float32(25.5))],
    [("event", ">", np.uint64(2**63 + 5))],
    [("nMuon", ">", -3)],
    [("luminosityBlock", "in", {1, 2, 3})],
]


@pytest.mark.parametrize("filters", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_select_what_pyarrow_selects(filters: Any, events: pa.Table) -> None:
    expr = filters_to_expr(filters, events.schema)
    flat = events.select([n for n, t in zip(events.column_names, events.schema.types, strict=True)
                          if not pa.types.is_large_list(t)])  # fmt: skip
    truth = flat.filter(pq.filters_to_expression(filters))["event_id"].to_pylist()
    assert selected(expr, events) == truth


def test_filters_forms_and_errors(events: pa.Table) -> None:
    schema = events.schema
    assert filters_to_expr([], schema) is None
    assert filters_to_expr([("nMuon", "not in", [])], schema) is None
    assert filters_to_expr([("nMuon", "in", [])], schema) == Literal(False, "bool")
    assert filters_to_expr([("MET_pt", ">", 1.5)], schema) == Call(
        "greater",
        (Column("MET_pt"), Literal(1.5, "double")),  # pyarrow's double, kept
    )
    with pytest.raises(QueryError, match="unknown operator '~'"):
        filters_to_expr([("nMuon", "~", 1)], schema)
    with pytest.raises(QueryTypeError, match="'abc'"):
        filters_to_expr([("nMuon", "==", "abc")], schema)
    with pytest.raises(QueryError, match="list of values"):
        filters_to_expr([("nMuon", "in", 3)], schema)
    with pytest.raises(UnknownColumnError, match="'nMuonn'"):
        filters_to_expr([("nMuonn", ">", 1)], schema)
    with pytest.raises(QueryTypeError, match="any"):
        filters_to_expr([("Muon_pt", ">", 1)], schema)
    with pytest.raises(QueryError, match="tuple"):
        filters_to_expr([("nMuon", ">")], schema)


# --- pyarrow compute expressions ----------------------------------------------------------------

ARROW_EXPRESSIONS = [
    lambda: pc.field("nMuon") > 1,
    lambda: (pc.field("nMuon") >= 2) & (pc.field("MET_pt") < pa.scalar(30.5, pa.float32())),
    lambda: ~(pc.field("PV_npvs") <= 20) | pc.field("HLT_IsoMu24"),
    lambda: pc.field("PV_npvs").isin([10, 12, 14, 15]),
    lambda: pc.field("MET_pt") * 2 - pc.field("PV_npvs") > pc.scalar(30.0),
    lambda: pc.abs(pc.field("PV_npvs") - 25) < 4,
    lambda: pc.negate(pc.field("MET_pt")) < -30.25,
    lambda: pc.field("MET_pt") / pc.scalar(2.0) > 15,
    lambda: pc.field("event") > pa.scalar(2**63 + 1, pa.uint64()),
    lambda: pc.field("nMuon") == pa.scalar(2, pa.int8()),
]


@pytest.mark.parametrize("make", ARROW_EXPRESSIONS, ids=lambda m: str(m()))
def test_arrow_expressions_select_what_pyarrow_selects(
    make: Callable[[], pc.Expression], events: pa.Table
) -> None:
    expression = make()
    truth = events.filter(expression)["event_id"].to_pylist()
    assert selected(arrow_expression_to_expr(expression, events.schema), events) == truth


def test_arrow_expression_keeps_exact_names_and_types() -> None:
    schema = pa.schema([("odd (name) > 1", pa.float32()), ("n", pa.int32())])
    expr = arrow_expression_to_expr(pc.field("odd (name) > 1") > pa.scalar(0.5), schema)
    assert expr == Call("greater", (Column("odd (name) > 1"), Literal(0.5, "double")))
    expr = arrow_expression_to_expr(pc.field("n") < pa.scalar(7, pa.int64()), schema)
    assert expr == Call("less", (Column("n"), Literal(7, "int32")))  # exact as the column's type


@pytest.mark.parametrize(
    "make, error, fragment",
    [
        (lambda: pc.field("nMuon") / 2 > 1, QueryTypeError, "integer division"),
        (lambda: pc.field("nMuon").is_null(), QueryTypeError, "'is_null'"),
        (lambda: pc.field("nMuon") > pa.scalar(None, pa.int64()), QueryTypeError, "null"),
        (lambda: pc.field(("a", "b")) > 1, QueryTypeError, "nested"),
        (lambda: pc.field("nope") > 1, UnknownColumnError, "'nope'"),
        (lambda: pc.field("nMuon") > pa.scalar("x"), QueryTypeError, "type string"),
        (lambda: pc.field("MET_pt"), QueryTypeError, "not a boolean"),
    ],
)
def test_arrow_expression_errors(
    make: Callable[[], pc.Expression], error: type[Exception], fragment: str, events: pa.Table
) -> None:
    with pytest.raises(error, match=fragment):
        arrow_expression_to_expr(make(), events.schema)
    with pytest.raises(QueryError, match="cannot read"):
        arrow_expression_to_expr("nMuon > 1", events.schema)


# --- skipping objects by statistics -------------------------------------------------------------


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
            assert selected(bound.predicate, events) == []
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
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(1, 6))
    data = {
        "i": draw(st.lists(st.none() | INT64, min_size=rows, max_size=rows)),
        "f": draw(st.lists(st.none() | FLOAT64, min_size=rows, max_size=rows)),
        "g": draw(st.lists(st.none() | FLOAT32, min_size=rows, max_size=rows)),
        "l": draw(
            st.lists(
                st.none() | st.lists(st.none() | FLOAT32, max_size=3), min_size=rows, max_size=rows
            )
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


PREDICATES = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.builds(lambda a, b: Call("and_kleene", (a, b)), inner, inner),
        st.builds(lambda a, b: Call("or_kleene", (a, b)), inner, inner),
        st.builds(lambda a: Call("invert", (a,)), inner),
    ),
    max_leaves=4,
)


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
