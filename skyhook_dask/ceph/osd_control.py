"""Stopping, killing, starting and replacing single OSDs of a dev cluster, for fault tests.

A mixin of :class:`skyhook_dask.ceph.cluster.DevCluster`; each operation waits until the
monitor sees its effect (an OSD marked down or up, every placement group clean again).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from .daemons import READY_TIMEOUT, STOP_TIMEOUT, DevClusterError

if TYPE_CHECKING:
    from .cluster import DevCluster


class OsdControl:
    """Single-OSD operations (the methods use the cluster's own helpers)."""

    def stop_osd(self: DevCluster, osd_id: int, kill: bool = False) -> None:
        """Stop one OSD (SIGKILL when ``kill``: no goodbye to its peers) and wait until the
        monitor marks it down."""
        name = f"osd.{osd_id}"
        with self._locked():
            pid = self._pid(name)
            if kill and pid is not None and self._alive(name):
                os.kill(pid, signal.SIGKILL)
                while self._alive(name):
                    time.sleep(0.05)
            self._stop(name, STOP_TIMEOUT)
        self._wait_osd_state(osd_id, up=False)

    def start_osd(self: DevCluster, osd_id: int) -> None:
        """Start one stopped OSD and wait until the monitor marks it up."""
        with self._locked():
            name = f"osd.{osd_id}"
            if not self._alive(name):
                self.start_daemon(name)
        self._wait_osd_state(osd_id, up=True)

    def recreate_osd(self: DevCluster, osd_id: int) -> None:
        """Replace one OSD by an empty one of the same id (its data directory and block file
        destroyed, as after a disk loss); the cluster then backfills it (see wait_clean)."""
        from .bootstrap import create_osd

        self.stop_osd(osd_id, kill=True)
        with self._locked():
            # the monitor's own command: "osd destroy" goes through a manager we do not run
            self.ceph("osd", "destroy-actual", f"osd.{osd_id}", "--yes-i-really-mean-it")
            shutil.rmtree(self.dir / "osd" / f"ceph-{osd_id}")
            (self.dir / f"osd-{osd_id}.block").unlink(missing_ok=True)
            state = self._state()
            fresh = str(uuid.uuid4())
            state["osd_uuids"][state["osd_ids"].index(osd_id)] = fresh
            self.state_path.write_text(json.dumps(state, indent=2))
            create_osd(self, osd_id, fresh, str(self.dir / "monmap"))
            self.start_daemon(f"osd.{osd_id}")
        self._wait_osd_state(osd_id, up=True)

    def wait_clean(self: DevCluster, timeout: float = READY_TIMEOUT) -> None:
        """Wait until every copy of every placement group is in place and clean."""
        from .osd_report import is_clean, osd_reports

        state = self._state()
        wanted = state.get("pg_num", 8) * state.get("size", 1)
        sockets = {n: self.dir / "run" / f"ceph-{n}.asok" for n in self.osd_names}
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            states: Counter[str] = Counter()
            for report in osd_reports(sockets).values():
                states.update(report.get("pg_states", {}))
            last = ", ".join(f"{n} {s}" for s, n in states.items() if not is_clean(s))
            clean = sum(n for s, n in states.items() if is_clean(s))
            if clean == wanted and not last:
                return
            time.sleep(0.5)
        raise DevClusterError(f"placement groups not clean within {timeout:.0f} s: {last}")

    def osd_tree(self: DevCluster) -> list[dict[str, Any]]:
        """Every OSD as the monitor sees it: ``{"id", "up", "in"}``."""
        dump = json.loads(self.ceph("osd", "dump", "--format", "json"))
        return [{"id": o["osd"], "up": bool(o["up"]), "in": bool(o["in"])} for o in dump["osds"]]

    def _wait_osd_state(
        self: DevCluster, osd_id: int, up: bool, timeout: float = READY_TIMEOUT
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(o["id"] == osd_id and o["up"] == up for o in self.osd_tree()):
                return
            time.sleep(0.2)
        state = "up" if up else "down"
        raise DevClusterError(f"osd.{osd_id} was not marked {state} within {timeout:.0f} s")
