"""Reductions computed inside the storage: :func:`histogram` (a ``hist.Hist``) and
:func:`aggregate` (count, sum, min, max, mean). Each object returns its partial result of the
selected events -- a few kilobytes whatever the selectivity -- and the partials are combined
here, on the Dask workers' results when a client is current.

Layer: front end. Imports ``runtime``, ``plan`` and below.
"""

from __future__ import annotations

from .aggregate import aggregate
from .histogram import histogram

__all__ = ["aggregate", "histogram"]
