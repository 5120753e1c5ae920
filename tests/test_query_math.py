"""Math in queries -- sqrt, exp, log, trigonometric and hyperbolic functions, floor, ceil,
atan2, hypot and ``**`` -- against awkward on the ROOT file, on every backend (Ceph through the
C++ class: strict, no fallback).

sqrt, floor, ceil, abs and ``**`` are exact in both, so the selections are equal. The other
functions come from Arrow's kernels (the C library's), which may differ from numpy's in the
last bit: their selections must equal awkward's for every event not within a few ULP of the cut.
"""

from __future__ import annotations

import awkward as ak
import dask
import numpy as np
import pytest
import uproot

from skyhook_dask import SkyhookDM
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import QueryTypeError

SAMPLE = sample_path("nano_dimuon.root")
BRANCHES = ["event", "nMuon", "MET_pt", "MET_phi", "MET_sumEt", "Muon_pt", "Muon_eta", "PV_npvs"]

EXACT = [
    ("sqrt(MET_sumEt) > 20", lambda e: np.sqrt(e.MET_sumEt) > np.float32(20)),
    ("MET_pt ** 2 > 400", lambda e: e.MET_pt**2 > np.float32(400)),
    ("PV_npvs ** 2 >= 400", lambda e: e.PV_npvs**2 >= 400),
    ("-PV_npvs**2 < -400", lambda e: -(e.PV_npvs**2) < -400),
    ("floor(MET_pt / 10) == 3", lambda e: np.floor(e.MET_pt / 10.0) == 3),
    ("ceil(MET_phi) == 1", lambda e: np.ceil(e.MET_phi) == np.float32(1)),
    ("any(sqrt(Muon_pt) > 5)", lambda e: ak.any(np.sqrt(e.Muon_pt) > np.float32(5), axis=1)),
    ("count(floor(abs(Muon_eta)) == 0) >= 2",
     lambda e: ak.sum(np.floor(abs(e.Muon_eta)) == 0, axis=1) >= 2),
    ("sqrt(-MET_pt) > 0 or nMuon == 2", lambda e: e.nMuon == 2),  # NaN compares false
]  # fmt: skip
# (query, function of the events giving the value compared, cut)
APPROXIMATE = [
    ("exp(MET_phi) > 1.5", lambda e: np.exp(e.MET_phi), 1.5),
    ("log(MET_pt) < 3.2", lambda e: np.log(e.MET_pt), 3.2),
    ("log10(MET_sumEt) > 2.9", lambda e: np.log10(e.MET_sumEt), 2.9),
    ("sin(MET_phi) > 0.3", lambda e: np.sin(e.MET_phi), 0.3),
    ("cos(MET_phi) < 0.2", lambda e: np.cos(e.MET_phi), 0.2),
    ("tan(MET_phi) > 0.5", lambda e: np.tan(e.MET_phi), 0.5),
    ("atan2(MET_phi, 1.0) > 0.5", lambda e: np.arctan2(e.MET_phi, np.float32(1)), 0.5),
    ("asin(MET_phi / 4) > 0.2", lambda e: np.arcsin(e.MET_phi / np.float32(4)), 0.2),
    ("acos(MET_phi / 4) < 1.2", lambda e: np.arccos(e.MET_phi / np.float32(4)), 1.2),
    ("atan(MET_phi) > 0.6", lambda e: np.arctan(e.MET_phi), 0.6),
    ("tanh(MET_phi) > 0.4", lambda e: np.tanh(e.MET_phi), 0.4),
    ("sinh(MET_phi) > 1", lambda e: np.sinh(e.MET_phi), 1.0),
    ("cosh(MET_phi) > 2", lambda e: np.cosh(e.MET_phi), 2.0),
    ("hypot(MET_pt, MET_phi) > 30", lambda e: np.sqrt(e.MET_pt**2 + e.MET_phi**2), 30.0),
]


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(SAMPLE)["Events"].arrays(BRANCHES)


def _selected(dimuon_file: tuple[SkyhookDM, object], predicate: str) -> list[int]:
    sk, file = dimuon_file
    with dask.config.set({"skyhook.strict": True}):  # Ceph: the C++ class, never a fallback
        table = sk.runQuery(file, f"select {predicate}, project event")
    return table.column("event").to_pylist()


def test_exact_math_selects_what_awkward_selects(
    dimuon_file: tuple[SkyhookDM, object], events: ak.Array
) -> None:
    for query, rule in EXACT:
        with np.errstate(all="ignore"):
            expected = ak.to_list(events.event[rule(events)])
        assert _selected(dimuon_file, query) == expected, query


def test_other_math_agrees_with_awkward_away_from_the_cut(
    dimuon_file: tuple[SkyhookDM, object], events: ak.Array
) -> None:
    for query, value_of, cut in APPROXIMATE:
        with np.errstate(all="ignore"):
            values = ak.to_numpy(value_of(events)).astype(np.float64)
        above = ">" in query
        clear = ~np.isclose(values, cut, rtol=1e-6, atol=0)
        expected = set(ak.to_list(events.event[(values > cut if above else values < cut) & clear]))
        got = set(_selected(dimuon_file, query))
        undecided = set(ak.to_list(events.event[~clear]))
        assert got - undecided == expected, query
        assert 0 < len(expected) < len(events), query  # the cut selects something, not all


def test_math_errors_name_the_expression(dimuon_file: tuple[SkyhookDM, object]) -> None:
    sk, file = dimuon_file
    with pytest.raises(QueryTypeError, match="negative integer powers"):
        sk.runQuery(file, "select PV_npvs ** -1 > 0")
    with pytest.raises(QueryTypeError, match="not a number"):
        sk.runQuery(file, "select sqrt(nMuon > 1)")
    with pytest.raises(QueryTypeError, match="list of booleans per event"):
        sk.runQuery(file, "select sqrt(Muon_pt) > 1")
