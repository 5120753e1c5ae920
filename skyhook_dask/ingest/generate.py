"""A deterministic NanoAOD-like ROOT file generator (for tests and benchmarks).

``generate_nanoaod(path, n_events)`` writes a TTree ``Events`` shaped like CMS NanoAOD:
``run``/``luminosityBlock``/``event``, flat floats, ints and ``HLT_*``/``Flag_*`` bools, and
jagged ``Muon_*``, ``Electron_*`` and ``Jet_*`` collections with their ``nMuon``/``nElectron``/
``nJet`` counters and Poisson multiplicities; plus a one-entry ``Runs`` tree. A fraction
``Z_FRACTION`` of events also carry a Z boson decayed to an opposite-charge muon pair (a
Breit-Wigner mass peak at 91.2 GeV), so dimuon analyses find a resonance. Events are made
and written in chunks of ``events_per_basket``, so memory stays bounded for any ``n_events``.
The same arguments always give the same values (each chunk has its own seeded generator).
``rntuple=True`` writes the same columns, values and order as RNTuples instead of TTrees.

Command line: ``skyhook generate out.root --events 100000 --seed 1 [--rntuple]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

# Raised whenever the same arguments give different values, so cached files are remade.
GENERATOR_VERSION = 2
EVENTS_PER_LUMI = 1000
RUN = 1
HLT_PATHS = (
    "IsoMu24", "IsoMu27", "Mu50", "Ele32_WPTight_Gsf", "Ele35_WPTight_Gsf", "DoubleEle25_CaloIdL",
    "Mu17_TrkIsoVVL_Mu8_TrkIsoVVL", "PFMET120_PFMHT120_IDTight", "PFHT1050", "AK8PFJet500",
)  # fmt: skip
FLAGS = ("goodVertices", "globalSuperTightHalo2016Filter", "HBHENoiseFilter", "eeBadScFilter")
# (collection, mean multiplicity, |eta| limit, mass, minimum pt, pt scale)
COLLECTIONS = (
    ("Muon", 1.2, 2.4, 0.10566, 3.0, 25.0),
    ("Electron", 1.0, 2.5, 0.000511, 5.0, 25.0),
    ("Jet", 4.5, 4.7, None, 15.0, 40.0),
)
Z_FRACTION = 0.08
Z_MASS, Z_WIDTH = 91.1876, 2.4952
Z_MASS_RANGE = (50.0, 150.0)  # the Breit-Wigner is truncated here


def _types(n_extra: int) -> dict[str, Any]:
    types: dict[str, Any] = {
        "run": np.uint32,
        "luminosityBlock": np.uint32,
        "event": np.uint64,
        "MET_pt": np.float32,
        "MET_phi": np.float32,
        "MET_sumEt": np.float32,
        "MET_significance": np.float32,
        "PV_npvs": np.int32,
        "PV_npvsGood": np.int32,
        "PV_x": np.float32,
        "PV_y": np.float32,
        "PV_z": np.float32,
        "fixedGridRhoFastjetAll": np.float32,
        "genWeight": np.float32,
    }
    types.update({f"HLT_{p}": np.bool_ for p in HLT_PATHS})
    types.update({f"Flag_{f}": np.bool_ for f in FLAGS})
    types["Muon"] = _record_type(
        pt="float32", eta="float32", phi="float32", mass="float32", charge="int32",
        tightId="bool", pfRelIso04_all="float32", dxy="float32", dz="float32",
    )  # fmt: skip
    types["Electron"] = _record_type(
        pt="float32", eta="float32", phi="float32", mass="float32", charge="int32",
        cutBased="int32", pfRelIso03_all="float32", dxy="float32", dz="float32",
    )  # fmt: skip
    types["Jet"] = _record_type(
        pt="float32", eta="float32", phi="float32", mass="float32", btagDeepFlavB="float32",
        jetId="int32", nConstituents="int32", puId="int32", area="float32",
    )  # fmt: skip
    for i in range(n_extra):  # filler branches: alternate flat floats, ints and bools
        types[f"Extra_{i:03d}"] = (np.float32, np.int32, np.bool_)[i % 3]
    return types


def _record_type(**fields: str) -> str:
    return "var * {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def _collection(rng: np.random.Generator, n: int, spec: tuple[Any, ...]) -> ak.Array:
    name, mean, eta_max, mass, pt_min, pt_scale = spec
    counts = rng.poisson(mean, n)
    total = int(counts.sum())

    def f32(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float32)

    fields: dict[str, np.ndarray] = {
        "pt": f32(pt_min + rng.exponential(pt_scale, total)),
        "eta": f32(rng.uniform(-eta_max, eta_max, total)),
        "phi": f32(rng.uniform(-np.pi, np.pi, total)),
        "mass": f32(np.full(total, mass) if mass is not None else rng.gamma(4.0, 2.5, total)),
    }
    if name in ("Muon", "Electron"):
        fields["charge"] = rng.choice(np.array([-1, 1], dtype=np.int32), total)
        fields["dxy"] = f32(rng.normal(0.0, 0.01, total))
        fields["dz"] = f32(rng.normal(0.0, 0.03, total))
    if name == "Muon":
        fields["tightId"] = rng.random(total) < 0.8
        fields["pfRelIso04_all"] = f32(rng.exponential(0.15, total))
    elif name == "Electron":
        fields["cutBased"] = rng.integers(0, 5, total, dtype=np.int32)
        fields["pfRelIso03_all"] = f32(rng.exponential(0.12, total))
    elif name == "Jet":
        fields["btagDeepFlavB"] = f32(rng.beta(0.5, 3.0, total))
        fields["jetId"] = rng.choice(
            np.array([0, 2, 6], dtype=np.int32), total, p=[0.05, 0.15, 0.8]
        )
        fields["nConstituents"] = rng.poisson(20, total).astype(np.int32) + 1
        fields["puId"] = rng.integers(0, 8, total, dtype=np.int32)
        fields["area"] = f32(rng.normal(0.5, 0.02, total))
    return ak.unflatten(ak.zip(fields), counts)


def _z_muons(rng: np.random.Generator, n: int, muons: ak.Array) -> ak.Array:
    """``muons`` with a Z -> mu mu pair put first in a fraction ``Z_FRACTION`` of the events.
    The pair's mass is drawn from a truncated Breit-Wigner; the second muon's pT is the one
    that gives that mass (muons are nearly massless: m^2 = 2 pT1 pT2 (cosh deta - cos dphi))."""
    has_z = rng.random(n) < Z_FRACTION
    k = int(has_z.sum())
    low, high = (np.arctan((m - Z_MASS) / (Z_WIDTH / 2)) for m in Z_MASS_RANGE)
    mass = Z_MASS + Z_WIDTH / 2 * np.tan(rng.uniform(low, high, k))
    pt1 = 25.0 + rng.exponential(15.0, k)
    eta1 = rng.uniform(-2.1, 2.1, k)
    eta2 = np.clip(eta1 + rng.normal(0.0, 0.8, k), -2.4, 2.4)
    phi1 = rng.uniform(-np.pi, np.pi, k)
    dphi = np.pi + rng.normal(0.0, 0.3, k)  # nearly back to back
    phi2 = np.angle(np.exp(1j * (phi1 + dphi)))  # wrapped into [-pi, pi]
    pt2 = np.maximum(mass**2 / (2 * pt1 * (np.cosh(eta2 - eta1) - np.cos(dphi))), 3.0)
    charge = rng.choice(np.array([-1, 1], dtype=np.int32), k)

    def f32(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.stack([first, second], axis=1).ravel().astype(np.float32)

    pair = {
        "pt": f32(pt1, pt2),
        "eta": f32(eta1, eta2),
        "phi": f32(phi1, phi2),
        "mass": np.full(2 * k, 0.10566, dtype=np.float32),
        "charge": np.stack([charge, -charge], axis=1).ravel(),
        "dxy": rng.normal(0.0, 0.01, 2 * k).astype(np.float32),
        "dz": rng.normal(0.0, 0.03, 2 * k).astype(np.float32),
        "tightId": np.ones(2 * k, dtype=np.bool_),
        "pfRelIso04_all": rng.exponential(0.05, 2 * k).astype(np.float32),
    }
    pairs = ak.unflatten(ak.zip(pair), np.where(has_z, 2, 0))
    return ak.concatenate([pairs, muons], axis=1)


def make_events(seed: int, chunk: int, first_event: int, n: int, n_extra: int) -> dict[str, Any]:
    """Events ``[first_event, first_event + n)``, from a generator seeded by (seed, chunk)."""
    rng = np.random.default_rng([seed, chunk])
    event = np.arange(first_event, first_event + n, dtype=np.uint64)
    met_phi = rng.uniform(-np.pi, np.pi, n)
    data: dict[str, Any] = {
        "run": np.full(n, RUN, dtype=np.uint32),
        "luminosityBlock": (event // EVENTS_PER_LUMI + 1).astype(np.uint32),
        "event": event + 1,
        "MET_pt": rng.exponential(30.0, n).astype(np.float32),
        "MET_phi": met_phi.astype(np.float32),
        "MET_sumEt": rng.gamma(5.0, 150.0, n).astype(np.float32),
        "MET_significance": rng.chisquare(2, n).astype(np.float32),
    }
    npvs = rng.poisson(30, n).astype(np.int32)
    data.update(
        PV_npvs=npvs,
        PV_npvsGood=np.maximum(0, npvs - rng.poisson(2, n)).astype(np.int32),
        PV_x=rng.normal(0.0, 0.002, n).astype(np.float32),
        PV_y=rng.normal(0.0, 0.002, n).astype(np.float32),
        PV_z=rng.normal(0.0, 3.5, n).astype(np.float32),
        fixedGridRhoFastjetAll=rng.gamma(9.0, 2.0, n).astype(np.float32),
        genWeight=np.where(rng.random(n) < 0.02, -1.0, 1.0).astype(np.float32),
    )
    for path, rate in zip(HLT_PATHS, np.linspace(0.05, 0.4, len(HLT_PATHS)), strict=True):
        data[f"HLT_{path}"] = rng.random(n) < rate
    for flag in FLAGS:
        data[f"Flag_{flag}"] = rng.random(n) < 0.995
    for spec in COLLECTIONS:
        data[spec[0]] = _collection(rng, n, spec)
    # its own stream: the Z leaves every other column as it was without it
    data["Muon"] = _z_muons(np.random.default_rng([seed, chunk, 1]), n, data["Muon"])
    for i in range(n_extra):
        kind = i % 3
        if kind == 0:
            data[f"Extra_{i:03d}"] = rng.normal(i, 1.0, n).astype(np.float32)
        elif kind == 1:
            data[f"Extra_{i:03d}"] = rng.integers(-1000, 1000, n, dtype=np.int32)
        else:
            data[f"Extra_{i:03d}"] = rng.random(n) < 0.5
    return data


def _as_fields(data: dict[str, Any], types: dict[str, Any]) -> ak.Array:
    """``data`` as the TTree writes it, for an RNTuple: each collection becomes its counter
    ``nX`` (int32) and one ``X_member`` list per member, in the TTree's branch order."""
    flat: dict[str, Any] = {}
    for key, kind in types.items():
        if not isinstance(kind, str):
            flat[key] = data[key]
            continue
        collection = data[key]
        flat[f"n{key}"] = ak.num(collection).to_numpy().astype(np.int32)
        for member in ak.types.from_datashape(kind, highlevel=False).content.fields:
            flat[f"{key}_{member}"] = collection[member]
    return ak.zip(flat, depth_limit=1)


def generate_nanoaod(
    path: str | os.PathLike[str],
    n_events: int,
    *,
    seed: int = 0,
    n_extra_branches: int = 50,
    compression: str | None = "zstd",
    events_per_basket: int = 50_000,
    rntuple: bool = False,
) -> Path:
    """Write a NanoAOD-like file; returns its path. 50 extra branches give 108 in all."""
    if n_events < 0 or events_per_basket < 1 or n_extra_branches < 0:
        raise ValueError("n_events and n_extra_branches must be >= 0, events_per_basket >= 1")
    codecs = {"zstd": uproot.ZSTD(5), "zlib": uproot.ZLIB(4), "lz4": uproot.LZ4(4), None: None}
    if compression not in codecs:
        raise ValueError(f"compression must be one of {sorted(map(str, codecs))}")
    path = Path(path)
    types = _types(n_extra_branches)
    with uproot.recreate(path, compression=codecs[compression]) as out:
        events: Any = None if rntuple else out.mktree("Events", types, title="Events")
        sum_weights = 0.0
        starts = range(0, n_events, events_per_basket)
        if rntuple and not starts:
            starts = range(1)  # an RNTuple takes its fields from data: one empty chunk
        for chunk, first in enumerate(starts):
            n = min(events_per_basket, n_events - first)
            data = make_events(seed, chunk, first, n, n_extra_branches)
            sum_weights += float(np.sum(data["genWeight"], dtype=np.float64))
            if not rntuple:
                events.extend(data)
            elif events is None:
                events = out.mkrntuple("Events", _as_fields(data, types))
            else:
                events.extend(_as_fields(data, types))
        runs = {
            "run": np.array([RUN], dtype=np.uint32),
            "genEventCount": np.array([n_events], dtype=np.int64),
            "genEventSumw": np.array([sum_weights]),
        }
        if rntuple:
            out.mkrntuple("Runs", ak.zip(runs))
        else:
            out.mktree("Runs", {k: v.dtype for k, v in runs.items()}, title="Runs").extend(runs)
    return path
