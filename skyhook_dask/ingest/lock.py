"""The lock that serializes a dataset's manifest updates, and who holds it.

The holder's identity is recorded so that a later writer can tell the holder has died.

A writer killed while it holds ``{dataset}/manifest.lock`` (SIGKILL, power cut of a container)
never releases it. Waiting for the lock to grow stale takes minutes; but when the holder ran on
this same machine, in this same PID namespace, its death can be seen at once: its PID no longer
exists, or now belongs to a process started at another time (PID reuse). A holder on another
machine, or one whose identity cannot be read (not Linux), is never declared dead here.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..exceptions import DatasetExistsError, ObjectExistsError, ObjectNotFoundError
from ..formats import manifest as mf
from ..storage import ObjectStore

__all__ = ["dataset_lock", "holder_is_dead", "lock_record", "owner_record"]


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


# --- the lock object --------------------------------------------------------------------------


@contextmanager
def dataset_lock(
    store: ObjectStore, dataset: str, *, timeout: float = 120.0, stale_after: float = 600.0
) -> Iterator[None]:
    """Serialize manifest updates of one dataset (an exclusively created lock object).

    A lock older than ``stale_after`` seconds, or whose holder ran on this machine and no
    longer does (killed), is taken to belong to a writer that died. Taking it over goes
    through :meth:`ObjectStore.delete_if`, so of the writers that found it one at most
    succeeds. (A live writer holding it past ``stale_after`` -- a publish takes seconds --
    would lose it; the exclusive version record still keeps its update from being lost.)
    """
    name = mf.lock_name(dataset)
    token = json.dumps({"token": uuid.uuid4().hex, "time": time.time(), **owner_record()}).encode()
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            store.write(name, token, exclusive=True)
            break
        except ObjectExistsError:
            try:
                held = store.read(name)
                held_since = _lock_time(store, name, held)
            except ObjectNotFoundError:
                continue  # released meanwhile: try again
            if time.time() - held_since > stale_after or holder_is_dead(lock_record(held)):
                store.delete_if(name, held)  # atomic: never another writer's new lock
                continue
            if time.monotonic() > deadline:
                raise DatasetExistsError(
                    f"dataset {dataset!r} is being updated by another writer (lock {name!r} "
                    f"held for {time.time() - held_since:.0f} s); retry later"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        store.delete_if(name, token)  # not a lock that was broken and taken meanwhile


def lock_record(held: bytes) -> dict[str, Any]:
    try:
        record = json.loads(held)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _lock_time(store: ObjectStore, name: str, held: bytes) -> float:
    """When the lock was taken (its own record ``held``, else the object's mtime)."""
    try:
        return float(lock_record(held)["time"])
    except (ValueError, KeyError, TypeError):
        return store.stat(name).mtime
