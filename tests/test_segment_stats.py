"""The statistics of many objects at once (``stats_of_objects``) equal each object's own
``table_stats``, on random tables with nulls, NaN, infinities, extreme integers, nested and
fixed-size lists, and on the sample file cut into objects."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_support import sample_events

from skyhook_dask.formats import manifest as mf
from skyhook_dask.formats.segment_stats import stats_of_objects

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)


def maybe(values: st.SearchStrategy[Any], nulls: bool) -> st.SearchStrategy[Any]:
    return st.none() | values if nulls else values


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 24))
    nulls = draw(st.booleans())

    def column(values: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(maybe(values, nulls), min_size=rows, max_size=rows))

    def lists(values: st.SearchStrategy[Any], max_size: int = 4) -> st.SearchStrategy[Any]:
        return st.lists(maybe(values, nulls), max_size=max_size)

    triples = st.lists(maybe(st.integers(-5, 5), nulls), min_size=3, max_size=3)
    columns = {
        "i64": pa.array(column(INT64), pa.int64()),
        "u64": pa.array(column(UINT64), pa.uint64()),
        "i16": pa.array(column(st.integers(-(2**15), 2**15 - 1)), pa.int16()),
        "f64": pa.array(column(FLOATS), pa.float64()),
        "f32": pa.array(column(st.floats(width=32)), pa.float32()),
        "flag": pa.array(column(st.booleans()), pa.bool_()),
        "text": pa.array(column(st.text(max_size=3)), pa.string()),
        "jagged": pa.array(column(lists(FLOATS)), pa.list_(pa.float64())),
        "nested": pa.array(
            column(lists(lists(st.integers(-9, 9)), 3)), pa.list_(pa.list_(pa.int32()))
        ),
        "fixed": pa.array(column(triples), pa.list_(pa.int64(), 3)),
        "flags": pa.array(column(lists(st.booleans())), pa.large_list(pa.bool_())),
    }
    return pa.table(columns)


@st.composite
def cut(draw: st.DrawFn, table_strategy: st.SearchStrategy[pa.Table]) -> tuple[pa.Table, list[int]]:
    """A table, maybe a slice of a larger one, and increasing object bounds over it."""
    table = draw(table_strategy)
    if draw(st.booleans()) and table.num_rows:
        start = draw(st.integers(0, table.num_rows))
        table = table.slice(start, draw(st.integers(0, table.num_rows - start)))
    inner = draw(st.lists(st.integers(0, table.num_rows), max_size=6))
    return table, [0, *sorted(inner), table.num_rows]


def expected(table: pa.Table, bounds: list[int]) -> list[dict[str, dict[str, Any]]]:
    return [mf.table_stats(table.slice(start, stop - start)) for start, stop in pairwise(bounds)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut(tables()))
def test_equal_to_each_objects_own_statistics(case: tuple[pa.Table, list[int]]) -> None:
    table, bounds = case
    result = stats_of_objects(table, bounds)
    assert result.equals(mf.stats_table(expected(table, bounds), table.schema))
    assert mf.stats_rows(result, table.column_names) == expected(table, bounds)


def test_the_sample_file_in_objects_of_37_rows() -> None:
    events = sample_events()
    bounds = [*range(0, events.num_rows, 37), events.num_rows]
    rows = mf.stats_rows(stats_of_objects(events, bounds), events.column_names)
    assert rows == expected(events, bounds)
    met = events.column("MET_pt").to_numpy()
    assert rows[1]["MET_pt"]["max"] == float(np.max(met[37:74]))
