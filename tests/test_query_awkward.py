"""The query language against its ground truth: random query expressions -- element index,
masks, math functions, powers, missing-aware comparisons, int/float mixes -- parsed, bound and
evaluated by the Python class equal what awkward computes from the same text
(:mod:`awkward_semantics`), on random tables with empty and null lists, nulls, NaN,
infinities and extreme integers. The C++ class is held to the Python class by
``test_cls_skyhook`` (random scans with derived columns), which closes the triangle."""

from __future__ import annotations

import math
import os
from typing import Any

import awkward as ak
import pytest
from awkward_semantics import awkward_eval
from cls_cases import random_table
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from skyhook_dask.exceptions import QueryTypeError
from skyhook_dask.objclass.evaluate import evaluate
from skyhook_dask.query.binding import bind
from skyhook_dask.query.parser import parse_query

FLAT = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64"]
LISTS = ["lf", "lf2", "lu"]  # one counter; li has its own
COMPARE = ["<", "<=", ">", ">=", "==", "!="]
INEXACT = ["exp", "log", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh"]
INEXACT += ["tanh"]


def _literal(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["0", "1", "2", "3", "-2", "0.5", "2.5", "-1.5", "1e3"]))


@st.composite
def text(draw: st.DrawFn, kind: str, depth: int = 3) -> str:
    """Query text of an expression giving ``kind``: num, bool (per event) or jnum, jbool
    (a list per event)."""
    sub = lambda k: draw(text(k, depth - 1))  # noqa: E731
    leaf = depth <= 0 or draw(st.integers(0, 3)) == 0
    if kind == "num":
        if leaf:
            return draw(st.sampled_from(FLAT)) if draw(st.booleans()) else _literal(draw)
        index = draw(st.sampled_from(["0", "1", "2", "-1", "-3", "4611686018427387904"]))
        return draw(
            st.sampled_from(
                [
                    f"({sub('num')} {draw(st.sampled_from('+-*'))} {sub('num')})",
                    f"({sub('num')} / {sub('num')})",
                    f"{draw(st.sampled_from(['sqrt', 'abs', 'floor', 'ceil']))}({sub('num')})",
                    f"-({sub('num')})",
                    f"({sub('jnum')})[{index}]",
                    f"{draw(st.sampled_from(['len', 'min', 'max']))}({sub('jnum')})",
                    f"count({sub('jbool')})",
                ]
            )
        )
    if kind == "jnum":
        if leaf:
            return draw(st.sampled_from([*LISTS * 6, "li"]))
        op = draw(st.sampled_from("+-*"))
        return draw(
            st.sampled_from(
                [
                    f"({sub('jnum')} {op} {sub('num')})",
                    f"({sub('num')} {op} {sub('jnum')})",
                    f"({sub('jnum')} {op} {sub('jnum')})",
                    f"sqrt({sub('jnum')})",
                    f"abs({sub('jnum')})",
                    f"({sub('jnum')})[{sub('jbool')}]",
                ]
            )
        )
    if kind == "jbool":
        if leaf:
            return "lb"
        cmp = draw(st.sampled_from(COMPARE))
        other = sub(draw(st.sampled_from(["num", "jnum"])))
        return draw(st.sampled_from([f"({sub('jnum')} {cmp} {other})", f"not ({sub('jbool')})"]))
    # bool
    cmp = draw(st.sampled_from(COMPARE))
    if leaf:
        return f"({draw(st.sampled_from(FLAT))} {cmp} {_literal(draw)})"
    return draw(
        st.sampled_from(
            [
                f"({sub('num')} {cmp} {sub('num')})",
                f"not ({sub('bool')})",
                f"{draw(st.sampled_from(['any', 'all']))}({sub('jbool')})",
                f"({sub('jbool')})[{draw(st.sampled_from(['0', '-1', '2']))}]",
            ]
        )
    )


@st.composite
def projected(draw: st.DrawFn) -> tuple[str, bool]:
    """An expression to project and whether its values are exact on every platform (the
    transcendental functions, powers and float sums may differ in the last bits)."""
    if draw(st.integers(0, 2)) > 0:
        return draw(text(draw(st.sampled_from(["num", "jnum", "bool", "jbool"])))), True
    value = draw(text(draw(st.sampled_from(["num", "jnum"])), 2))
    other = draw(text("num", 1))
    wrapped = draw(
        st.sampled_from(
            [
                f"{draw(st.sampled_from(INEXACT))}({value})",
                f"atan2({value}, {other})",
                f"hypot({value}, {other})",
                f"abs({value}) ** ({other})",
                f"sum({draw(text('jnum', 2))})",
            ]
        )
    )
    return wrapped, False


def same(ours: Any, theirs: Any, exact: bool) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if isinstance(ours, list) or isinstance(theirs, list):
        return (
            isinstance(ours, list)
            and isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(same(a, b, exact) for a, b in zip(ours, theirs, strict=True))
        )
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return bool(ours) == bool(theirs) and isinstance(ours, bool) == isinstance(theirs, bool)
    if isinstance(ours, int) and isinstance(theirs, int):
        return ours == theirs
    a, b = float(ours), float(theirs)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or (not exact and math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9))


SETTINGS = settings(
    max_examples=int(os.environ.get("SKYHOOK_AWKWARD_EXAMPLES", "300")),
    deadline=None,
    derandomize=True,  # the same examples every run and on every machine: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 30), case=projected())
def test_python_class_computes_what_awkward_computes(
    seed: int, rows: int, case: tuple[str, bool]
) -> None:
    expression, exact = case
    table = random_table(seed, rows).drop_columns(["s"])
    query = parse_query(f"project {expression} as d")
    events = ak.from_arrow(table)
    try:
        bound = bind(query, {"Events": table.schema})
    except QueryTypeError as exc:  # Python or numpy refuses these too
        assume(_error_kind(exc) not in ("no column", "division by zero", "overflows"))
        assert _error_kind(exc) == "negative power", exc
        with pytest.raises(ValueError, match="negative integer powers"):
            awkward_eval(query.projection[0].expr, events)
        return
    ours: Any
    try:
        ours = evaluate(bound.derived[0][1], table).to_pylist()
    except QueryTypeError as exc:
        ours = _error_kind(exc)
    try:
        theirs = ak.to_list(awkward_eval(query.projection[0].expr, events))
    except (ValueError, IndexError) as exc:  # IndexError: a mask of another length
        theirs = _error_kind(exc)
    event(ours if isinstance(ours, str) else "values")
    if isinstance(ours, str) or isinstance(theirs, str):
        assert ours == theirs, (expression, ours, theirs)
        return
    if not isinstance(theirs, list):  # a column-free part folded to one number
        theirs = [theirs] * rows
    assert same(ours, theirs, exact), (expression, ours, theirs)


def _error_kind(exc: Exception) -> str:
    """What went wrong, in words both sides' messages share."""
    text = str(exc)
    kinds = {
        "differ in length": "lists differ in length",
        "broadcast": "lists differ in length",
        "cannot slice": "lists differ in length",
        "mask of another length": "lists differ in length",
        "negative integer power": "negative power",
        "reads no column": "no column",
        "division by zero": "division by zero",
        "overflows": "overflows",  # a constant too large for 64 bits: Python's OverflowError
    }
    return next((kind for key, kind in kinds.items() if key in text), text)
