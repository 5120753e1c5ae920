"""The notebooks in notebooks/ run from top to bottom, and what they show is right.

Each notebook runs in a fresh kernel of this very interpreter (a kernel spec written to a private
directory, so no globally registered kernel is needed or used). After the last cell a probe cell
prints the notebook's key variables as JSON; the quickstart's are checked against what uproot +
awkward compute from the sample files, the benchmark notebook's against a synthetic result file.
The committed notebooks must carry their outputs.

Re-execute and save the notebooks with outputs (machine paths scrubbed):
``.venv/bin/python tests/test_notebooks.py --save [quickstart benchmark_results ...]``
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
sys.path.insert(0, str(REPO))  # the benchmarks/ package, for its result schema

from skyhook_dask.data import sample_path  # noqa: E402

CELL_TIMEOUT_S = 120
KERNEL_NAME = "skyhook-notebook-test"
PROBE_MARK = "NOTEBOOK_VALUES "
QUICKSTART_FILES = ("nano_dimuon.root", "nano_dy.root")
MUON_BRANCHES = ["nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge"]

QUICKSTART_PROBE = """
import json as _json
_optimized = sel.optimize().expr
print("NOTEBOOK_VALUES " + _json.dumps({
    "backend": sk.store_url.split("://")[0],
    "phi": table.column("Muon_phi").to_pylist(),
    "rows_per_file": [t.num_rows for t in tables],
    "selected_rows": selected_rows,
    "query_metrics": vars(sk.last_metrics),
    "read_rows": len(muon_pt_df),
    "read_pt_sum": float(sum(sum(pts) for pts in muon_pt_df["Muon_pt"])),
    "read_metrics": vars(read_metrics.metrics),
    "pushed_columns": _optimized.operand("columns"),
    "pushed_predicate": str(_optimized.predicate),
    "awkward_events": len(arrays),
    "pairs": len(dimuon_mass),
    "mass_sum": float(ak.sum(dimuon_mass)),
    "hist_entries": float(mass_hist.sum(flow=True)),
}))
"""

BENCHMARK_PROBE = """
import json as _json
_values = {"loaded": result is not None}
if result is not None:
    _values.update(
        headline=headline,
        cases=len(cases),
        ratios=ratios,
        pivot={str(k): v for k, v in cases[cases.n_columns == headline_columns]
               .pivot_table(index="selectivity", columns="system", values="wall_s")
               .to_dict().items()},
    )
print("NOTEBOOK_VALUES " + _json.dumps(_values))
"""

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


# --- running notebooks -------------------------------------------------------------------------


def _kernel_manager(spec_root: Path) -> Any:
    """A kernel manager whose kernel is this interpreter, whatever kernels are registered."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = spec_root / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(spec_root)])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def execute_notebook(name: str, probe: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Run notebooks/<name>.ipynb (with ``probe`` appended); the notebook and the probe's values.

    The kernel inherits this process's environment, so tests set SKYHOOK_* variables with
    monkeypatch before calling.
    """
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    if probe is not None:
        nb.cells.append(nbformat.v4.new_code_cell(probe))
    with tempfile.TemporaryDirectory(prefix="skyhook-kernels-") as spec_root:
        client = nbclient.NotebookClient(
            nb,
            km=_kernel_manager(Path(spec_root)),
            timeout=CELL_TIMEOUT_S,
            record_timing=False,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    values: dict[str, Any] = {}
    if probe is not None:
        probe_cell = nb.cells.pop()
        text = "".join(o.get("text", "") for o in probe_cell.outputs if o.output_type == "stream")
        line = next(ln for ln in text.splitlines() if ln.startswith(PROBE_MARK))
        values = json.loads(line[len(PROBE_MARK) :])
    return nb, values


def _output_texts(nb: Any) -> list[str]:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            data = output.get("data", {})
            texts.extend(data[k] for k in ("text/plain", "text/html") if k in data)
    return texts


def _image_count(nb: Any) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        for output in cell.get("outputs", [])
    )


# --- the quickstart ----------------------------------------------------------------------------


def _pair_masses(events: ak.Array) -> np.ndarray:
    """Opposite-sign muon pair masses from m^2 = m1^2 + m2^2 + 2 (E1 E2 - p1.p2), in float64."""
    fields = {name: events[f"Muon_{name}"] for name in ("pt", "eta", "phi", "mass")}
    muons = ak.zip(
        {name: ak.values_astype(v, np.float64) for name, v in fields.items()}
        | {"charge": events.Muon_charge}
    )
    a, b = ak.unzip(ak.combinations(muons, 2))
    opposite = a.charge * b.charge < 0
    a, b = ak.flatten(a[opposite]), ak.flatten(b[opposite])
    p_a, p_b = a.pt * np.cosh(a.eta), b.pt * np.cosh(b.eta)
    energy_a, energy_b = np.sqrt(p_a**2 + a.mass**2), np.sqrt(p_b**2 + b.mass**2)
    dot = a.pt * b.pt * (np.cos(a.phi - b.phi) + np.sinh(a.eta) * np.sinh(b.eta))
    mass2 = a.mass**2 + b.mass**2 + 2 * (energy_a * energy_b - dot)
    return np.sqrt(np.maximum(ak.to_numpy(mass2), 0))


def _quickstart_truth() -> dict[str, Any]:
    events = {
        name: uproot.open(sample_path(name))["Events"].arrays(MUON_BRANCHES)
        for name in QUICKSTART_FILES
    }
    both = ak.concatenate(list(events.values()))
    dimuon = both[both.nMuon >= 2]
    selected = [
        int(ak.sum((e.nMuon >= 2) & ak.any(e.Muon_pt > 20, axis=1))) for e in events.values()
    ]
    masses = _pair_masses(dimuon)
    return {
        "phi": ak.to_list(events["nano_dimuon.root"].Muon_phi[6:]),
        "rows_per_file": selected,
        "read_rows": len(dimuon),
        "read_pt_sum": float(ak.sum(ak.values_astype(dimuon.Muon_pt, np.float64))),
        "events": len(both),
        "pairs": len(masses),
        "mass_sum": float(masses.sum()),
    }


def _check_quickstart(values: dict[str, Any], backend: str) -> None:
    truth = _quickstart_truth()
    assert values["backend"] == backend
    # select event_id>5, project Events;1.Muon_phi on the first file
    assert values["phi"] == truth["phi"]
    # the jagged query on the dataset: one table per file
    assert values["rows_per_file"] == truth["rows_per_file"]
    assert values["selected_rows"] == sum(truth["rows_per_file"])
    query = values["query_metrics"]
    assert query["rows_out"] == sum(truth["rows_per_file"])
    assert query["rows_out"] <= query["rows_in"] <= truth["events"]
    assert 0 < query["bytes_returned"] < query["bytes_read"] <= query["object_size"]
    # dd.read_skyhook with the filter and projection pushed into the read
    assert values["pushed_columns"] == ["Muon_pt"]
    assert values["pushed_predicate"] == "greater_equal(nMuon, 2)"
    assert values["read_rows"] == truth["read_rows"]
    assert values["read_pt_sum"] == pytest.approx(truth["read_pt_sum"], rel=1e-9)
    assert values["read_metrics"]["rows_out"] == truth["read_rows"]
    assert values["read_metrics"]["rows_in"] <= truth["events"]
    # read_awkward and the dimuon mass
    assert values["awkward_events"] == truth["read_rows"]
    assert values["pairs"] == truth["pairs"] == values["hist_entries"]
    assert values["mass_sum"] == pytest.approx(truth["mass_sum"], rel=1e-4)


def test_quickstart_matches_uproot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYHOOK_NOTEBOOK_STORE", (tmp_path / "store").as_uri())
    nb, values = execute_notebook("quickstart", QUICKSTART_PROBE)
    _check_quickstart(values, "file")
    assert _image_count(nb) == 1  # the mass histogram


@pytest.mark.ceph
def test_quickstart_on_ceph(ceph_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYHOOK_NOTEBOOK_STORE", ceph_cluster.url)
    _, values = execute_notebook("quickstart", QUICKSTART_PROBE)
    _check_quickstart(values, "rados")


# --- the benchmark results ---------------------------------------------------------------------

SYSTEM_COST = {"skyhook_pushdown": 1.0, "skyhook_client": 6.0, "uproot": 2.5, "parquet": 1.8}
SELECTIVITIES = (0.001, 0.01, 0.1, 1.0)
COLUMN_SETS: tuple[int | str, ...] = (1, 3, "all")


def _synthetic_case(system: str, selectivity: float, n_columns: int | str, events: int) -> dict:
    width = 40 if n_columns == "all" else int(n_columns)
    wall = 1e-3 * SYSTEM_COST[system] * (1 + 10 * selectivity) * (1 + width / 10)
    rows = int(selectivity * events)
    selected = rows * width * 8
    moved = selected + 500 if system == "skyhook_pushdown" else events * width * 8
    columns = None if n_columns == "all" else [f"c{i}" for i in range(width)]
    return dict(
        system=system, selectivity=selectivity, n_columns=n_columns, columns=columns,
        query=f"select MET_pt >= {selectivity}", threshold=selectivity, wall_s=wall,
        wall_s_min=wall * 0.9, wall_samples=[wall * 0.9, wall, wall * 1.1],
        client_cpu_s=wall * 0.8, storage_cpu_s=None, bytes_from_storage=moved, rows_out=rows,
        expected_rows=rows, selected_nbytes=selected, result_nbytes=selected,
        checksum=1.5 * rows, agrees=True, skyhook=None,
    )  # fmt: skip


def synthetic_result(name: str, events: int) -> dict[str, Any]:
    """A small result file that follows benchmarks/schema.py, with made-up but consistent values."""
    cases = [
        _synthetic_case(system, selectivity, n_columns, events)
        for system in SYSTEM_COST
        for selectivity in SELECTIVITIES
        for n_columns in COLUMN_SETS
    ]
    headline = {c["system"]: c for c in cases if (c["selectivity"], c["n_columns"]) == (0.01, 3)}
    push = headline["skyhook_pushdown"]
    summary = dict(
        selectivity=0.01, n_columns=3, rows_out=push["rows_out"],
        selected_nbytes=push["selected_nbytes"], bytes_returned=push["bytes_from_storage"],
        bytes_ratio=push["bytes_from_storage"] / push["selected_nbytes"],
        aims={"pushdown_faster_than_uproot": True}, all_answers_agree=True,
    )  # fmt: skip
    for key in ("wall_s", "client_cpu_s", "bytes_from_storage"):
        summary[key] = {system: case[key] for system, case in headline.items()}
    for short, system in (
        ("client", "skyhook_client"),
        ("uproot", "uproot"),
        ("parquet", "parquet"),
    ):
        summary[f"{short}_over_pushdown_wall"] = headline[system]["wall_s"] / push["wall_s"]
    ingest = dict(
        events=events, wall_s=0.5, events_per_s=events / 0.5, source_mb_per_s=3.0,
        arrow_mb_per_s=5.0, objects=4, object_size_target=262144, source_bytes=1_500_000,
        stored_bytes=2_000_000, arrow_bytes=2_500_000,
        uproot_full_read={"wall_s": 0.1, "events_per_s": events / 0.1, "source_mb_per_s": 15},
    )  # fmt: skip
    return dict(
        schema_version=1, name=name, created="2026-01-01T00:00:00+00:00", events=events,
        branches=108, object_size=262144, store="rados://skyhook?conf=ceph.conf", repeats=3,
        machine={"cpus": 2, "python": "3.11", "versions": {}}, cases=cases, ingest=ingest,
        scaling=None, call_overhead={"wall_per_call_s": 0.002}, summary=summary,
    )  # fmt: skip


def test_benchmark_notebook_plots_the_largest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.schema import validate

    results = {
        "small.json": synthetic_result("small", 2_000),
        "big.json": synthetic_result("big", 8_000),
    }
    for file_name, result in results.items():
        validate(result)  # the synthetic file stays true to the real schema
        (tmp_path / file_name).write_text(json.dumps(result))
    monkeypatch.setenv("SKYHOOK_BENCH_RESULTS", str(tmp_path))
    nb, values = execute_notebook("benchmark_results", BENCHMARK_PROBE)

    big = results["big.json"]
    assert values["loaded"] and values["headline"] == "big.json"
    assert values["cases"] == len(big["cases"])
    assert values["ratios"] == {
        key: big["summary"][key]
        for key in (
            "bytes_ratio",
            "client_over_pushdown_wall",
            "uproot_over_pushdown_wall",
            "parquet_over_pushdown_wall",
        )
    }
    expected_pivot: dict[str, dict[float, float]] = {}
    for case in big["cases"]:
        if case["n_columns"] == big["summary"]["n_columns"]:
            expected_pivot.setdefault(case["system"], {})[case["selectivity"]] = case["wall_s"]
    pivot = {
        system: {float(s): v for s, v in col.items()} for system, col in values["pivot"].items()
    }
    assert pivot == expected_pivot
    assert _image_count(nb) == 2  # time and bytes against selectivity
    printed = "".join(_output_texts(nb))
    assert f"{big['summary']['client_over_pushdown_wall']:8.2f}" in printed


def test_benchmark_notebook_without_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYHOOK_BENCH_RESULTS", str(tmp_path))
    nb, values = execute_notebook("benchmark_results", BENCHMARK_PROBE)
    assert values == {"loaded": False}
    assert any("No benchmark results" in text for text in _output_texts(nb))
    assert _image_count(nb) == 0


# --- every other notebook, and the committed outputs -------------------------------------------

CHECKED_ABOVE = {"quickstart", "benchmark_results"}
ALL_NOTEBOOKS = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("name", [n for n in ALL_NOTEBOOKS if n not in CHECKED_ABOVE])
def test_notebook_runs(name: str) -> None:
    if name.startswith("coffea"):
        pytest.importorskip("coffea")
    execute_notebook(name)  # its own asserts compare with the direct computation


def _machine_paths() -> list[str]:
    return [str(REPO), tempfile.gettempdir() + "/", str(Path.home()) + "/"]


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_committed_notebook_has_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells, f"{name}.ipynb has no code cells"
    counts = [cell.execution_count for cell in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), (
        f"{name}.ipynb is not saved executed top to bottom (execution counts {counts})"
    )
    # Cells that only define things (imports, classes, functions) print nothing; the rest do.
    silent = [i for i, cell in enumerate(code_cells, 1) if not cell.outputs]
    assert len(silent) <= len(code_cells) // 3, (
        f"{name}.ipynb: code cells {silent} were saved without outputs"
    )
    for index, cell in enumerate(code_cells, 1):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{name}.ipynb: code cell {index} was saved with an error"
    for text in _output_texts(nb):
        for path in _machine_paths():
            assert path not in text, f"{name}.ipynb: an output shows the machine path {path}"


# --- saving the notebooks with outputs ---------------------------------------------------------


def _scrub(text: str) -> str:
    """Outputs without this machine's paths: the checkout becomes relative, temp dirs <tmp>."""
    text = text.replace(str(REPO) + "/", "")
    text = re.sub(re.escape(tempfile.gettempdir()) + r"/[^\s'\"]*", "<tmp>", text)
    return text.replace(str(Path.home()) + "/", "~/")


def save_executed(name: str) -> Path:
    """Execute notebooks/<name>.ipynb in a fresh kernel and write it back with its outputs."""
    nb, _ = execute_notebook(name)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _scrub(output["text"])
            for key in ("text/plain", "text/html"):
                if key in output.get("data", {}):
                    output["data"][key] = _scrub(output["data"][key])
    path = NOTEBOOKS / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    if sys.argv[1:2] != ["--save"]:
        sys.exit(f"usage: {sys.argv[0]} --save [NOTEBOOK ...]")
    for notebook in sys.argv[2:] or sorted(CHECKED_ABOVE):
        print("saved", save_executed(notebook))
