"""Histograms the ``hist`` method fills inside the storage: axes, the cells of their bins, and
the one rule (shared with the C++ class) that puts a value in a bin.

Each axis has underflow and overflow cells around its bins: cell 0 is underflow, cells 1 to
``size`` the bins, cell ``size + 1`` overflow (where NaN goes too). A regular axis puts ``x`` in
bin ``int((x - low) / (high - low) * bins)`` when that fraction is in [0, 1), the formula of
boost-histogram (so of scikit-hep ``hist``); a variable axis puts it in the bin whose edges
``[e_i, e_i+1)`` hold it, the last edge itself in overflow. Cells of several axes are laid out
row-major, the first axis slowest, as ``hist.Hist.view(flow=True)`` lays them out.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import ProtocolError
from ..query.expr import Expr

__all__ = ["MAX_AXES", "MAX_CELLS", "Axis", "Histogram", "cell_indices"]

MAX_AXES = 3
# The result of one call holds at most this many cells (8 bytes each, 16 when weighted).
MAX_CELLS = 1 << 20


@dataclass(frozen=True)
class Axis:
    """One axis: the value it bins, and ``bins`` regular bins over [low, high) or the
    increasing ``edges`` of variable bins."""

    value: Expr
    bins: int = 0
    low: float = 0.0
    high: float = 0.0
    edges: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        return len(self.edges) - 1 if self.edges else self.bins

    def check(self, where: str) -> None:
        if self.edges:
            edges = self.edges
            if len(edges) < 2 or not all(math.isfinite(e) for e in edges):
                raise ProtocolError(f"{where}: variable edges must be 2 or more finite numbers")
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ProtocolError(f"{where}: variable edges must increase, not {list(edges)}")
            return
        if not 1 <= self.bins <= MAX_CELLS:
            raise ProtocolError(f"{where}: {self.bins} bins; an axis has 1 to {MAX_CELLS}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ProtocolError(
                f"{where}: the range ({self.low}, {self.high}) must be finite with low < high"
            )

    def cells(self, values: np.ndarray) -> np.ndarray:
        """The cell (0: underflow, size + 1: overflow and NaN) of each float64 value."""
        if self.edges:
            edges = np.asarray(self.edges, dtype=np.float64)
            index = np.searchsorted(edges, values, side="right")  # NaN sorts last: overflow
            return np.where(values == edges[-1], self.size + 1, index)
        with np.errstate(invalid="ignore", over="ignore"):
            z = (values - self.low) / (self.high - self.low)
            inside = (z >= 0) & (z < 1)
            bin_ = np.where(inside, z, 0) * self.bins
        return np.where(inside, bin_.astype(np.int64) + 1, np.where(z < 0, 0, self.size + 1))


@dataclass(frozen=True)
class Histogram:
    """What the ``hist`` method fills: one value per axis and an optional weight (each entry
    counts 1 without one)."""

    axes: tuple[Axis, ...]
    weight: Expr | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.size + 2 for axis in self.axes)

    def check(self) -> None:
        """ProtocolError for a histogram the class refuses: no axis or too many, bad bins."""
        if not 1 <= len(self.axes) <= MAX_AXES:
            raise ProtocolError(f"a histogram has 1 to {MAX_AXES} axes, not {len(self.axes)}")
        for n, axis in enumerate(self.axes):
            axis.check(f"axis {n}")
        cells = math.prod(self.shape)
        if cells > MAX_CELLS:
            raise ProtocolError(
                f"the histogram has {cells:,} cells with underflow and overflow; at most "
                f"{MAX_CELLS:,} fit one result"
            )


def cell_indices(histogram: Histogram, values: list[np.ndarray]) -> np.ndarray:
    """The flat (row-major) cell of each entry, given each axis's float64 values."""
    cells = [axis.cells(v).astype(np.int64) for axis, v in zip(histogram.axes, values, strict=True)]
    return np.ravel_multi_index(cells, histogram.shape) if len(cells) > 1 else cells[0]
