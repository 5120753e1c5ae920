"""Markdown tables of a benchmark result (the tables of benchmarks/README.md).

``python benchmarks/report.py results/full.json`` prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SYSTEMS = ("skyhook_pushdown", "skyhook_client", "uproot", "parquet")
SHORT = {"skyhook_pushdown": "pushdown", "skyhook_client": "client-side", "uproot": "uproot",
         "parquet": "Parquet"}  # fmt: skip


def save(result: dict[str, Any], out: Path, plot: Any) -> None:
    """Write ``result`` as JSON to ``out`` and ``plot(result, out.png)``, and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f}" if n < 1e6 else f"{n / 1e6:.1f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}" if seconds >= 0.1 else f"{seconds * 1e3:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def headline(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = [
        ["rows selected", f"{s['rows_out']:,}"],
        ["Arrow bytes of the selected rows x columns", f"{s['selected_nbytes']:,}"],
        ["bytes returned by the OSD", f"{s['bytes_returned']:,}"],
        ["bytes ratio (returned / selected)", f"{s['bytes_ratio']:.3f}"],
    ]
    for system in SYSTEMS:
        if system in s["wall_s"]:
            rows.append([f"wall, {SHORT[system]} (ms, median)", _ms(s["wall_s"][system])])
    rows += [
        ["client-side / pushdown wall", f"{s['client_over_pushdown_wall']:.2f}x"],
        ["uproot / pushdown wall", f"{s['uproot_over_pushdown_wall']:.2f}x"],
        ["Parquet / pushdown wall", f"{s['parquet_over_pushdown_wall']:.2f}x"],
    ]
    title = f"{s['selectivity'] * 100:g} % selected, {s['n_columns']} columns"
    return f"Headline ({title}):\n\n" + _table(["", "value"], rows)


def matrix(result: dict[str, Any]) -> str:
    """One row per query: median wall (ms) and MB from storage per system, and ratios."""
    by_query: dict[tuple[float, Any], dict[str, dict[str, Any]]] = {}
    for case in result["cases"]:
        by_query.setdefault((case["selectivity"], case["n_columns"]), {})[case["system"]] = case
    header = ["sel.", "cols", "rows out"]
    header += [f"{SHORT[s]} ms" for s in SYSTEMS]
    header += [f"{SHORT[s]} MB" for s in SYSTEMS]
    header += ["selected MB", "client/push", "uproot/push"]
    rows = []
    for (selectivity, n_columns), cases in by_query.items():
        push = cases["skyhook_pushdown"]
        row = [f"{selectivity * 100:g} %", str(n_columns), f"{push['rows_out']:,}"]
        row += [_ms(cases[s]["wall_s"]) for s in SYSTEMS]
        row += [_mb(cases[s]["bytes_from_storage"]) for s in SYSTEMS]
        row.append(_mb(push["selected_nbytes"]))
        row.append(f"{cases['skyhook_client']['wall_s'] / push['wall_s']:.1f}x")
        row.append(f"{cases['uproot']['wall_s'] / push['wall_s']:.2f}x")
        rows.append(row)
    return _table(header, rows)


def cpu(result: dict[str, Any]) -> str:
    """Client and storage (OSD + monitor) CPU seconds per query for the two Skyhook systems."""
    header = ["sel.", "cols", "pushdown client CPU s", "pushdown OSD CPU s",
              "client-side client CPU s", "client-side OSD CPU s", "uproot CPU s"]  # fmt: skip
    by_query: dict[tuple[float, Any], dict[str, dict[str, Any]]] = {}
    for case in result["cases"]:
        by_query.setdefault((case["selectivity"], case["n_columns"]), {})[case["system"]] = case

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = []
    for (selectivity, n_columns), cases in by_query.items():
        push, client = cases["skyhook_pushdown"], cases["skyhook_client"]
        rows.append(
            [f"{selectivity * 100:g} %", str(n_columns), fmt(push["client_cpu_s"]),
             fmt(push["storage_cpu_s"]), fmt(client["client_cpu_s"]),
             fmt(client["storage_cpu_s"]), fmt(cases["uproot"]["client_cpu_s"])]
        )  # fmt: skip
    return _table(header, rows)


def throughput(result: dict[str, Any]) -> str:
    ingest, full = result["ingest"], result["ingest"]["uproot_full_read"]
    rows = [
        ["ingest into the store", f"{ingest['wall_s']:.2f}", f"{ingest['events_per_s']:,.0f}",
         f"{ingest['source_mb_per_s']:.1f}", f"{ingest['arrow_mb_per_s']:.1f}"],
        ["uproot, read every branch", f"{full['wall_s']:.2f}", f"{full['events_per_s']:,.0f}",
         f"{full['source_mb_per_s']:.1f}", "-"],
    ]  # fmt: skip
    header = ["", "wall s", "events/s", "ROOT-file MB/s", "Arrow MB/s"]
    return _table(header, rows)


def scaling(result: dict[str, Any]) -> str:
    if not result.get("scaling"):
        return "(no Dask scaling measured)"
    rows = [
        [r["system"], f"{r['selectivity'] * 100:g} %", str(r["n_columns"]), str(r["workers"]),
         str(r["partitions"]), f"{r['rows_out']:,}", _ms(r["wall_s"]), f"{r['speedup']:.2f}x"]
        for r in result["scaling"]["runs"]
    ]  # fmt: skip
    header = ["reader", "sel.", "cols", "workers", "partitions", "rows", "wall ms", "speedup"]
    return _table(header, rows)


def skim(result: dict[str, Any]) -> str:
    if "skim" not in result:
        return "(no skim measured)"
    case = result["skim"]
    rows = [
        [system, _ms(r["wall_s"]), f"{r['bytes_from_storage'] / 1e6:.2f}"]
        for system, r in case["systems"].items()
    ]
    agreement = "equal answers" if case["agrees"] else "ANSWERS DIFFER"
    return (
        f"`{case['query']}` ({case['elements_out']:,} values kept; {agreement}; Skyhook/uproot: "
        f"{case['wall_ratio']:.2f}x the wall time, {case['bytes_ratio']:.3f}x the bytes)\n\n"
        + _table(["system", "wall ms", "MB from storage"], rows)
    )


def adl(result: dict[str, Any]) -> str:
    if "adl" not in result:
        return "(no ADL queries measured)"

    def wall(r: dict[str, Any], system: str) -> str:
        return _ms(r["systems"][system]["wall_s"]) if system in r["systems"] else ""

    def ratio(r: dict[str, Any], system: str) -> str:
        value = r.get(f"{system}_over_skyhook_wall")
        return f"{value:.2f}x" if value is not None else ""

    def moved(r: dict[str, Any], system: str) -> str:
        if system not in r["systems"]:
            return ""
        size = r["systems"][system]["bytes_from_storage"]
        return f"{size / 1024:.1f} KiB" if size < 1e6 else f"{size / 1e6:.1f} MB"

    rows = [
        [r["query"], r["title"], f"{r['entries']:,}", "yes" if r["identical"] else "NO",
         wall(r, "skyhook"), wall(r, "coffea"), wall(r, "uproot"), ratio(r, "coffea"),
         ratio(r, "uproot"), moved(r, "skyhook"), moved(r, "coffea"), moved(r, "uproot")]
        for r in result["adl"]
    ]  # fmt: skip
    header = ["query", "histogram of", "entries", "identical", "Skyhook ms", "coffea Runner ms",
              "uproot ms", "coffea / Skyhook", "uproot / Skyhook", "from Skyhook",
              "coffea read", "uproot read"]  # fmt: skip
    return _table(header, rows)


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    overhead = result["call_overhead"]
    parts = [
        f"{result['events']:,} events, {result['branches']} branches, {result['objects']} "
        f"objects of <= {result['object_size'] / 2**20:g} MiB (Arrow), median of "
        f"{result['repeats']} repeats; {m['cpus']} x {m['cpu_model']}, {m['memory_gib']} GiB; "
        f"load average {m['load_average_start'][0]:.1f} at start, "
        f"{m['load_average_end'][0]:.1f} at end; created {result['created']}.",
        headline(result),
        "Every query (ms: median wall time; MB: bytes from storage to the client):",
        matrix(result),
        "CPU seconds (median per query; OSD CPU from /proc, 10 ms resolution):",
        cpu(result),
        "Ingest against uproot's full read:",
        throughput(result),
        f"One object call that selects nothing: {overhead['wall_per_call_s'] * 1e3:.2f} ms "
        f"(median of {overhead['calls']} sequential calls).",
        "ADL queries 1-4, histograms filled in storage against uproot + hist in the client:",
        adl(result),
        "Object-level skim, in storage against uproot + awkward in the client:",
        skim(result),
        "Dask scaling:",
        scaling(result),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a benchmark result as Markdown tables.")
    parser.add_argument("result", type=Path, help="a JSON file written by run.py")
    args = parser.parse_args(argv)
    sys.stdout.write(render(json.loads(args.result.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
