"""Object-level selection: ``Jet_pt[abs(Jet_eta) < 1]`` keeps, per event, the jets whose mask is
true -- against awkward on the ROOT file, on every backend (Ceph through the C++ class: strict,
no fallback). Masked lists work wherever lists do: reductions, comparisons, indexing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import awkward as ak
import dask
import numpy as np
import pytest
import uproot

from skyhook_dask import SkyhookDM
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import QueryTypeError

SAMPLE = sample_path("nano_dimuon.root")
BRANCHES = ["event", "Jet_pt", "Jet_eta", "Jet_btagDeepB", "Muon_pt", "Muon_eta"]
F32 = np.float32


def first(array: Any) -> Any:
    return ak.fill_none(ak.firsts(array) > F32(60), False)


CASES: list[tuple[str, Callable[[Any], Any]]] = [
    ("sum(Jet_pt[Jet_pt > 30]) > 150",
     lambda e: ak.sum(e.Jet_pt[e.Jet_pt > F32(30)], axis=1) > 150),
    ("count(Jet_pt[Jet_pt > 30] > 50) >= 2",
     lambda e: ak.sum(e.Jet_pt[e.Jet_pt > F32(30)] > F32(50), axis=1) >= 2),
    ("len(Jet_pt[abs(Jet_eta) < 1]) >= 2",
     lambda e: ak.num(e.Jet_pt[abs(e.Jet_eta) < F32(1)]) >= 2),
    ("any(Muon_pt[abs(Muon_eta) < 1.2] > 25)",
     lambda e: ak.any(e.Muon_pt[abs(e.Muon_eta) < F32(1.2)] > F32(25), axis=1)),
    ("all(Jet_pt[Jet_btagDeepB > 0.5] > 40)",
     lambda e: ak.all(e.Jet_pt[e.Jet_btagDeepB > F32(0.5)] > F32(40), axis=1)),
    ("max(Jet_pt[abs(Jet_eta) > 2]) > 40",
     lambda e: ak.fill_none(ak.max(e.Jet_pt[abs(e.Jet_eta) > F32(2)], axis=1) > F32(40), False)),
    ("Jet_pt[Jet_btagDeepB > 0.3][0] > 60",
     lambda e: first(e.Jet_pt[e.Jet_btagDeepB > F32(0.3)])),
    ("sum(Jet_pt[Jet_pt > 30 and abs(Jet_eta) < 2.4]) > 2 * 60",
     lambda e: ak.sum(e.Jet_pt[(e.Jet_pt > F32(30)) & (abs(e.Jet_eta) < F32(2.4))], axis=1) > 120),
]  # fmt: skip


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(SAMPLE)["Events"].arrays(BRANCHES)


def test_masked_lists_select_what_awkward_selects(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    sk, file = dimuon_file
    for query, rule in CASES:
        expected = ak.to_list(events.event[rule(events)])
        with dask.config.set({"skyhook.strict": True}):  # Ceph: the C++ class, never a fallback
            table = sk.runQuery(file, f"select {query}, project event")
        assert table.column("event").to_pylist() == expected, query
        assert 0 < len(expected) < len(events), query


def test_a_mask_from_another_collection_names_both(dimuon_file: tuple[SkyhookDM, Any]) -> None:
    sk, file = dimuon_file
    strict = dask.config.set({"skyhook.strict": True})
    with strict, pytest.raises(QueryTypeError, match=r"Muon_pt, 5.*Jet_pt|Jet_pt.*Muon_pt, 5"):
        sk.runQuery(file, "select any(Jet_pt[Muon_pt > 5] > 30)")
    with pytest.raises(QueryTypeError, match="must give a list of booleans per event"):
        sk.runQuery(file, "select any(Jet_pt[Jet_pt] > 30)")
