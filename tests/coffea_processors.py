"""Example coffea processors used by the coffea tests (and the notebook).

Both keep their outputs exact: histograms of unweighted counts and integer cut-flows, so a
run over Skyhook objects must equal coffea's Runner over the ROOT files bit for bit, whatever
the chunking.
"""

from __future__ import annotations

import os
from typing import Any

import awkward as ak
import hist
from coffea import processor


class DimuonProcessor(processor.ProcessorABC):
    """Opposite-sign muon pairs: their invariant mass, and a cut-flow.

    ``min_muons`` restricts the events first (``ak.num(events.Muon) >= min_muons``): the
    in-Python twin of a storage preselection ``nMuon >= min_muons``.
    """

    def __init__(self, min_muons: int | None = None) -> None:
        self.min_muons = min_muons

    def process(self, events: Any) -> dict[str, Any]:
        if self.min_muons is not None:
            events = events[ak.num(events.Muon) >= self.min_muons]
        dataset = events.metadata["dataset"]
        cutflow = {"events": len(events)}
        muons = events.Muon[(events.Muon.pt > 5) & (abs(events.Muon.eta) < 2.4)]
        cutflow["two_muons"] = int(ak.sum(ak.num(muons) >= 2))
        pairs = ak.combinations(muons, 2, fields=["first", "second"])
        pairs = pairs[pairs.first.charge * pairs.second.charge < 0]
        cutflow["opposite_sign"] = int(ak.sum(ak.num(pairs) > 0))
        mass = (pairs.first + pairs.second).mass
        cutflow["z_window"] = int(ak.sum(ak.any((mass > 60) & (mass < 120), axis=1)))
        mass_hist = (
            hist.Hist.new.StrCat([], growth=True, name="dataset")
            .Reg(60, 0.0, 150.0, name="mass", label=r"$m_{\mu\mu}$ [GeV]")
            .Double()
        )
        mass_hist.fill(dataset=dataset, mass=ak.flatten(mass))
        pt_hist = hist.Hist.new.Reg(50, 0.0, 100.0, name="pt").Int64()
        pt_hist.fill(pt=ak.flatten(muons.pt))
        return {"mass": mass_hist, "muon_pt": pt_hist, "cutflow": {dataset: cutflow}}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


class JetElectronProcessor(processor.ProcessorABC):
    """Jets and electrons: dijet masses from ``ak.combinations``, electron-jet separation
    from ``ak.cartesian``, jets' matched electrons through NanoAOD's cross-references."""

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata["dataset"]
        jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]
        electrons = events.Electron[events.Electron.pt > 10]
        cutflow = {
            "events": len(events),
            "two_jets": int(ak.sum(ak.num(jets) >= 2)),
            "electron": int(ak.sum(ak.num(electrons) >= 1)),
        }
        dijets = ak.combinations(jets, 2, fields=["j1", "j2"])
        dijet_mass = (dijets.j1 + dijets.j2).mass
        pairs = ak.cartesian({"e": electrons, "j": jets})
        delta_r = pairs.e.delta_r(pairs.j)
        cutflow["electron_near_jet"] = int(ak.sum(ak.any(delta_r < 0.4, axis=1)))
        matched = ak.drop_none(events.Jet.matched_electrons, axis=2)
        cutflow["jets_with_matched_electron"] = int(ak.sum(ak.num(matched, axis=2) > 0))
        axis = hist.axis.StrCategory([], growth=True, name="dataset")
        dijet_hist = hist.Hist(axis, hist.axis.Regular(50, 0.0, 500.0, name="mass")).fill(
            dataset=dataset, mass=ak.flatten(dijet_mass)
        )
        multiplicity = hist.Hist(axis, hist.axis.Integer(0, 12, name="njets")).fill(
            dataset=dataset, njets=ak.num(jets)
        )
        separation = hist.Hist(hist.axis.Regular(40, 0.0, 6.0, name="dr")).fill(
            dr=ak.flatten(delta_r)
        )
        return {
            "dijet_mass": dijet_hist,
            "njets": multiplicity,
            "electron_jet_dr": separation,
            "cutflow": {dataset: cutflow},
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


def chunk_metadata(events: Any) -> dict[str, Any]:
    """A processor function that touches no column: what each chunk's metadata says."""
    meta = events.metadata
    keys = ("dataset", "filename", "treename", "entrystart", "entrystop")
    return {"chunks": {tuple(meta[k] for k in keys)}, "events": len(events), "meta": [meta]}


def muon_count(events: Any) -> dict[str, Any]:
    """A processor function reading one collection: where it ran, and the muons it saw."""
    return {"pids": {os.getpid()}, "muons": int(ak.sum(ak.num(events.Muon)))}


def broken(events: Any) -> dict[str, Any]:
    """A processor function that fails: it asks for a collection the files do not have."""
    return {"x": events.NoSuchCollection}
