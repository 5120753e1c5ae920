"""dask/pyarrow ``filters`` and pyarrow compute expressions translated to expression trees select
exactly the rows pyarrow's own filtering selects; what cannot be translated is refused by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from planning_support import sample_events, selected

from skyhook_dask.exceptions import QueryError, QueryTypeError, UnknownColumnError
from skyhook_dask.query.expr import Call, Column, Literal
from skyhook_dask.query.filters import arrow_expression_to_expr, filters_to_expr

events = pytest.fixture(scope="module")(sample_events)


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
