"""The README's tour, as a physicist runs it: pasted into a file and run with ``python file.py``
(no ``if __name__ == "__main__":`` guard), and piped into ``python -``. Both must work and
print what uproot computes from the same files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from skyhook_dask.data import sample_path

README = Path(__file__).parents[1] / "README.md"


def _tour() -> str:
    text = README.read_text()
    section = text[text.index("## A short tour") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def _expected() -> str:
    events = uproot.open(sample_path("nano_dimuon.root"))["Events"].arrays()
    keep = (events.nMuon >= 2) & ak.any(events.Muon_pt > np.float32(20), axis=1)
    first = ak.to_list(events.Muon_pt[keep][0])
    counts = [
        uproot.open(sample_path(n))["Events"].num_entries - 6
        for n in ("nano_dimuon.root", "nano_dy.root")
    ]
    selected = f"{int(ak.sum(keep))} events selected; first Muon_pt: {first}\n"
    leading = ak.fill_none(ak.firsts(events.Muon_pt) > np.float32(25), False)
    central = events.Jet_pt[leading][abs(events.Jet_eta[leading]) < np.float32(1)]
    skim = f"{ak.to_list(central[:3])} central jets\n"
    return selected + f"{counts} events selected per file\n" + skim


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_the_tour_runs_as_a_plain_script(tmp_path: Path, how: str) -> None:
    script = tmp_path / "tour.py"
    script.write_text(_tour())
    env = {**os.environ, "SKYHOOK_STORE": str(tmp_path / "store")}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    command = [sys.executable, str(script)] if how == "file" else [sys.executable, "-"]
    done = subprocess.run(
        command,
        input=None if how == "file" else _tour(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(_expected()), done.stdout
    assert "nano_dimuon.root" in done.stdout.splitlines()[0]  # getAttributes()
    assert "Traceback" not in done.stderr and "Nanny" not in done.stderr


def _run_after_the_tour(tmp_path: Path, marker: str, script_name: str) -> str:
    """The README's python block holding ``marker``, appended to the tour and run as a plain
    script in a fresh store; its standard output."""
    text = README.read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if marker in b)
    script = tmp_path / script_name
    script.write_text(_tour() + snippet)
    env = {**os.environ, "SKYHOOK_STORE": str(tmp_path / "store")}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_histogram_snippet_runs_after_the_tour(tmp_path: Path) -> None:
    # not hist.py: it would shadow the hist package
    out = _run_after_the_tour(tmp_path, "histogram(", "snippet.py")
    central = 0
    for name in ("nano_dimuon.root", "nano_dy.root"):
        e = uproot.open(sample_path(name))["Events"].arrays(["Jet_pt", "Jet_eta"])
        e = e[ak.sum(e.Jet_pt > np.float32(40), axis=1) >= 2]
        central += int(ak.count(e.Jet_pt[abs(e.Jet_eta) < np.float32(1)]))
    assert out.splitlines()[-1].startswith(f"{float(central)} central jets;")


def test_the_fileset_snippet_runs_after_the_tour(tmp_path: Path) -> None:
    out = _run_after_the_tour(tmp_path, "writeFileset(", "fileset_snippet.py")
    muons = {
        label: int(uproot.open(sample_path(name))["Events"]["nMuon"].array(library="np").sum())
        for label, name in (("DY", "nano_dy.root"), ("Data", "nano_dimuon.root"))
    }
    assert out.splitlines()[-1] == str(muons)


def test_the_append_snippet_runs_after_the_tour(tmp_path: Path) -> None:
    out = _run_after_the_tour(tmp_path, 'mode="append"', "append_snippet.py")
    n_muon = uproot.open(sample_path("nano_dimuon.root"))["Events"]["nMuon"].array(library="np")
    assert out.splitlines()[-2:] == ["[1, 2] [1, 2]", str(int((n_muon >= 2).sum()))]
