"""The benchmark runner in its smallest mode: its JSON follows the schema, and every system's
answer matches the ground truth computed here with uproot + awkward from the generated file.
Correctness only: no timing is asserted (performance is measured by benchmarks/run.py)."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the benchmarks/ package

jsonschema = pytest.importorskip("jsonschema")

from benchmarks.data import CHECKSUM_COLUMN, SELECTION_BRANCH, SELECTIVITIES  # noqa: E402
from benchmarks.runner import options_for, run_benchmark  # noqa: E402
from benchmarks.schema import validate  # noqa: E402

EVENTS = 2_000
SYSTEMS = {"skyhook_pushdown", "skyhook_client", "uproot", "parquet"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-data")


def _run(store_url: str, data_dir: Path, scaling: tuple[int, ...] = ()) -> dict[str, Any]:
    options = options_for(
        "smoke",
        events=EVENTS,
        store=store_url,
        data_dir=data_dir,
        scaling_workers=scaling,
        verbose=False,
    )
    return run_benchmark(options, keep_answers=True)


def _ground_truth(source: str) -> tuple[np.ndarray, ak.Array]:
    with uproot.open(source) as f:
        tree = f["Events"]
        return tree[SELECTION_BRANCH].array(library="np"), tree[CHECKSUM_COLUMN].array()


def _check_result(result: dict[str, Any], objects: list[tuple[int, int, int]]) -> None:
    """``objects``: (first event, stop event, stored bytes) of each object of the dataset."""
    answers = result.pop("_answers")
    validate(result)
    assert result["events"] == EVENTS
    cli = result["cli"]
    assert all(cli[c]["wall_s"] >= cli[c]["wall_s_min"] > 0 for c in ("help", "ls", "query"))
    assert cli["query_vs_uproot"] == cli["query"]["wall_s"] / cli["uproot_read"]["wall_s"]
    assert result["branches"] >= 100
    assert result["objects"] == len(objects)
    met, checksum_values = _ground_truth(result["source"])

    cases = result["cases"]
    assert {c["system"] for c in cases} == SYSTEMS
    assert {c["selectivity"] for c in cases} == set(SELECTIVITIES)
    assert {c["n_columns"] for c in cases} == {1, 3, 10, "all"}
    for case in cases:
        mask = met >= np.float32(case["threshold"])
        expected_rows = int(np.count_nonzero(mask))
        expected_sum = float(ak.sum(ak.values_astype(checksum_values[mask], np.float64)))
        # Objects whose MET_pt maximum is below the threshold are skipped by their statistics.
        scanned = [o for o in objects if mask[o[0] : o[1]].any()]
        where = f"{case['system']} at {case['selectivity']} / {case['n_columns']} columns"
        assert case["rows_out"] == expected_rows, where
        assert math.isclose(case["checksum"], expected_sum, rel_tol=1e-9, abs_tol=1e-6), where
        assert case["agrees"], where
        if case["selectivity"] < 1:  # the threshold selects about the asked fraction
            assert abs(expected_rows - case["selectivity"] * EVENTS) <= 2, where
        if case["system"] == "skyhook_client":  # whole objects cross to the client
            assert case["bytes_from_storage"] == sum(o[2] for o in scanned), where
        if case["system"] == "skyhook_pushdown":
            storage = case["skyhook"]
            assert storage["calls"] == len(scanned), where
            assert storage["rows_in"] == sum(o[1] - o[0] for o in scanned), where
            assert storage["object_bytes"] == sum(o[2] for o in scanned), where
            assert 0 < storage["bytes_read"] <= storage["object_bytes"], where
            assert case["bytes_from_storage"] == storage["bytes_returned"], where
            if case["n_columns"] != "all" and case["selectivity"] <= 0.01:
                assert case["bytes_from_storage"] < storage["object_bytes"] / 10, where

    # Pushdown and client-side filtering return the very same tables; Parquet the same rows.
    for (selectivity, n_columns), by_system in answers.items():
        pushed = by_system["skyhook_pushdown"].table
        assert pushed.equals(by_system["skyhook_client"].table), (selectivity, n_columns)
        parquet = by_system["parquet"].table
        assert parquet.to_pylist() == pushed.to_pylist(), (selectivity, n_columns)

    skim = result["skim"]  # object-level masks in storage: what awkward computes, fewer bytes
    assert skim["agrees"]
    with uproot.open(result["source"]) as f:
        events = f["Events"].arrays(["Jet_pt", "Jet_eta", "Muon_pt"])
    central = events.Jet_pt[abs(events.Jet_eta) < np.float32(1)]
    hard = events.Muon_pt[events.Muon_pt > np.float32(20)]
    assert skim["elements_out"] == ak.count(central) + ak.count(hard) > 0
    assert skim["events"] == EVENTS
    moved = {system: r["bytes_from_storage"] for system, r in skim["systems"].items()}
    assert moved["skyhook_pushdown"] > 0
    assert math.isclose(skim["bytes_ratio"], moved["skyhook_pushdown"] / moved["uproot"])

    # ADL Q1-Q4: histograms in storage identical to uproot + hist, a few KiB each.
    with uproot.open(result["source"]) as f:
        e = f["Events"].arrays(["MET_pt", "Jet_pt", "Jet_eta"])
    two_jets = ak.sum(e.Jet_pt > np.float32(40), axis=1) >= 2
    entries = [len(e), ak.count(e.Jet_pt), ak.count(central), int(ak.sum(two_jets))]
    assert [r["query"] for r in result["adl"]] == [f"Q{i}" for i in range(1, 9)]
    for record, expected_entries in zip(result["adl"][:4], entries, strict=True):
        assert record["identical"], record["query"]
        assert record["entries"] == expected_entries > 0, record["query"]
        assert record["systems"]["skyhook"]["bytes_from_storage"] < 64 * 1024, record["query"]
    # ADL Q5-Q8: coffea processors, identical on Skyhook, coffea's Runner and uproot; how many
    # entries each histogram has is counted here without the processors' code.
    entries = _adl_5_to_8_entries(result["source"])
    for record in result["adl"][4:]:
        assert record["identical"], record["query"]
        assert set(record["systems"]) == {"skyhook", "coffea", "uproot"}, record["query"]
        assert record["entries"] == entries[record["query"]] > 0, record["query"]

    summary = result["summary"]
    assert (summary["selectivity"], summary["n_columns"]) == (0.01, 3)
    assert summary["all_answers_agree"]
    assert summary["bytes_returned"] / summary["selected_nbytes"] == summary["bytes_ratio"]

    broken = copy.deepcopy(result)
    del broken["cases"][0]["rows_out"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def _adl_5_to_8_entries(source: str) -> dict[str, int]:
    """Events filled by ADL Q5-Q8, with numpy's float64 kinematics: Q5 events with an
    opposite-charge dimuon of 60-120 GeV; Q6 events with three jets; Q7 every event; Q8 events
    with three leptons and a same-flavour opposite-charge pair."""
    fields = ("pt", "eta", "phi", "mass", "charge")
    with uproot.open(source) as f:
        e = f["Events"].arrays([f"{c}_{v}" for c in ("Muon", "Electron") for v in fields])
        n_jet = f["Events"]["nJet"].array(library="np")

    def mass(c: str, a: ak.Array, b: ak.Array) -> ak.Array:
        pt, eta, phi, m = (ak.values_astype(e[f"{c}_{v}"], np.float64) for v in fields[:4])
        energy = np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        total = (energy[a] + energy[b]) ** 2
        return np.sqrt(total - (px[a] + px[b]) ** 2 - (py[a] + py[b]) ** 2 - (pz[a] + pz[b]) ** 2)

    def pairs(c: str) -> tuple[ak.Array, ak.Array, ak.Array]:  # indices, opposite charges
        a, b = ak.unzip(ak.argcombinations(e[f"{c}_pt"], 2))
        return a, b, e[f"{c}_charge"][a] != e[f"{c}_charge"][b]

    a, b, opposite = pairs("Muon")
    m = mass("Muon", a, b)
    q5 = ak.any(opposite & (m > 60) & (m < 120), axis=1)
    sfos = ak.any(pairs("Muon")[2], axis=1) | ak.any(pairs("Electron")[2], axis=1)
    leptons = ak.num(e.Muon_pt) + ak.num(e.Electron_pt)
    return {
        "Q5": int(ak.sum(q5)),
        "Q6": int(np.sum(n_jet >= 3)),
        "Q7": len(n_jet),
        "Q8": int(ak.sum(sfos & (leptons >= 3))),
    }


def _objects(store_url: str) -> list[tuple[int, int, int]]:
    """(first event, stop event, size in the store) of every object of the benchmark dataset."""
    from skyhook_dask.catalog.model import load_dataset

    dataset = load_dataset(store_url, "bench")
    store = dataset.store
    tree = dataset.getFiles()[0].tree("Events")
    return [(o.first_event, o.stop_event, store.stat(o.name).size) for o in tree.objects]


@pytest.fixture(scope="module")
def local_run(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> tuple[dict[str, Any], list[tuple[int, int, int]]]:
    """One smoke run on a local store (with Dask scaling on one worker), and its objects."""
    store_url = tmp_path_factory.mktemp("bench-store").as_uri()
    result = _run(store_url, data_dir, scaling=(1,))
    return result, _objects(store_url)


def test_runner_on_local_store(local_run: tuple[dict[str, Any], list[Any]]) -> None:
    result, objects = copy.copy(local_run[0]), local_run[1]
    _check_result(result, objects)
    assert result["objects"] > 1  # several objects, so per-object merging is exercised
    ingest = result["ingest"]
    assert ingest["events"] == EVENTS and ingest["objects"] == result["objects"]
    assert ingest["stored_bytes"] == sum(o[2] for o in objects)
    runs = result["scaling"]["runs"]
    assert {r["system"] for r in runs} == {"read_skyhook", "read_parquet"}
    for run in runs:
        assert run["rows_out"] == run["expected_rows"]


def test_plots_are_written(local_run: tuple[dict[str, Any], list[Any]], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.plots import make_plots

    result = {k: v for k, v in local_run[0].items() if k != "_answers"}
    written = make_plots(result, tmp_path / "plots")
    suffixes = ["time-vs-selectivity.png", "bytes-vs-selectivity.png", "scaling.png", "adl.png"]
    assert len(written) == len(suffixes)
    for path, suffix in zip(written, suffixes, strict=True):
        assert path.name == f"{result['name']}-{suffix}"
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.ceph
def test_runner_on_ceph(ceph_cluster: Any, data_dir: Path) -> None:
    result = _run(ceph_cluster.url, data_dir)
    _check_result(result, _objects(ceph_cluster.url))
    assert result["scaling"] is None
    assert result["machine"]["storage_cpu_measured"]  # the OSD's CPU time is known
    placement = result["placement"]  # one OSD serves every object (of every tree)
    assert placement["osds"]["0"]["primary_objects"] == placement["objects"]
    assert placement["objects"] >= len(_objects(ceph_cluster.url)) > 0


@pytest.mark.ceph
def test_quick_mode_holds_every_case(ceph_cluster: Any, data_dir: Path, tmp_path: Path) -> None:
    """`benchmarks/run.py --quick`, as a user runs it: every system x selectivity x columns."""
    out = tmp_path / "quick.json"
    argv = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick"]
    argv += ["--store", ceph_cluster.url, "--out", str(out), "--plots", str(tmp_path)]
    argv += ["--data-dir", str(data_dir), "--scaling-workers", ""]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    validate(result)
    cases = {(c["system"], c["selectivity"], c["n_columns"]) for c in result["cases"]}
    selectivities = {c["selectivity"] for c in result["cases"]}
    columns = {c["n_columns"] for c in result["cases"]}
    assert len(selectivities) == 4 and len(columns) == 4
    assert cases == {(s, f, n) for s in SYSTEMS for f in selectivities for n in columns}
    assert result["summary"]
