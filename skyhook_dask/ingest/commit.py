"""Publishing a dataset's manifest: one writer at a time, every publication a numbered version.

A dataset's history is a list of manifests, ``{dataset}/versions/00000001.json`` onwards, and
``{dataset}/manifest.json`` is a copy of the newest: a reader needs one read and sees one whole
version, the old or the new. A writer, holding the dataset lock (``{dataset}/manifest.lock``):

1. reads the newest version k (the head; a record past it, left by a writer killed before it
   replaced the head, is taken as published when all its objects exist);
2. creates the record of version k+1 *exclusively*. This is the compare-and-swap that makes a
   lost update impossible even when a writer's lock was taken from it as stale: of two writers
   building k+1, one creates the record and the other builds again on top of it;
3. replaces the head, then removes garbage.

Versions of one history only add files (an append, a written table, a registered schema);
creating or overwriting a dataset starts a new history and removes the records before it. So
every object of a listed version is also the head's, and garbage is what the head does not
reference -- except the objects of ingests still under way (``{dataset}/ingests/{id}``, held
by the process running them), which a concurrent append is about to publish.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..catalog.model import Dataset
from ..exceptions import (
    DatasetExistsError,
    DuplicateFileError,
    IngestError,
    ObjectExistsError,
    ObjectNotFoundError,
)
from ..formats import manifest as mf
from ..storage import ObjectStore, open_store
from .lock import dataset_lock, holder_is_dead, lock_record, owner_record

__all__ = [
    "collect_garbage",
    "commit",
    "dataset_lock",
    "discard_objects",
    "ingest_under_way",
    "publish",
    "read_manifest",
]

Manifest = dict[str, Any]
COMMIT_ATTEMPTS = 20
# An ingest marker older than this belongs to a writer that died elsewhere (on this machine a
# dead holder is seen at once): long, since one ingest of a large dataset may run for hours.
INGEST_STALE_AFTER = 2 * 24 * 3600.0


# --- versions ----------------------------------------------------------------------------------


def read_manifest(store: ObjectStore, dataset: str) -> Manifest | None:
    where = mf.manifest_name(dataset)
    try:
        return mf.loads(store.read(where), f"{where} in {store.url}")
    except ObjectNotFoundError:
        return None


def _newest(store: ObjectStore, dataset: str) -> Manifest | None:
    """The head, rolled forward over records a killed writer published without replacing it."""
    current = read_manifest(store, dataset)
    while True:
        following = mf.version_name(dataset, (mf.dataset_version(current) if current else 0) + 1)
        try:
            data = store.read(following)
        except ObjectNotFoundError:
            return current
        manifest = mf.loads(data, f"{following} in {store.url}")
        try:
            check_objects_present(store, dataset, manifest["files"])
        except IngestError:  # its writer failed before the head and removed its objects
            store.delete_if(following, data)
            return current
        current = manifest


def commit(
    store: ObjectStore,
    dataset: str,
    change: Callable[[Manifest | None], Manifest],
    *,
    append: bool,
) -> Manifest:
    """Publish ``change(newest manifest or None)`` as the dataset's next version; returns it.

    ``append``: the change only adds to an existing dataset, whose history then goes on; else
    (and for a new dataset) the version starts a new history. ``change`` gets a copy it may
    modify; it runs under the lock and may run again if another writer got in first.
    """
    with dataset_lock(store, dataset):
        for _ in range(COMMIT_ATTEMPTS):
            current = _newest(store, dataset)
            if current is not None:  # a manifest from before versions were recorded
                _record_version(store, dataset, current)
            manifest = change(copy.deepcopy(current) if current is not None else None)
            version = (mf.dataset_version(current) if current else 0) + 1
            start = mf.history_start(current) if append and current else version
            manifest.update(dataset_version=version, history_start=start, created=mf.utc_now())
            data = mf.dumps(manifest)
            record = mf.version_name(dataset, version)
            try:
                store.write(record, data, exclusive=True)
            except ObjectExistsError:
                continue  # published meanwhile by a writer whose lock we took: build on it
            try:
                store.write(mf.manifest_name(dataset), data)
            except BaseException:
                with contextlib.suppress(Exception):  # not published: its objects will go
                    store.delete_if(record, data)
                raise
            collect_garbage_locked(store, dataset)
            return manifest
    raise DatasetExistsError(
        f"dataset {dataset!r} changed {COMMIT_ATTEMPTS} times while this writer published; "
        "retry later"
    )


def _record_version(store: ObjectStore, dataset: str, manifest: Manifest) -> None:
    with contextlib.suppress(ObjectExistsError):
        record = mf.version_name(dataset, mf.dataset_version(manifest))
        if not store.exists(record):
            store.write(record, mf.dumps(manifest), exclusive=True)


def check_no_duplicates(
    dataset: str, files: Sequence[Mapping[str, Any]], added: Sequence[Mapping[str, Any]]
) -> None:
    """DuplicateFileError when an added ROOT file (by its UUID) is in ``files`` or added twice."""
    known = {f["uuid"]: f["name"] for f in files if f.get("uuid")}
    for entry in added:
        uuid_ = entry.get("uuid")
        if uuid_ in known:
            raise duplicate_file(dataset, entry.get("url") or entry["name"], known[uuid_], uuid_)
        if uuid_:
            known[uuid_] = entry["name"]


def duplicate_file(dataset: str, source: str, existing: str, uuid_: str) -> DuplicateFileError:
    return DuplicateFileError(
        f"{source} is already in dataset {dataset!r} as file {existing!r} (same ROOT file "
        f"UUID {uuid_}); pass allow_duplicates=True to add it again"
    )


# --- objects and garbage -----------------------------------------------------------------------


@contextmanager
def ingest_under_way(store: ObjectStore, dataset: str, ingest_id: str) -> Iterator[None]:
    """Mark ``ingest_id`` as running, so that no publish collects its objects meanwhile."""
    name = mf.ingest_marker_name(dataset, ingest_id)
    store.write(name, json.dumps({"time": time.time(), **owner_record()}).encode())
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a left-over marker only delays collection
            store.delete(name)


def _is_under_way(store: ObjectStore, marker: str) -> bool:
    try:
        record = lock_record(store.read(marker))
    except ObjectNotFoundError:
        return False
    started = record.get("time")
    if not isinstance(started, int | float) or time.time() - started > INGEST_STALE_AFTER:
        return False
    return not holder_is_dead(record)


def check_objects_present(
    store: ObjectStore, dataset: str, entries: Sequence[Mapping[str, Any]]
) -> None:
    """Every object the entries name must exist (a concurrent replace may have removed them)."""
    wanted = {name for e in entries for t in e["trees"] for name in mf.tree_object_names(t)}
    prefixes = {name.rsplit("/", 1)[0] + "/" for name in wanted}
    present = {n for prefix in prefixes for n in store.list(prefix)}
    missing = sorted(wanted - present)
    if missing:
        raise IngestError(
            f"{len(missing)} objects of dataset {dataset!r} vanished before publishing (e.g. "
            f"{missing[0]!r}): another writer replaced the dataset meanwhile; ingest again"
        )


def collect_garbage_locked(store: ObjectStore, dataset: str) -> list[str]:
    """Delete what no listed version references -- objects under ``{dataset}/data/`` of no
    ingest under way, records of an earlier history, markers of dead ingests; returns them.

    The caller holds :func:`dataset_lock`, so no publish races with the deletion.
    """
    manifest = read_manifest(store, dataset)
    referenced = mf.referenced_objects(manifest) if manifest else set()
    start = mf.history_start(manifest) if manifest else None
    data, markers = mf.data_prefix(dataset), mf.ingest_marker_name(dataset, "")
    versions = mf.versions_prefix(dataset)
    names = list(store.list(f"{dataset}/"))
    dead = {n for n in names if n.startswith(markers) and not _is_under_way(store, n)}
    running = {n[len(markers) :] for n in names if n.startswith(markers)} - {
        n[len(markers) :] for n in dead
    }
    garbage = [
        n
        for n in names
        if (n.startswith(data) and n not in referenced and _ingest_of(n, data) not in running)
        or (n.startswith(versions) and start is not None and _version_before(n, start))
        or n in dead
    ]
    for name in garbage:
        store.delete(name)
    return garbage


def _ingest_of(name: str, data_prefix: str) -> str:
    return name[len(data_prefix) :].split("/", 1)[0]


def _version_before(name: str, start: int) -> bool:
    version = mf.version_of_name(name)
    return version is not None and version < start


def discard_objects(store: ObjectStore, dataset: str, ingest_id: str) -> None:
    """Best-effort removal of one unpublished ingest's objects."""
    for name in list(store.list(mf.data_prefix(dataset, ingest_id))):
        with contextlib.suppress(Exception):  # the next publish collects what is left
            store.delete(name)


# --- publishing ingested files -----------------------------------------------------------------

MODES = ("create", "overwrite", "append")


def write_mode(mode: str | None, overwrite: bool) -> str:
    """The mode of a write: ``mode``, else "overwrite" or "create" as ``overwrite`` says."""
    if mode is None:
        return "overwrite" if overwrite else "create"
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if overwrite and mode != "overwrite":
        raise ValueError(f"overwrite=True contradicts mode={mode!r}")
    return mode


def exists_error(dataset: str) -> DatasetExistsError:
    return DatasetExistsError(
        f"dataset {dataset!r} already exists; pass overwrite=True to replace it, "
        "mode='append' to add files to it, or choose another name"
    )


def publish(
    store: ObjectStore | str,
    dataset: str,
    file_entries: Sequence[Mapping[str, Any]],
    ingest_id: str,
    overwrite: bool = False,
    metadata: Mapping[str, Any] | None = None,
    *,
    mode: str | None = None,
    allow_duplicates: bool = False,
) -> Dataset:
    """Publish the files of ``file_entries`` (and the dataset's ``metadata``) as the dataset's
    next version, then remove garbage.

    ``mode``: "create" (the default; DatasetExistsError if the dataset exists), "overwrite"
    (``overwrite=True``: the files replace the dataset's, starting a new history) or "append"
    (the files follow the dataset's, numbered after them; ``metadata`` updates its metadata;
    a ROOT file already in it is refused unless ``allow_duplicates``).
    """
    store = open_store(store) if isinstance(store, str) else store
    mf.validate_dataset_name(dataset)
    mode = write_mode(mode, overwrite)
    entries = sorted(file_entries, key=lambda e: e["file_no"])
    numbers = [e["file_no"] for e in entries]
    if len(set(numbers)) != len(numbers):
        raise IngestError(f"file entries of dataset {dataset!r} repeat a file_no: {numbers}")
    appending = mode == "append"

    def change(current: Manifest | None) -> Manifest:
        if current is not None and mode == "create":
            raise exists_error(dataset)
        check_objects_present(store, dataset, entries)
        if current is None or not appending:
            schema = mf.schema_name(dataset) if store.exists(mf.schema_name(dataset)) else None
            current = {**mf.new_manifest(dataset, ingest_id, schema), "files": []}
        if appending and not allow_duplicates:
            check_no_duplicates(dataset, current["files"], entries)
        first = max((f["file_no"] for f in current["files"]), default=-1) + 1
        current["files"] += [{**e, "file_no": first + i} for i, e in enumerate(entries)]
        current["ingest_id"] = ingest_id
        if metadata:
            current["metadata"] = {**current.get("metadata", {}), **metadata}
        return current

    manifest = commit(store, dataset, change, append=appending)
    return Dataset(dataset, manifest, store.url)


def collect_garbage(store: ObjectStore | str, dataset: str) -> list[str]:
    """Delete what no listed version of ``dataset`` references (objects, records of an earlier
    history, markers of dead ingests); returns their names. Objects of ingests under way stay.
    """
    store = open_store(store) if isinstance(store, str) else store
    mf.validate_dataset_name(dataset)
    with dataset_lock(store, dataset):
        return collect_garbage_locked(store, dataset)
