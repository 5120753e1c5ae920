"""The eight IRIS-HEP ADL (analysis-description-language) benchmark queries. Every histogram
must be identical across systems, bin for bin (flow bins included), before it is timed. Part of
every ``run.py`` result (``adl``); alone: ``python benchmarks/adl.py [--events N]`` writes
``results/adl.json`` and ``results/adl.png`` (exit status 1 if any histogram differs).

Q1-Q4 are single histograms filled inside the storage, against uproot + hist filling the same
histogram in the client:

* Q1: missing transverse energy of every event;
* Q2: transverse momentum of every jet;
* Q3: transverse momentum of the jets with |eta| < 1;
* Q4: missing transverse energy of the events with at least two jets of pT > 40 GeV.

Q5-Q8 (:mod:`benchmarks.adl_processors`) are coffea processors, run three ways: by this
project's executor over the Skyhook dataset (preselection in the storage, columns fetched as
the processor touches them), by coffea's ``Runner`` over the ROOT file, and by uproot + awkward
+ hist directly; all three one process, no Dask.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import awkward as ak
import hist
import numpy as np
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from skyhook_dask.coffea import run as run_processor
from skyhook_dask.reductions import histogram

from .adl_processors import COFFEA_QUERIES, AdlCoffeaQuery, AdlProcessor, events_from_arrays
from .data import DATASET, TREE, Workload
from .measure import Samples, StorageCpu, timed

F32 = np.float32
UPROOT_STEP = 100_000  # events per step: coffea Runner's default chunk size


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


def _skyhook_coffea(workload: Workload, query: AdlCoffeaQuery) -> tuple[dict[str, Any], int]:
    """The histograms by this project's executor, and the bytes the storage returned."""
    out, report = run_processor(
        AdlProcessor(query), DATASET, store=workload.store_url, preselect=query.preselect,
        executor=processor.IterativeExecutor(status=False), report=True,
    )  # fmt: skip
    return out, report.bytes_returned


def _coffea_runner(workload: Workload, query: AdlCoffeaQuery) -> tuple[dict[str, Any], int]:
    """The histograms by coffea's Runner over the ROOT file, and the bytes it read."""
    runner = processor.Runner(
        processor.IterativeExecutor(status=False), schema=NanoAODSchema, savemetrics=True
    )
    fileset = {"adl": {"files": {str(workload.root_path): TREE}}}
    out, metrics = runner(fileset, processor_instance=AdlProcessor(query), treename=TREE)
    return out, int(metrics["bytesread"])


def _uproot_coffea(workload: Workload, query: AdlCoffeaQuery) -> tuple[dict[str, Any], int]:
    """The histograms by uproot + awkward + hist, in steps of coffea's default chunk size, and
    the compressed bytes of the branches."""
    with uproot.open(workload.root_path) as f:
        steps = f[TREE].iterate(list(query.branches), step_size=UPROOT_STEP, library="ak")
        out = processor.accumulate(query.fill(events_from_arrays(a)) for a in steps)
    return out, _branch_bytes(workload, query.branches)


def _branch_bytes(workload: Workload, branches: Sequence[str]) -> int:
    return sum(workload.branch_bytes[b] for b in branches)


def _compare(
    runs: dict[str, Callable[[], Any]], repeats: int, storage_cpu: StorageCpu
) -> dict[str, Samples]:
    """Every system ``repeats`` times, alternating their order from round to round."""
    samples = {system: Samples() for system in runs}
    for round_ in range(repeats):
        for system in list(runs) if round_ % 2 == 0 else list(reversed(runs)):
            timed(runs[system], samples[system], storage_cpu)
    return samples


def _ratios(samples: dict[str, Samples]) -> dict[str, float]:
    """``<system>_over_skyhook_wall`` for every other system: medians' ratios."""
    ours = statistics.median(samples["skyhook"].wall_s)
    return {
        f"{system}_over_skyhook_wall": statistics.median(s.wall_s) / ours
        for system, s in samples.items()
        if system != "skyhook"
    }


def adl_coffea(workload: Workload, repeats: int, storage_cpu: StorageCpu) -> list[dict[str, Any]]:
    """Q5-Q8: one record per query, as :func:`adl` writes for Q1-Q4, with a third system."""
    records = []
    with warnings.catch_warnings():  # the generated files have no cross-reference branches
        warnings.filterwarnings("ignore", "Missing cross-reference", RuntimeWarning)
        for query in COFFEA_QUERIES:
            runs = {"skyhook": partial(_skyhook_coffea, workload, query),
                    "coffea": partial(_coffea_runner, workload, query),
                    "uproot": partial(_uproot_coffea, workload, query)}  # fmt: skip
            answers = {system: run() for system, run in runs.items()}
            first = answers["skyhook"][0]
            identical = all(
                np.array_equal(first[k].view(flow=True), out[k].view(flow=True))
                for out, _ in answers.values()
                for k in query.axes
            )
            samples = _compare(runs, repeats, storage_cpu)
            records.append(
                {
                    "query": query.name,
                    "title": query.title,
                    "value": ", ".join(query.axes),
                    "where": query.preselect,
                    "bins": next(iter(query.axes.values()))[0],
                    "entries": int(next(iter(first.values())).sum(flow=True)),
                    "identical": bool(identical),
                    "systems": {
                        s: {**samples[s].summary(), "bytes_from_storage": answers[s][1]}
                        for s in runs
                    },
                    **_ratios(samples),
                }
            )
    return records


def adl(workload: Workload, repeats: int, storage_cpu: StorageCpu) -> list[dict[str, Any]]:
    """One record per query: every system's wall times (medians) and bytes from storage, and
    whether the histograms are identical."""
    records = []
    for query in QUERIES:
        ours, reference = _in_storage(workload, query), _uproot(workload, query)
        identical = np.array_equal(ours.view(flow=True), reference.view(flow=True))
        runs = {"skyhook": lambda q=query: _in_storage(workload, q),
                "uproot": lambda q=query: _uproot(workload, q)}  # fmt: skip
        samples = _compare(runs, repeats, storage_cpu)
        moved = {
            "skyhook": ours.metadata["bytes_returned"],
            "uproot": _branch_bytes(workload, query.branches),
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
                **_ratios(samples),
            }
        )
    return records + adl_coffea(workload, repeats, storage_cpu)


def main(argv: Sequence[str] | None = None) -> int:
    from .data import prepare
    from .measure import machine_info
    from .plots import adl_plot
    from .runner import RESULTS_DIR, _store, options_for

    about = "The ADL queries 1-8 on Skyhook, coffea and uproot (benchmarks/README.md)"
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
    adl_plot(result, args.out.with_suffix(".png"))
    for r in records:
        coffea = r.get("coffea_over_skyhook_wall")
        print(f"{r['query']}: {r['entries']:,} entries, identical={r['identical']}, "
              f"uproot/Skyhook {r['uproot_over_skyhook_wall']:.2f}x, "
              + (f"coffea/Skyhook {coffea:.2f}x, " if coffea else "")
              + f"{r['systems']['skyhook']['bytes_from_storage']:,} bytes returned")  # fmt: skip
    return 0 if all(r["identical"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
