"""Run the benchmark: prepare the data, answer every query with every system side by side,
measure ingest, call overhead and Dask scaling, and write one JSON result (see schema.py).

Every (selectivity, column set) query is first answered once by each system untimed (a warm-up
whose answer is checked against the ground truth), then ``repeats`` timed rounds run the systems
in rotating order, so slow phases of a shared machine spread over all of them alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .adl import adl
from .cases import ALL_SYSTEMS, SYSTEMS, Answer
from .cli_latency import cli_latency
from .data import (
    COLUMN_COUNTS,
    SELECTIVITIES,
    QuerySpec,
    Workload,
    default_data_dir,
    prepare,
)
from .extras import call_overhead, dask_scaling, profile_systems, uproot_full_read
from .measure import Samples, StorageCpu, machine_info, timed
from .schema import SCHEMA_VERSION, validate
from .skim import skim

RESULTS_DIR = Path(__file__).parent / "results"
HEADLINE = (0.01, 3)  # selectivity and column count of the summary's ratios
# Dask scaling: the headline query, and a heavier one whose partitions carry real work.
SCALING_QUERIES: tuple[tuple[float, int | str], ...] = (HEADLINE, (0.1, "all"))
CHECKSUM_RTOL = 1e-9  # float64 sums of the same float32 values in different orders


@dataclass(frozen=True)
class Options:
    """One benchmark run. ``mode`` picks the defaults that the other fields override."""

    mode: str = "full"
    events: int = 1_000_000
    object_size: int = 64 * 1024 * 1024
    repeats: int = 5
    seed: int = 1
    extra_branches: int = 50  # 58 NanoAOD-like branches + 50 extra = 108 branches
    store: str | None = None  # None: a dev Ceph cluster in a temporary directory
    osds: int = 1  # OSDs of that dev cluster
    size: int = 1  # copies of each object in its pool
    data_dir: Path = field(default_factory=default_data_dir)
    scaling_workers: tuple[int, ...] = (1, 2)
    scaling_repeats: int = 5
    profile_dir: Path | None = None
    selectivities: tuple[float, ...] = SELECTIVITIES
    column_counts: tuple[int | str, ...] = COLUMN_COUNTS
    note: str = ""
    verbose: bool = True


MODES: dict[str, dict[str, Any]] = {
    "full": {},
    "quick": {"events": 100_000, "object_size": 8 * 1024 * 1024, "repeats": 3,
              "scaling_repeats": 2},
    "smoke": {"events": 3_000, "object_size": 256 * 1024, "repeats": 1, "scaling_repeats": 1,
              "scaling_workers": ()},
}  # fmt: skip


def options_for(mode: str, **overrides: Any) -> Options:
    """The options of ``mode`` ("full", "quick", "smoke") with ``overrides`` (None: keep)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    settings = {**MODES[mode], **{k: v for k, v in overrides.items() if v is not None}}
    return replace(Options(mode=mode), **settings)


def default_name(options: Options) -> str:
    """``full``/``quick``/``smoke`` for a mode's own size, else ``<mode>-<events>ev``."""
    standard = MODES[options.mode].get("events", Options.events)
    return options.mode if options.events == standard else f"{options.mode}-{options.events}ev"


def _log(options: Options, message: str) -> None:
    if options.verbose:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _store(options: Options, work_dir: Path) -> Iterator[str]:
    """The given store, or a dev Ceph cluster (with the skyhook class) stopped afterwards."""
    if options.store is not None:
        yield options.store
        return
    from skyhook_dask.ceph.cluster import DevCluster

    cluster = DevCluster(work_dir / "ceph", osds=options.osds, size=options.size)
    try:
        _log(options, f"starting a Ceph dev cluster in {cluster.dir}")
        yield cluster.up()
    finally:
        cluster.down()


# --- one query ---------------------------------------------------------------------------------


def _agrees(query: QuerySpec, answer: Answer, reference: Answer) -> bool:
    """Right row count, the reference's checksum, and for Arrow answers of the same layout
    (the client-side scan) the very same table."""
    if answer.rows_out != query.expected_rows:
        return False
    if not math.isclose(answer.checksum, reference.checksum, rel_tol=CHECKSUM_RTOL, abs_tol=1e-6):
        return False
    if answer.storage is not None and answer.table is not None and reference.table is not None:
        return answer.table.equals(reference.table)
    return True


def run_query(
    workload: Workload,
    query: QuerySpec,
    systems: Sequence[str],
    repeats: int,
    storage_cpu: StorageCpu,
) -> tuple[list[dict[str, Any]], dict[str, Answer]]:
    """Case records of every system for one query, and the (warm-up) answers they gave."""
    answers = {
        name: ALL_SYSTEMS[name].describe(workload, query, ALL_SYSTEMS[name].run(workload, query))
        for name in systems
    }
    samples = {name: Samples() for name in systems}
    for round_no in range(repeats):
        shift = round_no % len(systems)
        for name in [*systems[shift:], *systems[:shift]]:
            system = ALL_SYSTEMS[name]
            timed(lambda s=system: s.run(workload, query), samples[name], storage_cpu)
    reference = answers[systems[0]]
    records = []
    for name in systems:
        answer = answers[name]
        summary = samples[name].summary()
        storage = dict(answer.storage) if answer.storage is not None else None
        if storage is not None:
            storage["wall_per_call_s"] = summary["wall_s"] / max(1, storage["calls"])
        records.append(
            {
                "system": name,
                "selectivity": query.selectivity,
                "n_columns": query.n_columns,
                "columns": list(query.columns) if query.columns is not None else None,
                "query": query.text,
                "threshold": query.threshold,
                **summary,
                "bytes_from_storage": answer.bytes_from_storage,
                "rows_out": answer.rows_out,
                "expected_rows": query.expected_rows,
                "selected_nbytes": reference.result_nbytes,
                "result_nbytes": answer.result_nbytes,
                "checksum": answer.checksum,
                "agrees": _agrees(query, answer, reference),
                "skyhook": storage,
            }
        )
    return records, answers


# --- the summary -------------------------------------------------------------------------------


def summarize(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline ratios at 1 % selectivity and 3 columns (or the nearest case run)."""
    keys = [(c["selectivity"], c["n_columns"]) for c in cases]
    selectivity, n_columns = HEADLINE if HEADLINE in keys else keys[0]
    at = {
        c["system"]: c
        for c in cases
        if (c["selectivity"], c["n_columns"]) == (selectivity, n_columns)
    }
    push = at["skyhook_pushdown"]

    def ratio(system: str) -> float:
        return at[system]["wall_s"] / push["wall_s"] if system in at else float("nan")

    bytes_ratio = push["bytes_from_storage"] / max(1, push["selected_nbytes"])
    summary = {
        "selectivity": selectivity,
        "n_columns": n_columns,
        "rows_out": push["rows_out"],
        "selected_nbytes": push["selected_nbytes"],
        "bytes_returned": push["bytes_from_storage"],
        "bytes_ratio": bytes_ratio,
        "wall_s": {system: case["wall_s"] for system, case in at.items()},
        "client_cpu_s": {system: case["client_cpu_s"] for system, case in at.items()},
        "bytes_from_storage": {system: case["bytes_from_storage"] for system, case in at.items()},
        "client_over_pushdown_wall": ratio("skyhook_client"),
        "uproot_over_pushdown_wall": ratio("uproot"),
        "parquet_over_pushdown_wall": ratio("parquet"),
        "all_answers_agree": all(c["agrees"] for c in cases),
    }
    summary["aims"] = {
        "bytes_ratio_at_most_1_2": bytes_ratio <= 1.2,
        "pushdown_5x_faster_than_client": summary["client_over_pushdown_wall"] >= 5,
        "pushdown_faster_than_uproot": summary["uproot_over_pushdown_wall"] > 1,
    }
    return summary


# --- the whole run -----------------------------------------------------------------------------


def run_benchmark(options: Options, keep_answers: bool = False) -> dict[str, Any]:
    """Run everything and return the result (valid against schema.RESULT_SCHEMA).

    With ``keep_answers`` the result also holds, under the key ``"_answers"`` (not part of the
    schema, never written), every system's answer per query, for tests to compare.
    """
    machine = machine_info()
    machine["note"] = options.note
    with tempfile.TemporaryDirectory(prefix="skyhook-bench-") as tmp:
        work_dir = Path(tmp)
        with _store(options, work_dir) as store_url:
            storage_cpu = StorageCpu.for_store(store_url)
            machine["storage_cpu_measured"] = storage_cpu.seconds() is not None
            _log(options, f"preparing {options.events} events in {store_url}")
            workload = prepare(
                options.data_dir, work_dir, store_url, events=options.events, seed=options.seed,
                extra_branches=options.extra_branches, object_size=options.object_size,
            )  # fmt: skip
            result = _measure(options, workload, storage_cpu, keep_answers)
            result["store"] = store_url
            if store_url.startswith("rados:"):  # how the objects spread over the OSDs
                from skyhook_dask.catalog.placement import dataset_placement

                assert workload.file.dataset is not None
                spread = dataset_placement(workload.file.dataset)
                spread["osds"] = {str(osd): n for osd, n in spread["osds"].items()}
                result["placement"] = spread
    result["machine"] = {**machine, "load_average_end": list(os.getloadavg())}
    validate({k: v for k, v in result.items() if k != "_answers"})
    return result


def _measure(
    options: Options, workload: Workload, storage_cpu: StorageCpu, keep_answers: bool
) -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    kept: dict[tuple[float, int | str], dict[str, Answer]] = {}
    for selectivity in options.selectivities:
        for n_columns in options.column_counts:
            query = workload.query(selectivity, n_columns)
            records, answers = run_query(workload, query, SYSTEMS, options.repeats, storage_cpu)
            cases.extend(records)
            if keep_answers:
                kept[(selectivity, n_columns)] = answers
            _log(options, _progress_line(records))
    headline = workload.query(*HEADLINE)
    _log(options, "ingest and uproot full-read throughput")
    ingest = dict(workload.ingest)
    ingest["uproot_full_read"] = uproot_full_read(workload, max(1, min(3, options.repeats)))
    overhead = call_overhead(workload, max(1, min(3, options.repeats)))
    _log(options, "object-level skim")
    skimmed = skim(workload, max(1, min(3, options.repeats)), storage_cpu)
    _log(options, "ADL queries 1-4 as histograms")
    adl_records = adl(workload, max(1, min(3, options.repeats)), storage_cpu)
    _log(options, "command-line latency")
    cli = cli_latency(max(1, min(3, options.repeats)))
    scaling = None
    if options.scaling_workers:
        _log(options, f"Dask scaling with {list(options.scaling_workers)} workers")
        queries = [workload.query(*spec) for spec in SCALING_QUERIES]
        scaling = dask_scaling(workload, queries, options.scaling_workers, options.scaling_repeats)
    profiles: list[dict[str, Any]] = []
    if options.profile_dir is not None:
        profiles = profile_systems(workload, headline, SYSTEMS, options.profile_dir)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": default_name(options),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "events": workload.events,
        "source": str(workload.root_path),
        "branches": len(workload.branches),
        "object_size": options.object_size,
        "objects": len(workload.tree.objects),
        "repeats": options.repeats,
        "cases": cases,
        "ingest": ingest,
        "scaling": scaling,
        "call_overhead": overhead,
        "skim": skimmed,
        "adl": adl_records,
        "cli": cli,
        "summary": summarize(cases),
        "profiles": profiles,
    }
    if keep_answers:
        result["_answers"] = kept
    return result


def _progress_line(records: list[dict[str, Any]]) -> str:
    first = records[0]
    timings = "  ".join(
        f"{r['system']}={r['wall_s'] * 1e3:.1f}ms{'' if r['agrees'] else ' (WRONG)'}"
        for r in records
    )
    return (
        f"sel={first['selectivity']:g} cols={first['n_columns']} rows={first['rows_out']}: "
        + timings
    )
