"""Writing a dataset's objects and publishing its manifest safely.

Shared by ROOT ingestion (:mod:`skyhook_dask.ingest.pipeline`) and table writing
(:mod:`skyhook_dask.ingest.tables`). Manifest updates of one dataset are serialized by a lock object
(``{dataset}/manifest.lock``, created exclusively); objects are written before the manifest
that references them, and garbage is collected only under the lock, after a publish.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from ..exceptions import DatasetExistsError, IngestError, ObjectExistsError, ObjectNotFoundError
from ..formats import manifest as mf
from ..formats.objects import write_object
from ..storage import ObjectStore
from .lock import holder_is_dead, owner_record

# --- objects -----------------------------------------------------------------------------------


def rows_per_object(total_rows: int, bytes_per_row: float, object_size: int) -> int:
    """Rows per object that cut ``total_rows`` into equal objects of at most ~``object_size``."""
    if total_rows <= 0:
        return 1
    parts = max(1, math.ceil(total_rows * bytes_per_row / object_size))
    return math.ceil(total_rows / parts)


class ObjectWriter:
    """Accumulates row ranges of one tree and writes an object every ``rows_per_object`` rows."""

    def __init__(
        self,
        store: ObjectStore,
        name_of: Callable[[int], str],
        rows_per_object: int,
        compression: str | None,
    ) -> None:
        self.store, self.name_of = store, name_of
        self.rows_per_object, self.compression = max(1, rows_per_object), compression
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.next_event = 0
        self.objects: list[dict[str, Any]] = []

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= self.rows_per_object:
            combined = pa.concat_tables(self.pending)
            self._emit(combined.slice(0, self.rows_per_object))
            rest = combined.slice(self.rows_per_object)
            self.pending = [rest] if rest.num_rows else []
            self.pending_rows = rest.num_rows

    def flush(self) -> None:
        if self.pending_rows:
            self._emit(pa.concat_tables(self.pending))
        self.pending, self.pending_rows = [], 0

    def _emit(self, table: pa.Table) -> None:
        # One record batch per object, copied so that no buffer starts mid-way (a slice's
        # offsets): then nbytes equals that of the table read back from the object.
        columns = [pa.concat_arrays(column.chunks) for column in table.columns]
        table = pa.Table.from_arrays(columns, schema=table.schema)
        data = write_object(table, self.compression)
        name = self.name_of(len(self.objects))
        # exclusive: the ingest folder is fresh, so a name taken means two writers collide --
        # unless it is a re-run of this same task (its Dask worker died) meeting its own
        # earlier object: the same input gives the same bytes, which are then kept.
        try:
            self.store.write(name, data, exclusive=True)
        except ObjectExistsError:
            if self.store.read(name) != data:
                raise
        self.objects.append(
            {
                "name": name,
                "first_event": self.next_event,
                "stop_event": self.next_event + table.num_rows,
                "rows": table.num_rows,
                "bytes": len(data),
                "uncompressed_bytes": table.nbytes,
                "checksum": mf.checksum(data),
                "stats": mf.table_stats(table),
            }
        )
        self.next_event += table.num_rows


@contextmanager
def dataset_lock(
    store: ObjectStore, dataset: str, *, timeout: float = 120.0, stale_after: float = 600.0
) -> Iterator[None]:
    """Serialize manifest updates of one dataset (an exclusively created lock object).

    A lock older than ``stale_after`` seconds, or whose holder ran on this machine and no
    longer does (killed), is taken to belong to a writer that died. Taking it over goes
    through :meth:`ObjectStore.delete_if`, so of the writers that found it one at most
    succeeds. (A live writer holding it past ``stale_after`` -- a publish takes seconds --
    would lose it.)
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
            if time.time() - held_since > stale_after or holder_is_dead(_record(held)):
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


def _record(held: bytes) -> dict[str, Any]:
    try:
        record = json.loads(held)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _lock_time(store: ObjectStore, name: str, held: bytes) -> float:
    """When the lock was taken (its own record ``held``, else the object's mtime)."""
    try:
        return float(_record(held)["time"])
    except (ValueError, KeyError, TypeError):
        return store.stat(name).mtime


def read_manifest(store: ObjectStore, dataset: str) -> dict[str, Any] | None:
    where = mf.manifest_name(dataset)
    try:
        return mf.loads(store.read(where), f"{where} in {store.url}")
    except ObjectNotFoundError:
        return None


def check_objects_present(
    store: ObjectStore, dataset: str, entries: Sequence[dict[str, Any]]
) -> None:
    """Every object the entries name must exist (a concurrent replace may have removed them)."""
    wanted = {o["name"] for e in entries for t in e["trees"] for o in t["objects"]}
    prefixes = {name.rsplit("/", 1)[0] + "/" for name in wanted}
    present = {n for prefix in prefixes for n in store.list(prefix)}
    missing = sorted(wanted - present)
    if missing:
        raise IngestError(
            f"{len(missing)} objects of dataset {dataset!r} vanished before publishing (e.g. "
            f"{missing[0]!r}): another writer replaced the dataset meanwhile; ingest again"
        )


def collect_garbage_locked(store: ObjectStore, dataset: str) -> list[str]:
    """Delete objects under ``{dataset}/data/`` not referenced by its manifest; returns them.

    The caller holds :func:`dataset_lock`, so no publish races with the deletion.
    """
    manifest = read_manifest(store, dataset)
    referenced = mf.referenced_objects(manifest) if manifest else set()
    garbage = [n for n in store.list(mf.data_prefix(dataset)) if n not in referenced]
    for name in garbage:
        store.delete(name)
    return garbage


def discard_objects(store: ObjectStore, dataset: str, ingest_id: str) -> None:
    """Best-effort removal of one unpublished ingest's objects."""
    for name in list(store.list(mf.data_prefix(dataset, ingest_id))):
        with contextlib.suppress(Exception):  # the next publish collects what is left
            store.delete(name)
