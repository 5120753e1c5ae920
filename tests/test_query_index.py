"""Leading objects: ``Muon_pt[0]``, ``Jet_pt[-1]`` -- against awkward on the ROOT file, on every
backend (Ceph through the C++ class: strict, no fallback).

An event without the element has a missing value, what awkward gives with
``ak.pad_none(x, n)[:, i]``; arithmetic with it is missing, and a comparison with it is false
(``ak.fill_none(comparison, False)``), so ``not (Muon_pt[2] > 5)`` keeps events with fewer than
three muons.
"""

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
from skyhook_dask.exceptions import QuerySyntaxError, QueryTypeError

SAMPLE = sample_path("nano_dimuon.root")
BRANCHES = ["event", "nMuon", "MET_pt", "Muon_pt", "Muon_eta", "Muon_charge", "Jet_pt"]


def at(array: Any, index: int) -> Any:
    """awkward's x[:, index] (index >= 0) with a missing value where the list is too short."""
    return ak.pad_none(array, index + 1, axis=1)[:, index]


def last(array: Any) -> Any:
    """x[:, -1], missing for an empty list."""
    return ak.firsts(array[:, ::-1])


def false_if_missing(mask: Any) -> Any:
    """A comparison with a missing element is false (ak.fill_none(..., False))."""
    return ak.fill_none(mask, False)


F = false_if_missing
CASES: list[tuple[str, Callable[[Any], Any]]] = [
    ("Muon_pt[0] > 25", lambda e: F(at(e.Muon_pt, 0) > np.float32(25))),
    (
        "nMuon >= 2 and Muon_charge[0] != Muon_charge[1]",
        lambda e: (e.nMuon >= 2) & F(at(e.Muon_charge, 0) != at(e.Muon_charge, 1)),
    ),
    ("Muon_pt[1] > 20", lambda e: F(at(e.Muon_pt, 1) > np.float32(20))),
    ("Jet_pt[-1] < 30", lambda e: F(last(e.Jet_pt) < np.float32(30))),
    ("Muon_pt[0] + Muon_pt[1] > 60", lambda e: F(at(e.Muon_pt, 0) + at(e.Muon_pt, 1) > 60)),
    ("abs(Muon_eta[0]) < 1 or nMuon == 0",
     lambda e: F(abs(at(e.Muon_eta, 0)) < 1) | (e.nMuon == 0)),
    ("not (Muon_pt[2] > 5)", lambda e: ~F(at(e.Muon_pt, 2) > np.float32(5))),
    ("sqrt(Muon_pt[0] * MET_pt) > 20", lambda e: F(np.sqrt(at(e.Muon_pt, 0) * e.MET_pt) > 20)),
    ("Jet_pt[100] > 0", lambda e: F(at(e.Jet_pt, 100) > 0)),
    ("Jet_pt[-9223372036854775808] > 0 or nMuon > 3", lambda e: e.nMuon > 3),
]  # fmt: skip


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(SAMPLE)["Events"].arrays(BRANCHES)


def test_indexed_values_select_what_awkward_selects(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    sk, file = dimuon_file
    for query, rule in CASES:
        expected = ak.to_list(events.event[ak.fill_none(rule(events), False)])
        with dask.config.set({"skyhook.strict": True}):  # Ceph: the C++ class, never a fallback
            table = sk.runQuery(file, f"select {query}, project event")
        assert table.column("event").to_pylist() == expected, query
        assert 0 < len(expected) < len(events) or query.startswith("Jet_pt[100]"), query


def test_index_errors_are_clear(dimuon_file: tuple[SkyhookDM, Any]) -> None:
    sk, file = dimuon_file
    with pytest.raises(QueryTypeError, match=r"MET_pt\[\.\.\.\] picks an element of a list"):
        sk.runQuery(file, "select MET_pt[0] > 1")
    with pytest.raises(QueryTypeError, match="mask nMuon must give a list of booleans"):
        sk.runQuery(file, "select Muon_pt[nMuon] > 1")  # not an index: a (wrong) mask
    with pytest.raises(QuerySyntaxError, match="unexpected character ':'"):
        sk.runQuery(file, "select Muon_pt[0:2] > 1")
    with pytest.raises(QuerySyntaxError, match="does not fit in 64 bits"):
        sk.runQuery(file, "select Muon_pt[9223372036854775808] > 1")
    with pytest.raises(QueryTypeError, match="list of booleans per event"):
        sk.runQuery(file, "select Muon_pt > Muon_pt[0]")
