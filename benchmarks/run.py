"""Command line of the benchmark: ``python benchmarks/run.py [--quick | --smoke] [options]``.

Without ``--store`` a Ceph dev cluster (one monitor, one OSD, cephx, the skyhook class) is
started in a temporary directory and stopped at the end. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.runner import RESULTS_DIR, default_name, options_for, run_benchmark


def _size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (binary): ``64M`` is 64 MiB."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    suffix = text[-1:].upper()
    return int(float(text[:-1]) * units[suffix]) if suffix in units else int(text)


def _workers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark in-storage pushdown against client-side filtering, uproot and "
        "Parquet on the same NanoAOD-like data."
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100k events, 8 MiB objects (CI)")
    size.add_argument("--smoke", action="store_true", help="3k events, one repeat (tests)")
    parser.add_argument("--events", type=int, help="events to generate (full: 1,000,000)")
    parser.add_argument("--object-size", type=_size, help="object size, e.g. 64M (full: 64 MiB)")
    parser.add_argument("--repeats", type=int, help="timed repeats per case (full: 5)")
    parser.add_argument("--extra-branches", type=int, help="filler branches (default 50)")
    parser.add_argument("--seed", type=int, help="generator seed (default 1)")
    parser.add_argument("--store", help="store URL to use instead of a fresh dev cluster")
    parser.add_argument("--osds", type=int, help="OSDs of the fresh dev cluster (default 1)")
    parser.add_argument("--size", type=int, help="copies of each object there (default 1)")
    parser.add_argument("--data-dir", type=Path, help="cache of generated ROOT files")
    parser.add_argument("--out", type=Path, help="JSON output (default results/<name>.json)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots into DIR")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write cProfile texts")
    parser.add_argument(
        "--scaling-workers", type=_workers, help="Dask worker counts, e.g. 1,2 ('' to skip)"
    )
    parser.add_argument("--note", default="", help="conditions to record with the results")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    options = options_for(
        mode,
        events=args.events,
        object_size=args.object_size,
        repeats=args.repeats,
        extra_branches=args.extra_branches,
        seed=args.seed,
        store=args.store,
        osds=args.osds,
        size=args.size,
        data_dir=args.data_dir,
        scaling_workers=args.scaling_workers,
        profile_dir=args.profile,
        note=args.note,
        verbose=not args.quiet,
    )
    result = run_benchmark(options)
    out = args.out or RESULTS_DIR / f"{default_name(options)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    if args.plots is not None:
        from benchmarks.plots import make_plots

        for path in make_plots(result, args.plots):
            print(f"wrote {path}")
    summary = result["summary"]
    print(json.dumps(summary, indent=1))
    if not summary["all_answers_agree"]:
        print("some systems gave answers that differ from the ground truth", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
