"""The ``hist`` method of the Python reference class: fill a histogram from the selected rows.

Entries: one per row when every axis value (and the weight) is one value per row; otherwise
one per element of the list values, which must have equal lengths in every row, with the
per-row values repeated for each element (awkward's broadcasting). A row where a list or a
per-row value is null, and an element where any value is null, fills nothing. Values are
binned as float64 (:mod:`skyhook_dask.formats.histogram`); counts are int64, weighted sums
float64 added in entry order.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import QueryTypeError
from ..formats.histogram import Histogram, cell_indices
from ..query.expr import Expr
from .evaluate import evaluate

__all__ = ["hist_table"]


def hist_table(selected: pa.Table, histogram: Histogram) -> pa.Table:
    """The filled histogram of ``selected``: one row per cell (see protocol.py)."""
    exprs = [axis.value for axis in histogram.axes]
    if histogram.weight is not None:
        exprs.append(histogram.weight)
    entries = _entries([evaluate(e, selected) for e in exprs], exprs)
    cells = cell_indices(histogram, entries[: len(histogram.axes)])
    size = math.prod(histogram.shape)
    if histogram.weight is None:
        counts = np.bincount(cells, minlength=size).astype(np.int64)
        return pa.table({"count": counts})
    weights = entries[-1]
    return pa.table(
        {
            # astype: numpy gives int64 zeros for no entries at all
            "sumw": np.bincount(cells, weights=weights, minlength=size).astype(np.float64),
            "sumw2": np.bincount(cells, weights=weights * weights, minlength=size).astype(
                np.float64
            ),
        }
    )


def _is_list(array: pa.Array) -> bool:
    return pa.types.is_list(array.type) or pa.types.is_large_list(array.type)


def _entries(values: list[pa.Array], exprs: list[Expr]) -> list[np.ndarray]:
    """Each value's entries as float64, aligned; entries with a null anywhere dropped."""
    rows = len(values[0])
    valid = np.ones(rows, dtype=bool)
    for value in values:
        if value.null_count:
            valid &= value.is_valid().to_numpy(zero_copy_only=False)
    lists = [(v, e) for v, e in zip(values, exprs, strict=True) if _is_list(v)]
    lengths = None
    for value, expr in lists:
        these = np.where(valid, np.diff(np.asarray(value.offsets, dtype=np.int64)), 0)
        if lengths is not None and not np.array_equal(these, lengths):
            row = int(np.flatnonzero(these != lengths)[0])
            raise QueryTypeError(
                f"the histogram's values {lists[0][1]} and {expr} differ in length in row "
                f"{row} ({lengths[row]} vs {these[row]}); fill lists of one collection"
            )
        lengths = these
    keep = pa.array(valid)
    entries, present = [], None
    for value in values:
        if _is_list(value):
            flat = value.filter(keep).flatten()
        elif lengths is not None:
            flat = value.take(pa.array(np.repeat(np.arange(rows), lengths)))
        else:
            flat = value.filter(keep)
        if pa.types.is_nested(flat.type):
            raise QueryTypeError(f"the histogram's value {exprs[len(entries)]} is not a number")
        numbers = pc.cast(flat, pa.float64(), safe=False)
        if numbers.null_count:
            mask = numbers.is_valid().to_numpy(zero_copy_only=False)
            present = mask if present is None else present & mask
        entries.append(numbers.fill_null(0.0).to_numpy(zero_copy_only=False))
    if present is not None:
        entries = [e[present] for e in entries]
    return entries
