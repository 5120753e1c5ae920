"""The NanoAOD-like generator: shape, determinism, realistic multiplicities."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from skyhook_dask.cli import main
from skyhook_dask.ingest.generate import COLLECTIONS, Z_FRACTION, Z_MASS, generate_nanoaod

N = 20_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "nano.root"
    return generate_nanoaod(path, N, seed=3, events_per_basket=6000)


def test_layout(generated: Path) -> None:
    with uproot.open(generated) as root:
        assert sorted(root.keys()) == ["Events;1", "Runs;1"]
        events = root["Events"]
        assert events.num_entries == N and len(events.keys()) >= 100
        types = {b.name: b.typename for b in events.branches}
        expected = {
            "run": "uint32_t",
            "luminosityBlock": "uint32_t",
            "event": "uint64_t",
            "MET_pt": "float",
            "PV_npvs": "int32_t",
            "HLT_IsoMu24": "bool",
            "nMuon": "int32_t",
            "Muon_pt": "float[]",
            "Muon_charge": "int32_t[]",
            "Muon_tightId": "bool[]",
            "Electron_eta": "float[]",
            "Jet_btagDeepFlavB": "float[]",
            "Jet_jetId": "int32_t[]",
        }
        assert {k: types[k] for k in expected} == expected
        assert events["Muon_pt"].count_branch.name == "nMuon"
        assert events["MET_pt"].num_baskets == 4  # written in chunks of 6000


def test_values_are_physical(generated: Path) -> None:
    with uproot.open(generated) as root:
        events = root["Events"].arrays()
        runs = root["Runs"].arrays()
    assert ak.all(events.run == 1)
    np.testing.assert_array_equal(ak.to_numpy(events.event), np.arange(1, N + 1))
    assert ak.all(events.luminosityBlock == np.arange(N) // 1000 + 1)
    for name, mean, eta_max, _mass, pt_min, _scale in COLLECTIONS:
        counts = ak.to_numpy(events[f"n{name}"])
        np.testing.assert_array_equal(counts, ak.to_numpy(ak.num(events[f"{name}_pt"])))
        # Poisson multiplicities, plus a Z's pair of muons in a fraction of the events
        extra = 2 * Z_FRACTION if name == "Muon" else 0.0
        extra_var = 4 * Z_FRACTION * (1 - Z_FRACTION) if name == "Muon" else 0.0
        assert abs(counts.mean() - mean - extra) < 5 * np.sqrt((mean + extra_var) / N)
        assert abs(counts.var() / (mean + extra_var) - 1) < 0.1
        assert ak.min(events[f"{name}_pt"]) >= pt_min
        assert ak.max(abs(events[f"{name}_eta"])) <= eta_max
    charges = ak.flatten(events.Muon_charge)
    assert set(np.unique(ak.to_numpy(charges))) == {-1, 1}
    assert runs.genEventCount.tolist() == [N]
    assert runs.genEventSumw[0] == pytest.approx(float(ak.sum(events.genWeight)))


def test_z_peak(generated: Path) -> None:
    """Opposite-charge dimuon masses peak at the Z: about Z_FRACTION of the events put a pair
    within 3 GeV of it, over a combinatorial background three times lower per GeV."""
    with uproot.open(generated) as root:
        m = root["Events"].arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge"])
    a, b = ak.unzip(ak.argcombinations(m.Muon_pt, 2))  # index pairs
    pt, eta, phi = (ak.values_astype(m[f"Muon_{v}"], np.float64) for v in ("pt", "eta", "phi"))
    mass = np.sqrt(2 * pt[a] * pt[b] * (np.cosh(eta[a] - eta[b]) - np.cos(phi[a] - phi[b])))
    mass = ak.flatten(mass[m.Muon_charge[a] != m.Muon_charge[b]]).to_numpy()
    counts, _ = np.histogram(mass, bins=[60, 70, Z_MASS - 3, Z_MASS + 3, 120])
    assert 0.7 * Z_FRACTION * N < counts[2] < 1.1 * Z_FRACTION * N
    assert counts[2] / 6 > 3 * counts[0] / 10  # per GeV: the peak over the side band


def test_deterministic(tmp_path: Path, generated: Path) -> None:
    again = generate_nanoaod(
        tmp_path / "again.root", N, seed=3, events_per_basket=6000, compression="zlib"
    )
    other = generate_nanoaod(tmp_path / "other.root", N, seed=4, events_per_basket=6000)
    with uproot.open(generated) as a, uproot.open(again) as b, uproot.open(other) as c:
        first, second = a["Events"].arrays(), b["Events"].arrays()
        assert first.fields == second.fields
        for field in first.fields:
            assert ak.array_equal(first[field], second[field], dtype_exact=True), field
        assert not ak.array_equal(first.Muon_pt, c["Events"]["Muon_pt"].array())


def test_options_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = generate_nanoaod(tmp_path / "few.root", 10, n_extra_branches=0, compression=None)
    with uproot.open(path) as root:
        assert not any(k.startswith("Extra_") for k in root["Events"].keys(recursive=False))
    empty = generate_nanoaod(tmp_path / "empty.root", 0)
    with uproot.open(empty) as root:
        assert root["Events"].num_entries == 0
    assert main(["generate", str(tmp_path / "cli.root"), "--events", "123", "--seed", "5"]) == 0
    assert "wrote 123 events" in capsys.readouterr().out
    with uproot.open(tmp_path / "cli.root") as root:
        assert root["Events"].num_entries == 123
        assert len(root["Events"].keys()) == 108
    with pytest.raises(ValueError, match="compression"):
        generate_nanoaod(tmp_path / "x.root", 1, compression="brotli")
