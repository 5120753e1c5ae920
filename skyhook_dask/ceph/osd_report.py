"""What each OSD of a dev cluster holds and how its placement groups are, without a manager.

Ceph reports PG states and per-OSD usage through its manager daemon, which the dev cluster
does not run. Each OSD answers for itself on its admin socket instead: ``perf dump`` (groups,
bytes stored) and ``dump_pgstate_history`` (the state each of its groups is in now). Object
copies per OSD come from the pool's listing and the cluster's own placement.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ..storage.placement import pool_map
from ..storage.rados import RadosStore
from .daemons import DevClusterError, run_command


def admin_socket_report(socket: Path) -> dict[str, Any]:
    """``{"pgs", "primary_pgs", "stored_bytes", "pg_states": {state: count}}`` of one OSD."""

    def ask(command: str) -> Any:
        reply = run_command(["ceph", "--admin-daemon", str(socket), *command.split()],
                            what=f"{command} on {socket.name}", timeout=10)  # fmt: skip
        return json.loads(reply)

    perf = ask("perf dump")
    states = Counter(pg["currently"] for pg in ask("dump_pgstate_history")["pgs"])
    return {
        "pgs": perf["osd"]["numpg"],
        "primary_pgs": perf["osd"]["numpg_primary"],
        "stored_bytes": perf["bluestore"]["bluestore_stored"],
        "pg_states": dict(sorted(states.items())),
    }


def is_clean(state: str) -> bool:
    """A group that is whole on this OSD: the primary's Active/Clean, a replica's
    ReplicaActive without recovery under way."""
    return state.endswith("Active/Clean") or state.endswith("ReplicaActive/RepNotRecovering")


def object_copies(conf: Path, pool: str) -> dict[int, int]:
    """How many copies of the pool's objects each OSD holds (acting sets), as client.admin."""
    store = RadosStore(pool, conf=str(conf), name="client.admin", timeout=10)
    try:
        mapping = pool_map(store)
        copies: Counter[int] = Counter()
        for name in store.list():
            copies.update(mapping.place(name).acting)
        return dict(sorted(copies.items()))
    finally:
        store.close()


def osd_reports(sockets: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The admin-socket report of every OSD whose socket exists (others: an error line)."""
    reports: dict[str, dict[str, Any]] = {}
    for name, socket in sockets.items():
        try:
            reports[name] = admin_socket_report(socket)
        except (DevClusterError, ValueError, KeyError) as exc:
            reports[name] = {"error": str(exc).splitlines()[0]}
    return reports
