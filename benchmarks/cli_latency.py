"""How long the ``skyhook`` command takes, each run a fresh interpreter as a user's shell starts
it: ``--help``, ``ls``, and a query on the bundled 40-event NanoAOD sample, beside the same
read done directly with uproot in a fresh interpreter.

``python -m benchmarks.cli_latency [--repeats N] [--out FILE]`` prints (or writes) the JSON;
``benchmarks/run.py`` records the same section as ``cli``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

QUERY = "select nMuon >= 2, project nMuon Muon_pt"
UPROOT_READ = (
    "import sys, uproot; a = uproot.open(sys.argv[1])['Events'].arrays(['nMuon', 'Muon_pt']); "
    "print(a[a.nMuon >= 2])"
)


def _wall(command: Sequence[str], env: dict[str, str], repeats: int) -> list[float]:
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
        walls.append(time.perf_counter() - start)
    return walls


def cli_latency(repeats: int = 5) -> dict[str, Any]:
    """Median and minimum wall seconds per command; ``query_vs_uproot`` is the ratio of the
    medians of the CLI query and the uproot read of the same branches."""
    from skyhook_dask.data import sample_path

    sample = str(sample_path("nano_dimuon.root"))
    skyhook = [sys.executable, "-m", "skyhook_dask.cli"]
    with tempfile.TemporaryDirectory(prefix="skyhook-cli-") as store:
        env = {**os.environ, "SKYHOOK_STORE": store}
        env.pop("DASK_SCHEDULER_ADDRESS", None)
        subprocess.run(
            [*skyhook, "ingest", "demo", sample], env=env, check=True, capture_output=True
        )
        commands = {
            "help": [*skyhook, "--help"],
            "ls": [*skyhook, "ls"],
            "query": [*skyhook, "query", "demo", QUERY],
            "uproot_read": [sys.executable, "-c", UPROOT_READ, sample],
            "python_start": [sys.executable, "-c", "pass"],
        }
        walls = {name: _wall(command, env, repeats) for name, command in commands.items()}
    result: dict[str, Any] = {
        name: {"wall_s": statistics.median(w), "wall_s_min": min(w), "runs": len(w)}
        for name, w in walls.items()
    }
    result["query_vs_uproot"] = result["query"]["wall_s"] / result["uproot_read"]["wall_s"]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the JSON here")
    args = parser.parse_args(argv)
    text = json.dumps(cli_latency(args.repeats), indent=1) + "\n"
    if args.out is not None:
        args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
