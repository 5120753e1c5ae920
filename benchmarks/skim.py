"""Object-level skimming: keep, per event, only the central jets and the hard muons. Skyhook
computes the masked lists inside the storage (``project Jet_pt[abs(Jet_eta) < 1] as ...``) and
returns only them; uproot + awkward read the three branches and apply the same masks in the
client. Both answers must be equal, element for element."""

from __future__ import annotations

import statistics
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import uproot

from .cases import skyhook_client
from .data import TREE, Workload
from .measure import Samples, StorageCpu, timed

SKIM_QUERY = (
    "project Jet_pt[abs(Jet_eta) < 1] as central_jet_pt, Muon_pt[Muon_pt > 20] as hard_muon_pt"
)
SKIM_BRANCHES = ("Jet_pt", "Jet_eta", "Muon_pt")
OUTPUTS = ("central_jet_pt", "hard_muon_pt")


def _skyhook(workload: Workload) -> tuple[pa.Table, int]:
    client = skyhook_client(workload.store_url)
    table = client.runQuery(workload.file, SKIM_QUERY)
    assert isinstance(table, pa.Table)
    return table, client.last_metrics.bytes_returned


def _uproot(workload: Workload) -> ak.Array:
    with uproot.open(workload.root_path) as f:
        events = f[TREE].arrays(list(SKIM_BRANCHES), library="ak")
    central = events.Jet_pt[abs(events.Jet_eta) < np.float32(1)]
    hard = events.Muon_pt[events.Muon_pt > np.float32(20)]
    return ak.zip({"central_jet_pt": central, "hard_muon_pt": hard}, depth_limit=1)


def skim(workload: Workload, repeats: int, storage_cpu: StorageCpu) -> dict[str, Any]:
    """Both systems once untimed (answers compared), then ``repeats`` rounds in alternating
    order; wall times are medians, bytes those that cross from storage to the client."""
    table, returned = _skyhook(workload)
    reference = _uproot(workload)
    agrees = all(table.column(name).to_pylist() == ak.to_list(reference[name]) for name in OUTPUTS)
    samples = {"skyhook_pushdown": Samples(), "uproot": Samples()}
    runs = {"skyhook_pushdown": lambda: _skyhook(workload), "uproot": lambda: _uproot(workload)}
    for round_ in range(repeats):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for system in order:
            timed(runs[system], samples[system], storage_cpu)
    uproot_bytes = sum(workload.branch_bytes[b] for b in SKIM_BRANCHES)
    systems = {
        "skyhook_pushdown": {
            **samples["skyhook_pushdown"].summary(),
            "bytes_from_storage": returned,
        },
        "uproot": {**samples["uproot"].summary(), "bytes_from_storage": uproot_bytes},
    }
    elements = int(sum(ak.sum(ak.num(reference[name], axis=1)) for name in OUTPUTS))
    return {
        "query": SKIM_QUERY,
        "events": len(reference),
        "elements_out": elements,
        "agrees": agrees,
        "systems": systems,
        "wall_ratio": statistics.median(samples["skyhook_pushdown"].wall_s)
        / statistics.median(samples["uproot"].wall_s),
        "bytes_ratio": returned / uproot_bytes,
    }
