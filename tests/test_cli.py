"""The ``skyhook`` command line on the embedded store: demo, ingest (one tree, skipped branches),
ls, schema, query (printed and written to Parquet/CSV), gc, verify; errors are one line naming
the thing at fault, with exit status 1. Answers are checked against uproot + awkward."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import uproot

from skyhook_dask.cli import DEMO_QUERY, main
from skyhook_dask.data import sample_path
from skyhook_dask.storage import open_store

SAMPLE = sample_path("nano_dimuon.root")


@pytest.fixture
def store(tmp_path: Path) -> str:
    return (tmp_path / "store").as_uri()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_demo_selects_what_uproot_selects(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "demo", "--store", store)
    events = uproot.open(SAMPLE)["Events"].arrays(["nMuon", "Muon_pt"])
    expected = int(ak.sum((events.nMuon >= 2) & ak.any(events.Muon_pt > 20, axis=1)))
    assert status == 0 and f"query: {DEMO_QUERY}" in out
    assert re.search(rf"\b{expected} of {len(events)} events selected", out), out
    assert re.search(r"returned [\d,]+ bytes$", out.strip()), out  # every number has its unit


def test_ingest_one_tree_then_ls_schema_and_query(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "ingest", "--store", store, "--tree", "Events", "mu", str(SAMPLE))
    assert status == 0 and out.startswith("mu: 1 files")
    status, out, _ = run(capsys, "ls", "--store", store)
    assert out.split() == ["mu"]
    status, out, _ = run(capsys, "ls", "--store", store, "mu")
    assert "Events;1: 40 events" in out and "Runs;1" not in out  # only the chosen tree
    status, out, _ = run(capsys, "schema", "--store", store, "mu")
    assert "  Events  [TTree]" in out and "    Muon_pt  [TBranch] float[]" in out
    query = "select nMuon == 2, project event Muon_pt"
    parquet, csv = tmp_path / "out.parquet", tmp_path / "out.csv"
    status, out, _ = run(capsys, "query", "--store", store, "mu", query, "-o", str(parquet))
    events = uproot.open(SAMPLE)["Events"].arrays(["event", "nMuon", "Muon_pt"])
    keep = events.nMuon == 2
    assert status == 0 and out.strip() == f"wrote {int(ak.sum(keep))} rows to {parquet}"
    table = pq.read_table(parquet)
    assert table.column("event").to_pylist() == ak.to_list(events.event[keep])
    assert table.column("Muon_pt").to_pylist() == ak.to_list(events.Muon_pt[keep])
    run(capsys, "query", "--store", store, "mu", "select nMuon == 2, project event", "-o", str(csv))
    assert pacsv.read_csv(csv).column("event").to_pylist() == ak.to_list(events.event[keep])


def test_ingest_reports_skipped_branches(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "collide.root"
    with uproot.recreate(path) as out:
        out["T"] = {"event_id": np.array([7, 8]), "x": np.array([0.5, 1.5])}
    status, out, _ = run(capsys, "ingest", "--store", store, "collide", str(path))
    assert status == 0
    assert "skipped collide.root:T;1/event_id: its name collides with the event_id column" in out


def test_gc_and_verify(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "ingest", "--store", store, "mu", str(SAMPLE))
    objects = open_store(store)
    stray = "mu/data/20000101T000000Z-00000000/f0000-t000-000000"
    objects.write(stray, b"left over by a killed ingest")
    status, out, _ = run(capsys, "gc", "--store", store)
    assert status == 0 and out.strip() == "removed 1 unreferenced objects"
    assert not objects.exists(stray)
    status, out, _ = run(capsys, "verify", "--store", store, "mu")
    assert status == 0
    name = next(n for n in objects.list("mu/data/"))
    data = bytearray(objects.read(name))
    data[len(data) // 2] ^= 0xFF
    objects.write(name, bytes(data))
    status, out, _ = run(capsys, "verify", "--store", store, "mu")
    assert status == 1 and name in out


def test_errors_are_one_line_with_status_1(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "ls", "--store", store)
    assert status == 1 and err.startswith("error: no store at ") and err.count("\n") == 1
    run(capsys, "ingest", "--store", store, "mu", str(SAMPLE))
    status, _, err = run(capsys, "query", "--store", store, "nothing", "project x")
    assert status == 1 and err.startswith("error: ") and "'nothing'" in err
    status, _, err = run(capsys, "query", "--store", store, "mu", "select nMuon >> 2")
    assert status == 1 and err.startswith("error: ") and "^" in err
    status, _, err = run(capsys, "query", "--store", store, "mu", "project no_such_branch")
    assert status == 1 and "no_such_branch" in err and "Traceback" not in err
    status, _, err = run(capsys, "ingest", "--store", store, "bad", "/no/such/file.root")
    assert status == 1 and "/no/such/file.root" in err and err.count("\n") == 1


def test_first_hour_edges(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --store before the command as after it; "already exists" names the CLI's flag
    assert run(capsys, "--store", store, "ingest", "mu", str(SAMPLE))[0] == 0
    status, out, _ = run(capsys, "--store", store, "ls")
    assert status == 0 and out.split() == ["mu"]
    status, _, err = run(capsys, "ingest", "mu", str(SAMPLE), "--store", store)
    assert status == 1 and err == (
        "error: dataset 'mu' already exists; add --overwrite to replace it, --append to add the "
        "files to it, or choose another name\n"
    )
    # anything unexpected is one line too, and --verbose adds the traceback
    status, _, err = run(capsys, "query", "--store", store, "mu", "project nMuon", "--file", "x")
    assert status == 1 and err.count("\n") == 1 and "(--verbose for details)" in err
    status, _, err = run(
        capsys, "-v", "query", "--store", store, "mu", "project nMuon", "--file", "x"
    )
    assert status == 1 and "Traceback" in err
    # skipped branches are listed once, in the output, not again as multi-line warnings
    status, out, err = run(
        capsys, "ingest", "--store", store, "dy", str(sample_path("nano_dy.root"))
    )
    assert status == 0 and all(line.startswith("warning: ") for line in err.splitlines())


def test_a_closed_pipe_ends_quietly(store: str) -> None:
    command = f"{sys.executable} -m skyhook_dask.cli demo --store {store} | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.startswith("store: ") and done.stderr == ""
    schema = f"{sys.executable} -m skyhook_dask.cli schema demo --store {store} | head -2"
    done = subprocess.run(["bash", "-c", schema], capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 2 and "Traceback" not in done.stderr, done.stderr


def test_hist_prints_the_histogram_and_saves_a_plot(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "ingest", "--store", store, "mu", str(SAMPLE))
    plot = tmp_path / "jets.png"
    value, where = "Jet_pt[abs(Jet_eta) < 1]", "count(Jet_pt > 40) >= 1"
    status, out, _ = run(
        capsys, "hist", "--store", store, "mu", value, "--bins", "5", "--range", "15", "60",
        "--where", where, "-o", str(plot),
    )  # fmt: skip
    events = uproot.open(SAMPLE)["Events"].arrays(["Jet_pt", "Jet_eta"])
    selected = events[ak.sum(events.Jet_pt > np.float32(40), axis=1) >= 1]
    entries = int(ak.count(selected.Jet_pt[abs(selected.Jet_eta) < np.float32(1)]))
    assert status == 0
    assert f"{entries} entries ({len(selected)} events selected of {len(events)};" in out
    assert plot.stat().st_size > 1000
    status, _, err = run(capsys, "hist", "--store", store, "mu", "MET_pt")
    assert status == 1 and err.strip() == "error: axis 0: 50 regular bins need a range (low, high)"
