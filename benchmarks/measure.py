"""Timing and machine description.

A sample is wall time (``perf_counter``), the CPU time of this whole process (every thread,
``process_time``) and, when the storage runs in known processes (a dev cluster's OSD), their
CPU time too -- pushdown moves work from the client into the storage, so both sides count.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")


class StorageCpu:
    """CPU seconds used so far by the storage daemons (None when they are not known)."""

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.processes = []
        for pid in pids:
            try:
                self.processes.append(psutil.Process(pid))
            except psutil.Error:
                continue

    @classmethod
    def for_store(cls, store_url: str) -> StorageCpu:
        """The OSD and monitor of a dev cluster whose ``ceph.conf`` the URL names."""
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(store_url)
        if parts.scheme != "rados":
            return cls()
        conf = parse_qs(parts.query).get("conf")
        if not conf or not Path(unquote(conf[-1])).parent.joinpath("cluster.json").exists():
            return cls()
        from skyhook_dask.ceph.cluster import DevCluster

        status = DevCluster(Path(unquote(conf[-1])).parent).status()
        daemons = [*status["osds"], status["mon"]]  # every OSD's CPU counts
        return cls([d["pid"] for d in daemons if d["alive"] and d["pid"]])

    def seconds(self) -> float | None:
        if not self.processes:
            return None
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                return None
            total += times.user + times.system
        return total


@dataclass
class Samples:
    wall_s: list[float] = field(default_factory=list)
    client_cpu_s: list[float] = field(default_factory=list)
    storage_cpu_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians (the headline figures), the minimum wall time and every wall sample."""
        return {
            "wall_s": statistics.median(self.wall_s),
            "wall_s_min": min(self.wall_s),
            "wall_samples": [round(s, 6) for s in self.wall_s],
            "client_cpu_s": statistics.median(self.client_cpu_s),
            "storage_cpu_s": (
                statistics.median(self.storage_cpu_s) if self.storage_cpu_s else None
            ),
        }


def timed(function: Callable[[], T], samples: Samples, storage: StorageCpu) -> T:
    """Run ``function`` once, adding its wall, client CPU and storage CPU times to ``samples``."""
    gc.collect()  # the previous result's garbage must not be collected inside this sample
    storage_before = storage.seconds()
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    result = function()
    wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
    storage_after = storage.seconds()
    samples.wall_s.append(wall)
    samples.client_cpu_s.append(cpu)
    if storage_before is not None and storage_after is not None:
        samples.storage_cpu_s.append(storage_after - storage_before)
    return result


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ceph_version() -> str | None:
    try:
        out = subprocess.run(
            ["ceph-osd", "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    import awkward
    import dask
    import pyarrow
    import uproot

    import skyhook_dask

    memory = psutil.virtual_memory()
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory.total / 2**30, 1),
        "python": platform.python_version(),
        "versions": {
            "skyhook_dask": getattr(skyhook_dask, "__version__", "unknown"),
            "pyarrow": pyarrow.__version__,
            "uproot": uproot.__version__,
            "awkward": awkward.__version__,
            "dask": dask.__version__,
            "ceph": _ceph_version(),
        },
        "load_average_start": list(os.getloadavg()),
    }
