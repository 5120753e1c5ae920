"""Histograms filled inside the storage: :func:`histogram` returns a scikit-hep ``hist.Hist``.

Each object is asked for its histogram of the selected events (``skyhook.hist``); the partial
histograms are added up. Values are query-language expressions (``Jet_pt[abs(Jet_eta) < 1]``
fills every central jet), ``where`` an event-level predicate, ``weight`` an expression per
event or per element.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import dask

from ..catalog.model import Dataset, File
from ..exceptions import ProtocolError, QueryError
from ..formats.histogram import Axis, Histogram
from ..query.parser import parse_expression
from ..runtime.mappers import OnDask
from ..runtime.plugin import register_store_plugin
from ..runtime.reductions import FilledHistogram, fill_histogram, histogram_graph
from .common import mapper_for, parse, plan_values

__all__ = ["histogram"]

_AXIS, _WEIGHT = "axis {}", "weight"


def histogram(
    dataset: str | Dataset | File,
    values: str | Sequence[str],
    *,
    bins: Any = 50,
    range: Any = None,  # numpy.histogram's name
    where: str | None = None,
    weight: str | None = None,
    store: str | os.PathLike[str] | None = None,
    tree: str = "Events",
    client: Any = None,
    compute: bool = True,
) -> Any:
    """The histogram of ``values`` (one expression, or one per axis, up to three) over the
    events of ``dataset`` where ``where`` holds, filled inside the storage.

    ``bins`` and ``range`` read as in ``numpy.histogram``: a number of regular bins over
    ``range=(low, high)``, or the bin edges; with several values, one of each per axis.
    List values fill one entry per element (per-event values are repeated for each element of
    their event); null values fill nothing; NaN goes to the overflow bin, as in ``hist``.
    The tasks run on the Dask ``client`` (default: the current one, if any; False: none),
    the partial histograms added in a tree of tasks, else here. Returns a ``hist.Hist``
    (``Int64`` storage, or ``Weight`` with a weight) whose ``metadata`` holds what the storage
    did (objects scanned, skipped, answered by statistics; bytes returned) -- or with
    ``compute=False`` a ``dask.delayed`` one, so that many histograms share one graph
    (``dask.compute(h1, h2)``).
    """
    texts = [values] if isinstance(values, str) else list(values)
    axes_bins, axes_range = _per_axis(bins, range, len(texts))
    items = [(_AXIS.format(n), parse(t, f"value {t!r}")) for n, t in enumerate(texts)]
    if weight is not None:
        items.append((_WEIGHT, parse(weight, "the weight")))
    # Axes are checked before anything is read.
    ranges = enumerate(zip(axes_bins, axes_range, strict=True))
    spec = _histogram([_axis(b, r, n) for n, (b, r) in ranges])
    context = "in the histogram"
    scan, bound = plan_values(dataset, items, where, store=store, tree=tree, context=context)
    axes = tuple(
        Axis(bound[_AXIS.format(n)], a.bins, a.low, a.high, a.edges)
        for n, a in enumerate(spec.axes)
    )
    spec = _histogram(list(axes), bound.get(_WEIGHT))
    mapper = mapper_for(client, scan.store_url)
    if not compute or isinstance(mapper, OnDask):
        graph = dask.delayed(_as_hist, pure=True)(histogram_graph(scan, spec), texts, spec)
        if not compute:
            return graph
        register_store_plugin(mapper.client, scan.store_url)
        return mapper.client.compute(graph).result()
    label = f"hist-skyhook-{scan.layout.dataset_name}"
    return _as_hist(fill_histogram(scan, spec, mapper, label=label), texts, spec)


def _as_hist(filled: FilledHistogram, texts: list[str], spec: Histogram) -> Any:
    """The ``hist.Hist`` of a filled histogram, its axes labelled with their values' text."""
    import hist

    weighted = spec.weight is not None
    storage = hist.storage.Weight() if weighted else hist.storage.Int64()
    hist_axes = [_hist_axis(a, t) for a, t in zip(spec.axes, texts, strict=True)]
    result = hist.Hist(*hist_axes, storage=storage)
    view = result.view(flow=True)
    if weighted:
        view.value, view.variance = filled.sumw, filled.sumw2
    else:
        view[...] = filled.counts
    result.metadata = {
        "objects_scanned": filled.objects_scanned,
        "objects_skipped": filled.objects_skipped,
        "objects_from_statistics": filled.objects_from_statistics,
        "bytes_returned": filled.metrics.bytes_returned,
        "rows_in": filled.metrics.rows_in,
        "rows_selected": filled.metrics.rows_out,
    }
    return result


def _per_axis(bins: Any, range_: Any, n: int) -> tuple[list[Any], list[Any]]:
    """``bins`` and ``range`` as one entry per axis."""
    if n == 1:
        return [bins], [range_]
    bins_list = list(bins) if isinstance(bins, Sequence) else [bins] * n
    ranges = [None] * n if range_ is None else list(range_)
    if len(bins_list) != n or len(ranges) != n:
        raise QueryError(f"{n} values need {n} bins and {n} ranges (one per axis)")
    return bins_list, ranges


def _axis(bins: Any, range_: Any, n: int) -> Axis:
    placeholder = parse_expression("x")
    if isinstance(bins, Sequence) and not isinstance(bins, str):
        if range_ is not None:
            raise QueryError(f"axis {n}: give bin edges or a range, not both")
        return Axis(placeholder, edges=tuple(float(e) for e in bins))
    if isinstance(bins, bool) or not isinstance(bins, int):
        raise QueryError(f"axis {n}: bins is a number of bins or a list of edges, not {bins!r}")
    if range_ is None:
        raise QueryError(f"axis {n}: {bins} regular bins need a range (low, high)")
    try:
        low, high = (float(v) for v in range_)
    except (TypeError, ValueError):
        raise QueryError(
            f"axis {n}: the range is two numbers (low, high), not {range_!r}"
        ) from None
    return Axis(placeholder, bins, low, high)


def _histogram(axes: list[Axis], weight: Any = None) -> Histogram:
    spec = Histogram(tuple(axes), weight)
    try:
        spec.check()
    except ProtocolError as exc:
        raise QueryError(f"bad histogram: {exc}") from None
    return spec


def _hist_axis(axis: Axis, text: str) -> Any:
    import hist

    if axis.edges:
        return hist.axis.Variable(list(axis.edges), label=text)
    return hist.axis.Regular(axis.bins, axis.low, axis.high, label=text)
