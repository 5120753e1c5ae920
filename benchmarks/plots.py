"""PNG plots of a benchmark result: wall time and bytes moved against selectivity (one panel per
column set, one line per system), Dask scaling, and the ADL queries' wall times.

``python benchmarks/plots.py results/full.json --out results/`` redraws them from a JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed
import matplotlib.pyplot as plt

STYLE = {
    "skyhook_pushdown": {"color": "tab:blue", "marker": "o", "label": "Skyhook pushdown (in OSD)"},
    "skyhook_client": {"color": "tab:red", "marker": "s", "label": "Skyhook, filter in client"},
    "uproot": {"color": "tab:green", "marker": "^", "label": "uproot (ROOT file)"},
    "parquet": {"color": "tab:purple", "marker": "D", "label": "Parquet (pyarrow.dataset)"},
}


def _column_sets(cases: list[dict[str, Any]]) -> list[int | str]:
    seen: dict[int | str, None] = {}
    for case in cases:
        seen.setdefault(case["n_columns"])
    return list(seen)


def _panels(result: dict[str, Any], metric: str, ylabel: str, title: str, path: Path) -> Path:
    cases = result["cases"]
    sets = _column_sets(cases)
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4), sharey=True)
    axes = [axes] if len(sets) == 1 else list(axes)
    for ax, n_columns in zip(axes, sets, strict=True):
        subset = [c for c in cases if c["n_columns"] == n_columns]
        for system, style in STYLE.items():
            points = sorted(
                (c["selectivity"] * 100, c[metric]) for c in subset if c["system"] == system
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, **style)
        if metric == "bytes_from_storage":
            selected = sorted({(c["selectivity"] * 100, c["selected_nbytes"]) for c in subset})
            xs, ys = zip(*selected, strict=True)
            ax.plot(xs, ys, color="black", linestyle="--", label="selected rows x columns")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("selectivity (%)")
        ax.set_title(f"{n_columns} column{'s' if n_columns != 1 else ''}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"{title} -- {result['events']:,} events, {result['branches']} branches")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scaling(result: dict[str, Any], path: Path) -> Path | None:
    scaling = result.get("scaling")
    if not scaling or not scaling["runs"]:
        return None
    queries = list(dict.fromkeys((r["selectivity"], r["n_columns"]) for r in scaling["runs"]))
    fig, axes = plt.subplots(1, len(queries), figsize=(5 * len(queries), 4))
    axes = [axes] if len(queries) == 1 else list(axes)
    for ax, (selectivity, n_columns) in zip(axes, queries, strict=True):
        runs = [
            r
            for r in scaling["runs"]
            if (r["selectivity"], r["n_columns"]) == (selectivity, n_columns)
        ]
        for system, color in (("read_skyhook", "tab:blue"), ("read_parquet", "tab:purple")):
            points = sorted((r["workers"], r["wall_s"]) for r in runs if r["system"] == system)
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", color=color, label=system)
        ax.set_xlabel("Dask workers (processes, 1 thread each)")
        ax.set_xticks(sorted({r["workers"] for r in runs}))
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{selectivity * 100:g} % selected, {n_columns} columns", fontsize=10)
    axes[0].set_ylabel("wall time of .compute(), median (s)")
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"Dask scaling -- {result['events']:,} events")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


ADL_SYSTEMS = {
    "skyhook": ("tab:blue", "Skyhook (histogram in OSD; coffea executor for Q5-Q8)"),
    "coffea": ("tab:orange", "coffea Runner (ROOT file)"),
    "uproot": ("tab:green", "uproot + awkward + hist (ROOT file)"),
}


def adl_plot(result: dict[str, Any], path: Path) -> Path | None:
    """Median wall time of each ADL query, one bar per system (none without ADL records)."""
    records = result.get("adl") or []
    if not records:
        return None
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(ADL_SYSTEMS)
    for i, (system, (color, label)) in enumerate(ADL_SYSTEMS.items()):
        xs = [q for q, r in enumerate(records) if system in r["systems"]]
        walls = [records[q]["systems"][system]["wall_s"] * 1e3 for q in xs]
        ax.bar([x + (i - 1) * width for x in xs], walls, width, color=color, label=label)
    ax.set_xticks(range(len(records)), [r["query"] for r in records])
    ax.set_yscale("log")
    ax.set_ylabel("wall time, median (ms)")
    ax.set_title(f"ADL benchmark queries, {result['events']:,} events")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the plots of ``result`` into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.get("name", "bench")
    written = [
        _panels(result, "wall_s", "wall time, median (s)", "Query time",
                out_dir / f"{name}-time-vs-selectivity.png"),
        _panels(result, "bytes_from_storage", "bytes from storage to client", "Bytes moved",
                out_dir / f"{name}-bytes-vs-selectivity.png"),
    ]  # fmt: skip
    extra = [_scaling(result, out_dir / f"{name}-scaling.png"),
             adl_plot(result, out_dir / f"{name}-adl.png")]  # fmt: skip
    return written + [path for path in extra if path]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw the plots of a benchmark result.")
    parser.add_argument("result", type=Path, help="a JSON file written by run.py")
    parser.add_argument("--out", type=Path, help="directory (default: beside the JSON)")
    args = parser.parse_args(argv)
    result = json.loads(args.result.read_text())
    for path in make_plots(result, args.out or args.result.parent):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
