"""Ingest ROOT files into a store: trees split by event range into Arrow IPC objects.

``write_dataset`` is the whole pipeline: checks, then ``ingest_file`` once per file over a
mapper (in this process, or one Dask task per file), then ``publish``.

``ingest_file`` writes one file's objects under ``{dataset}/data/{ingest_id}/`` (a fresh folder
per attempt, so a re-run never collides with a half-written earlier one) and returns its manifest
entry; ``publish`` writes the manifest last, atomically, then deletes every object under
``{dataset}/data/`` that the new manifest does not reference (left-overs of interrupted or
replaced ingests). Until ``publish``, nothing of a new ingest is visible.

Objects are sized from ``object_size`` (uncompressed Arrow bytes): the bytes per event of the
first 1 000 entries give the number of objects, and the tree is cut into that many equal entry
ranges. Entries are read in cluster-aligned steps of at least one object (see READ_BYTES), or
``step_size`` entries at a time, so memory stays bounded whatever the file size and no basket
is decompressed twice however small the objects are. An empty tree gets no objects,
but its schema is recorded. Dataset schemas and ``writeArrowTable`` live in
:mod:`skyhook_dask.ingest.tables` and are re-exported here.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from .. import config
from ..catalog.model import Dataset
from ..exceptions import DatasetExistsError, IngestError, SkyhookError
from ..formats import manifest as mf
from ..formats.objects import COMPRESSIONS
from ..storage import ObjectStore, open_store
from .rootfile import SkippedBranchWarning, TreeHandle, TreeReader, open_root, walk_file
from .rootfile import source_attributes as source_attributes
from .tables import add_dataset_schema, write_arrow_table
from .writer import (
    ObjectWriter,
    check_objects_present,
    collect_garbage_locked,
    dataset_lock,
    discard_objects,
    rows_per_object,
)

__all__ = [
    "FileEntry",
    "IngestOptions",
    "SkippedBranchWarning",
    "add_dataset_schema",
    "collect_garbage",
    "dataset_lock",
    "ingest_file",
    "new_ingest_id",
    "publish",
    "write_arrow_table",
    "write_dataset",
]

FileEntry = dict[str, Any]
new_ingest_id = mf.new_ingest_id
PROBE_ENTRIES = 1000  # entries read first to estimate bytes per event
# Entries are read in steps that end on a cluster boundary (where every branch starts a new
# basket), so each basket is decompressed once however small the objects are. A step decodes
# at least READ_BYTES of Arrow data (several small objects share it) and, unless a single
# cluster is larger, at most MAX_READ_BYTES: memory stays bounded.
READ_BYTES = 32 * 1024 * 1024
MAX_READ_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class IngestOptions:
    """How files are cut into objects (picklable: it travels to Dask workers)."""

    object_size: int = 64 * 1024 * 1024
    compression: str | None = "lz4"
    trees: tuple[str, ...] | None = None  # names, paths or keys; None: every tree
    step_size: int | None = None  # entries per read; None: cluster-aligned steps (READ_BYTES)
    progress: bool | None = False  # None: a progress bar when stderr is a terminal

    def __post_init__(self) -> None:
        if self.object_size < 1:
            raise ValueError(
                f"object_size must be a positive number of bytes, not {self.object_size}"
            )
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        if self.step_size is not None and self.step_size < 1:
            raise ValueError(
                f"step_size must be a positive number of entries, not {self.step_size}"
            )


def _as_store(store: ObjectStore | str) -> ObjectStore:
    return open_store(store) if isinstance(store, str) else store


# --- one file ----------------------------------------------------------------------------------


def _ingest_tree(
    store: ObjectStore,
    handle: TreeHandle,
    where: str,
    name_of: Any,
    options: IngestOptions,
    bar: Any,
) -> dict[str, Any]:
    reader = TreeReader(handle.tree, f"{where}:{handle.key}")
    entries = int(handle.tree.num_entries)
    # The first entries fix the schema and give the bytes per event that size the objects.
    stop = min(entries, PROBE_ENTRIES, options.step_size or PROBE_ENTRIES)
    first = reader.read(0, stop)
    per_event = first.nbytes / first.num_rows if first.num_rows else 1.0
    rows = rows_per_object(entries, per_event, options.object_size)
    writer = ObjectWriter(store, name_of, rows, options.compression)
    writer.add(first)
    bar.update(stop)
    del first
    clusters = _cluster_starts(handle.tree)
    while stop < entries:
        start = stop
        stop = _next_stop(start, entries, rows, per_event, clusters, options.step_size)
        writer.add(reader.read(start, stop))
        bar.update(stop - start)
    writer.flush()
    assert reader.schema is not None
    reader.annotate(handle)
    return {
        "key": handle.key,
        "name": handle.name,
        "cycle": handle.cycle,
        "path": handle.path,
        "entries": entries,
        "schema": mf.encode_schema(reader.schema),
        "skipped": reader.skipped,
        "objects": writer.objects,
    }


def _cluster_starts(tree: Any) -> list[int]:
    """Entries where every branch starts a basket (none known: an RNTuple)."""
    try:
        return [int(e) for e in tree.common_entry_offsets()]
    except (AttributeError, TypeError, ValueError):
        return []


def _next_stop(
    start: int,
    entries: int,
    rows: int,
    per_event: float,
    clusters: Sequence[int],
    step_size: int | None,
) -> int:
    """Where the read that begins at ``start`` ends (see READ_BYTES)."""
    if step_size:
        return min(entries, start + step_size)
    want = max(rows, math.ceil(READ_BYTES / max(per_event, 1.0)))
    most = max(want, int(MAX_READ_BYTES / max(per_event, 1.0)))
    at = bisect.bisect_left(clusters, start + want)
    if at < len(clusters) and clusters[at] - start <= most:
        return min(entries, clusters[at])
    return min(entries, start + want)


def _progress_enabled(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def ingest_file(
    store: ObjectStore | str,
    url: str,
    dataset: str,
    ingest_id: str,
    file_no: int,
    options: IngestOptions | None = None,
) -> FileEntry:
    """Write one ROOT file's objects and return its manifest entry (nothing is published)."""
    store, options = _as_store(store), options or IngestOptions()
    mf.validate_dataset_name(dataset)
    url = os.fspath(url)
    entry: FileEntry = {"file_no": file_no, **source_attributes(url), "ingest_id": ingest_id}
    with open_root(url) as directory:
        uuid = getattr(getattr(directory, "file", None), "uuid", None)
        entry["uuid"] = str(uuid) if uuid is not None else None  # the TFile's own UUID
        try:
            entry["root"], handles = walk_file(directory, entry["name"])
        except Exception as exc:
            raise IngestError(f"cannot list the contents of {url}: {exc}") from exc
        selected = _select_trees(handles, options.trees, url)
        total = sum(int(h.tree.num_entries) for h in selected)
        bar = tqdm(
            total=total,
            desc=entry["name"],
            unit="event",
            disable=not _progress_enabled(options.progress),
        )
        entry["trees"] = []
        with bar:
            for tree_no, handle in enumerate(handles):
                handle.node["ingested"] = handle in selected
                if handle not in selected:
                    continue

                def name_of(seq: int, tree_no: int = tree_no) -> str:
                    return mf.object_name(dataset, ingest_id, file_no, tree_no, seq)

                try:
                    tree = _ingest_tree(store, handle, url, name_of, options, bar)
                except SkyhookError:
                    raise
                except Exception as exc:
                    raise IngestError(
                        f"{url}:{handle.key}: ingestion failed: {type(exc).__name__}: {exc}"
                    ) from exc
                entry["trees"].append(tree)
    return entry


def _select_trees(
    handles: list[TreeHandle], wanted: Sequence[str] | None, url: str
) -> list[TreeHandle]:
    if wanted is None:
        return handles
    for spec in wanted:
        if not any(h.matches(spec) for h in handles):
            known = ", ".join(h.key for h in handles) or "none"
            raise IngestError(f"{url} has no tree {spec!r}; its trees are: {known}")
    return [h for h in handles if any(h.matches(spec) for spec in wanted)]


# --- publishing --------------------------------------------------------------------------------


def publish(
    store: ObjectStore | str,
    dataset: str,
    file_entries: Sequence[FileEntry],
    ingest_id: str,
    overwrite: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Dataset:
    """Write the manifest of ``file_entries`` (and the dataset's ``metadata``) atomically,
    last, then remove garbage."""
    store = _as_store(store)
    mf.validate_dataset_name(dataset)
    entries = sorted(file_entries, key=lambda e: e["file_no"])
    numbers = [e["file_no"] for e in entries]
    if len(set(numbers)) != len(numbers):
        raise IngestError(f"file entries of dataset {dataset!r} repeat a file_no: {numbers}")
    with dataset_lock(store, dataset):
        if not overwrite and store.exists(mf.manifest_name(dataset)):
            raise _exists(dataset)
        check_objects_present(store, dataset, entries)
        schema = mf.schema_name(dataset) if store.exists(mf.schema_name(dataset)) else None
        manifest = mf.new_manifest(dataset, ingest_id, schema)
        if metadata:
            manifest["metadata"] = dict(metadata)
        manifest["files"] = list(entries)
        store.write(mf.manifest_name(dataset), mf.dumps(manifest))
        collect_garbage_locked(store, dataset)
    return Dataset(dataset, manifest, store.url)


def collect_garbage(store: ObjectStore | str, dataset: str) -> list[str]:
    """Delete the objects of ``dataset`` that its manifest does not reference; returns them."""
    store = _as_store(store)
    mf.validate_dataset_name(dataset)
    with dataset_lock(store, dataset):
        return collect_garbage_locked(store, dataset)


def _exists(dataset: str) -> DatasetExistsError:
    return DatasetExistsError(
        f"dataset {dataset!r} already exists; pass overwrite=True to replace it, or choose "
        "another name"
    )


def check_new_dataset(
    store: ObjectStore,
    name: str,
    sources: Sequence[str],
    *,
    overwrite: bool,
    object_size: int | None,
    compression: str | None,
    trees: Sequence[str] | None,
    step_size: int | None,
    progress: bool,
) -> IngestOptions:
    """Refuse a write that cannot succeed before any object is written, and return the options
    every file of it is ingested with, wherever the mapper runs it."""
    mf.validate_dataset_name(name)
    if not sources:
        raise IngestError(f"no files given for dataset {name!r}")
    if not overwrite and store.exists(mf.manifest_name(name)):
        raise _exists(name)
    return IngestOptions(
        object_size=int(object_size or config.get("object-size")),
        compression=compression,
        trees=tuple(trees) if trees is not None else None,
        step_size=step_size,
        progress=progress,
    )


def check_metadata(name: str, metadata: Mapping[str, Any] | None) -> None:
    """IngestError unless ``metadata`` is None or a mapping of JSON values."""
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise IngestError(f"the metadata of dataset {name!r} must be a mapping")
    try:
        json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IngestError(f"the metadata of dataset {name!r} is not JSON: {exc}") from None


def _source(url: str | os.PathLike[str]) -> str:
    # A relative path means this process's working directory, wherever the file is read.
    text = os.fspath(url)
    return text if "://" in text else os.path.abspath(text)


def write_dataset(
    store: ObjectStore | str,
    urls: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    name: str,
    *,
    object_size: int | None = None,
    compression: str | None = "lz4",
    trees: Sequence[str] | None = None,
    step_size: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    mapper: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Dataset:
    """Ingest ROOT files (paths or URLs) as dataset ``name`` and publish it, with ``metadata``
    (JSON values, as a coffea fileset's) kept in its manifest.

    ``object_size`` defaults to the ``skyhook.object-size`` setting (64 MiB). Each file is one
    task of ``mapper`` (see :mod:`skyhook_dask.runtime.mappers`; default: one after the other in
    this process). Nothing is visible until every file is written and the manifest is
    published; on any failure the objects of this attempt are removed and the first error (in
    file order) is raised. ``progress`` (None: when standard error is a terminal) shows a bar
    per file in this process, or the mapper's own on Dask.
    """
    store = _as_store(store)
    here = mapper is None or mapper.in_process
    show = _progress_enabled(progress)
    single = isinstance(urls, str | os.PathLike)
    sources = [_source(urls)] if single else [_source(u) for u in urls]  # type: ignore[union-attr]
    options = check_new_dataset(
        store,
        name,
        sources,
        overwrite=overwrite,
        object_size=object_size,
        compression=compression,
        trees=trees,
        step_size=step_size,
        progress=show and here,  # bars on workers would only clutter their logs
    )
    check_metadata(name, metadata)
    ingest_id = new_ingest_id()
    target = store if here else store.url  # tasks elsewhere open the store by its URL
    arguments = [(target, url, name, ingest_id, n, options) for n, url in enumerate(sources)]
    try:
        if mapper is None:
            entries = [ingest_file(*args) for args in arguments]
        else:
            label, bar = f"ingest-skyhook-{name}", show and not here
            entries = mapper(ingest_file, arguments, store_url=store.url, label=label, progress=bar)
        return publish(store, name, entries, ingest_id, overwrite, metadata)
    except BaseException:
        # After a task failure every task has finished (the mapper waits), so no object lands
        # after the clean-up. When interrupted, tasks already running on workers may still
        # write: publish() of a later ingest collects such left-overs.
        discard_objects(store, name, ingest_id)
        raise
