"""Pieces shared by the reliability tests (fuzzing, retries, atomic ingest, concurrent writers,
load): the soak-test markers, small generated input files, and a sample object table with the
class requests run against it.

Long soak variants are marked ``slow`` and run only on demand::

    SKYHOOK_SLOW_TESTS=1 .venv/bin/pytest -m slow tests
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from skyhook_dask.formats.protocol import Aggregate, ScanRequest
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.query.expr import Call, Column, Literal

SLOW_ENABLED = os.environ.get("SKYHOOK_SLOW_TESTS") == "1"
slow = pytest.mark.slow
needs_slow = pytest.mark.skipif(not SLOW_ENABLED, reason="soak test: set SKYHOOK_SLOW_TESTS=1")
FORK = multiprocessing.get_context("fork")
SMALL_OBJECTS = 30_000  # bytes per object: several objects even for small files


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two generated NanoAOD-like files of 400 events each. Test modules import it as
    ``from reliability_support import small as small``: the redundant alias marks a re-export,
    so linters accept the test arguments named after it."""
    folder = tmp_path_factory.mktemp("reliability")
    return [generate_nanoaod(folder / f"r{i}.root", 400, seed=70 + i) for i in range(2)]


def sample_table(rows: int = 60) -> pa.Table:
    rng = np.random.default_rng(5)
    counts = rng.poisson(2, rows)
    values = pa.array(rng.normal(30, 10, counts.sum()).astype(np.float32))
    return pa.table(
        {
            "event_id": pa.array(np.arange(rows), pa.int64()),
            "nMuon": pa.array(counts.astype(np.int32)),
            "MET_pt": pa.array(rng.exponential(25, rows)),
            "Muon_pt": pa.LargeListArray.from_arrays(np.r_[0, np.cumsum(counts)], values),
        }
    )


# The payload of one call per class method, each reading columns of sample_table().
SAMPLE_PAYLOADS: dict[str, bytes] = {
    "scan": ScanRequest(
        ("event_id", "Muon_pt"),
        Call("any", (Call("greater", (Column("Muon_pt"), Literal(20.0, "float"))),)),
    ).encode(),
    "aggregate": ScanRequest(
        aggregates=(Aggregate("sum", Column("MET_pt")), Aggregate("max", Column("Muon_pt")))
    ).encode(),
    "stat": b"",
}
