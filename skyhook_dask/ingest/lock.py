"""Who holds a dataset lock, recorded so that a later writer can tell the holder has died.

A writer killed while it holds ``{dataset}/manifest.lock`` (SIGKILL, power cut of a container)
never releases it. Waiting for the lock to grow stale takes minutes; but when the holder ran on
this same machine, in this same PID namespace, its death can be seen at once: its PID no longer
exists, or now belongs to a process started at another time (PID reuse). A holder on another
machine, or one whose identity cannot be read (not Linux), is never declared dead here.
"""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["holder_is_dead", "owner_record"]


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(b")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def owner_record() -> dict[str, Any]:
    """The identity of this process, to be stored in a lock it takes."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pidns": _pid_namespace(),
        "started": _start_time(pid),
    }


def holder_is_dead(record: dict[str, Any]) -> bool:
    """True only when the lock's holder certainly no longer runs."""
    namespace = _pid_namespace()
    if namespace is None or record.get("pidns") != namespace:
        return False
    if record.get("host") != socket.gethostname():
        return False
    pid, started = record.get("pid"), record.get("started")
    if not isinstance(pid, int) or not isinstance(started, int):
        return False
    return _start_time(pid) != started
