"""ADL benchmark queries 5-8 as coffea processors (the IRIS-HEP analysis-description-language
benchmarks; definitions as published, written here afresh).

* Q5: missing transverse energy of the events with an opposite-charge muon pair of invariant
  mass between 60 and 120 GeV;
* Q6: in events with at least three jets, the trijet whose mass is closest to 172.5 GeV: its pT,
  and the largest b-tag discriminant among its three jets;
* Q7: per event, the scalar sum of the pT of the jets with pT > 30 GeV that are farther than
  0.4 in delta-R from every light lepton with pT > 10 GeV;
* Q8: in events with at least three light leptons and a same-flavour opposite-charge pair, take
  the pair whose mass is closest to 91.2 GeV: the transverse mass of the missing transverse
  momentum with the highest-pT lepton not in that pair.

Each query's physics is one function of ``events`` that reads plain fields only
(``events.Muon.pt``, ``events.MET.phi``): NanoEvents from coffea, NanoEvents from Skyhook and
records zipped from uproot arrays (:func:`events_from_arrays`) all give it the same floats, so
every system fills the same histogram. ``preselect`` is what the storage may drop first: a
condition every event filled must meet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.nanoevents.methods import vector

TOP_MASS, Z_MASS = 172.5, 91.2


def _candidates(collection: Any, **extra: Any) -> ak.Array:
    """``collection``'s four-momenta (and ``extra`` fields) with coffea's Lorentz-vector
    behaviour; built from the fields alone, so every source of events gives the same vectors."""
    fields = {v: collection[v] for v in ("pt", "eta", "phi", "mass")}
    return ak.zip({**fields, **extra}, with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior)


def _leptons(events: Any) -> ak.Array:
    """Electrons then muons of each event, with their charge and flavour (11 or 13)."""
    flavours = [(events.Electron, 11), (events.Muon, 13)]
    return ak.concatenate(
        [
            _candidates(c, charge=c.charge, flavour=flavour * ak.ones_like(c.charge))
            for c, flavour in flavours
        ],
        axis=1,
    )


def dimuon_met(events: Any) -> dict[str, Any]:
    muons = _candidates(events.Muon, charge=events.Muon.charge)
    first, second = ak.unzip(ak.combinations(muons, 2))
    mass = (first + second).mass
    window = (first.charge != second.charge) & (mass > 60) & (mass < 120)
    return {"met": events.MET.pt[ak.any(window, axis=1)]}


def trijet(events: Any) -> dict[str, Any]:
    jets = _candidates(events.Jet, btag=events.Jet.btagDeepFlavB)
    jets = jets[ak.num(jets) >= 3]
    a, b, c = ak.unzip(ak.combinations(jets, 3))
    system = a + b + c
    best = ak.argmin(abs(system.mass - TOP_MASS), axis=1, keepdims=True)
    btag = np.maximum(np.maximum(a.btag, b.btag), c.btag)
    return {"pt": ak.flatten(system.pt[best]), "btag": ak.flatten(btag[best])}


def isolated_jet_ht(events: Any) -> dict[str, Any]:
    jets = _candidates(events.Jet)
    jets = jets[jets.pt > 30]
    leptons = _leptons(events)
    leptons = leptons[leptons.pt > 10]
    jet, lepton = ak.unzip(ak.cartesian([jets, leptons], nested=True))
    isolated = ak.all(jet.delta_r(lepton) > 0.4, axis=2)
    return {"ht": ak.sum(jets.pt[isolated], axis=1)}


def trilepton_mt(events: Any) -> dict[str, Any]:
    leptons = _leptons(events)
    enough = ak.num(leptons) >= 3
    leptons, met = leptons[enough], events.MET[enough]
    i, j = ak.unzip(ak.argcombinations(leptons, 2))
    first, second = leptons[i], leptons[j]
    sfos = (first.flavour == second.flavour) & (first.charge != second.charge)
    distance = ak.where(sfos, abs((first + second).mass - Z_MASS), np.inf)
    has_pair = ak.any(sfos, axis=1)
    best = ak.argmin(distance, axis=1, keepdims=True)
    index = ak.local_index(leptons)
    others = leptons[(index != ak.firsts(i[best])) & (index != ak.firsts(j[best]))]
    lead = ak.firsts(others[ak.argmax(others.pt, axis=1, keepdims=True)])
    mt = np.sqrt(2 * lead.pt * met.pt * (1 - np.cos(lead.phi - met.phi)))
    return {"mt": mt[has_pair]}


@dataclass(frozen=True)
class AdlCoffeaQuery:
    name: str
    title: str
    preselect: str | None  # in the query language, evaluated in the storage
    axes: Mapping[str, tuple[int, float, float, str]]  # value -> bins, low, high, label
    branches: tuple[str, ...]  # what uproot reads
    physics: Callable[[Any], dict[str, Any]]

    def fill(self, events: Any) -> dict[str, hist.Hist]:
        values = self.physics(events)
        out = {}
        for key, (bins, low, high, label) in self.axes.items():
            axis = hist.axis.Regular(bins, low, high, name=key, label=label)
            out[key] = hist.Hist(axis, storage=hist.storage.Int64()).fill(values[key])
        return out


class AdlProcessor(processor.ProcessorABC):  # type: ignore[misc]
    """One query's histograms from each chunk of events; coffea sums them."""

    def __init__(self, query: AdlCoffeaQuery) -> None:
        self.query = query

    def process(self, events: Any) -> dict[str, hist.Hist]:
        return self.query.fill(events)

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


_P4 = ("pt", "eta", "phi", "mass")
_LEPTONS = tuple(f"{c}_{v}" for c in ("Electron", "Muon") for v in (*_P4, "charge"))

COFFEA_QUERIES = (
    AdlCoffeaQuery(
        "Q5", "MET of events with an opposite-charge dimuon of 60-120 GeV",
        "count(Muon_charge > 0) >= 1 and count(Muon_charge < 0) >= 1",
        {"met": (100, 0, 200, "MET [GeV]")},
        ("MET_pt", *(f"Muon_{v}" for v in (*_P4, "charge"))), dimuon_met,
    ),
    AdlCoffeaQuery(
        "Q6", "trijet closest to the top mass: pT and largest b-tag", "nJet >= 3",
        {"pt": (100, 0, 300, "trijet pT [GeV]"), "btag": (100, 0, 1, "largest b-tag")},
        (*(f"Jet_{v}" for v in _P4), "Jet_btagDeepFlavB"), trijet,
    ),
    AdlCoffeaQuery(
        "Q7", "HT of jets (pT > 30) away from leptons (pT > 10)", None,
        {"ht": (100, 0, 500, "HT [GeV]")},
        (*(f"Jet_{v}" for v in _P4), *_LEPTONS), isolated_jet_ht,
    ),
    AdlCoffeaQuery(
        "Q8", "transverse mass of MET and the lepton outside the Z-like pair",
        "nMuon + nElectron >= 3",
        {"mt": (100, 0, 200, "transverse mass [GeV]")},
        ("MET_pt", "MET_phi", *_LEPTONS), trilepton_mt,
    ),
)  # fmt: skip


def events_from_arrays(arrays: ak.Array) -> ak.Array:
    """Flat NanoAOD branches (``Muon_pt``, ``MET_phi``) as records (``events.Muon.pt``)."""
    groups: dict[str, dict[str, Any]] = {}
    for name in arrays.fields:
        collection, _, member = name.partition("_")
        groups.setdefault(collection, {})[member] = arrays[name]
    return ak.zip({c: ak.zip(members) for c, members in groups.items()}, depth_limit=1)
