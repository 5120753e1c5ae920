"""ADL benchmark queries 1-4 (the IRIS-HEP analysis-description-language benchmarks) as
histograms filled inside the storage, against uproot + hist filling the same histogram in the
client. Every histogram must be identical, bin for bin (flow bins included), before it is timed.
Part of every ``run.py`` result (``adl``); alone: ``python benchmarks/adl.py [--events N]``
writes ``results/adl.json`` (exit status 1 if any histogram differs).

* Q1: missing transverse energy of every event;
* Q2: transverse momentum of every jet;
* Q3: transverse momentum of the jets with |eta| < 1;
* Q4: missing transverse energy of the events with at least two jets of pT > 40 GeV.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import awkward as ak
import hist
import numpy as np
import uproot

from skyhook_dask.reductions import histogram

from .data import TREE, Workload
from .measure import Samples, StorageCpu, timed

F32 = np.float32


@dataclass(frozen=True)
class AdlQuery:
    name: str
    title: str
    value: str
    bins: int
    low: float
    high: float
    where: str | None
    branches: tuple[str, ...]
    client_side: Callable[[ak.Array], Any]  # the values uproot + awkward fill


QUERIES = (
    AdlQuery("Q1", "MET of every event", "MET_pt", 100, 0, 200, None, ("MET_pt",),
             lambda e: e.MET_pt),
    AdlQuery("Q2", "pT of every jet", "Jet_pt", 100, 15, 60, None, ("Jet_pt",),
             lambda e: ak.flatten(e.Jet_pt)),
    AdlQuery("Q3", "pT of the jets with abs(eta) < 1", "Jet_pt[abs(Jet_eta) < 1]", 100, 15, 60,
             None, ("Jet_pt", "Jet_eta"),
             lambda e: ak.flatten(e.Jet_pt[abs(e.Jet_eta) < F32(1)])),
    AdlQuery("Q4", "MET of events with >= 2 jets of pT > 40", "MET_pt", 100, 0, 200,
             "count(Jet_pt > 40) >= 2", ("MET_pt", "Jet_pt"),
             lambda e: e.MET_pt[ak.sum(e.Jet_pt > F32(40), axis=1) >= 2]),
)  # fmt: skip


def _in_storage(workload: Workload, query: AdlQuery) -> Any:
    return histogram(
        workload.file, query.value, bins=query.bins, range=(query.low, query.high),
        where=query.where, store=workload.store_url, client=False,
    )  # fmt: skip


def _uproot(workload: Workload, query: AdlQuery) -> Any:
    with uproot.open(workload.root_path) as f:
        events = f[TREE].arrays(list(query.branches), library="ak")
    axis = hist.axis.Regular(query.bins, query.low, query.high, label=query.value)
    return hist.Hist(axis, storage=hist.storage.Int64()).fill(query.client_side(events))


def adl(workload: Workload, repeats: int, storage_cpu: StorageCpu) -> list[dict[str, Any]]:
    """One record per query: both systems' wall times (medians) and bytes from storage, and
    whether the histograms are identical."""
    records = []
    for query in QUERIES:
        ours, reference = _in_storage(workload, query), _uproot(workload, query)
        identical = np.array_equal(ours.view(flow=True), reference.view(flow=True))
        runs = {"skyhook": lambda q=query: _in_storage(workload, q),
                "uproot": lambda q=query: _uproot(workload, q)}  # fmt: skip
        samples = {system: Samples() for system in runs}
        for round_ in range(repeats):
            for system in list(runs) if round_ % 2 == 0 else list(reversed(runs)):
                timed(runs[system], samples[system], storage_cpu)
        moved = {
            "skyhook": ours.metadata["bytes_returned"],
            "uproot": sum(workload.branch_bytes[b] for b in query.branches),
        }
        records.append(
            {
                "query": query.name,
                "title": query.title,
                "value": query.value,
                "where": query.where,
                "bins": query.bins,
                "entries": int(ours.sum(flow=True)),
                "identical": bool(identical),
                "systems": {
                    s: {**samples[s].summary(), "bytes_from_storage": moved[s]} for s in runs
                },
                "uproot_over_skyhook_wall": statistics.median(samples["uproot"].wall_s)
                / statistics.median(samples["skyhook"].wall_s),
            }
        )
    return records


def main(argv: Sequence[str] | None = None) -> int:
    from .data import prepare
    from .measure import machine_info
    from .runner import RESULTS_DIR, _store, options_for

    about = "ADL queries 1-4: in-storage histograms against uproot + hist (benchmarks/README.md)"
    parser = argparse.ArgumentParser(description=about)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--object-size", type=int, default=64 * 2**20, help="bytes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store", help="store URL instead of a fresh Ceph dev cluster")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "adl.json")
    args = parser.parse_args(argv)
    options = options_for("full", events=args.events, object_size=args.object_size,
                          repeats=args.repeats, store=args.store)  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="skyhook-adl-") as tmp,
        _store(options, Path(tmp)) as store_url,
    ):
        workload = prepare(
            options.data_dir, Path(tmp), store_url, events=options.events, seed=options.seed,
            extra_branches=options.extra_branches, object_size=options.object_size,
        )  # fmt: skip
        records = adl(workload, options.repeats, StorageCpu.for_store(store_url))
        result = {
            "events": workload.events, "objects": len(workload.tree.objects),
            "object_size": options.object_size, "repeats": options.repeats, "store": store_url,
            "machine": machine_info(), "adl": records,
        }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in records:
        print(f"{r['query']}: {r['entries']:,} entries, identical={r['identical']}, "
              f"uproot/Skyhook {r['uproot_over_skyhook_wall']:.2f}x, "
              f"{r['systems']['skyhook']['bytes_from_storage']:,} bytes returned")  # fmt: skip
    return 0 if all(r["identical"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
