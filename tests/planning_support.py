"""Ground truth for the planning tests: the sample Events tree as an object holds it, and a
numpy/awkward evaluation of bound expressions to check selections against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import uproot

from skyhook_dask.data import DATA_DIR
from skyhook_dask.query.expr import Call, Column, Expr, Literal

SAMPLE = DATA_DIR / "nano_dy.root"
BRANCHES = [
    "run", "luminosityBlock", "event", "nMuon", "Muon_pt", "Muon_eta", "Muon_charge",
    "Muon_tightId", "MET_pt", "PV_npvs", "HLT_IsoMu24", "Jet_pt",
]  # fmt: skip


def sample_events() -> pa.Table:
    """The sample file's Events tree as an object holds it: event_id first, then branches."""
    arrays = uproot.open(SAMPLE)["Events"].arrays(BRANCHES, library="ak")
    table = ak.to_arrow_table(arrays, extensionarray=False)
    return table.add_column(0, "event_id", pa.array(np.arange(len(table), dtype=np.int64)))


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
    "to_float64": lambda a: ak.values_astype(a, np.float64),
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
