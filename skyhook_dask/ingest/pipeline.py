"""Ingest ROOT files into a store as a dataset: trees split by event range into Arrow IPC objects.

``write_dataset`` is the whole pipeline: checks, then ``ingest_file``
(:mod:`skyhook_dask.ingest.one_file`) once per file over a mapper (in this process, or one Dask
task per file), then ``publish``; ``write_datasets`` runs the files of several datasets (a
coffea fileset's) as the tasks of one mapper call.

``ingest_file`` writes one file's objects under ``{dataset}/data/{ingest_id}/`` (a fresh folder
per attempt, so a re-run never collides with a half-written earlier one) and returns its manifest
entry; ``publish`` (:mod:`skyhook_dask.ingest.commit`) writes the manifest last, atomically, as
the dataset's next version, then deletes the objects no version references (left-overs of
interrupted or replaced ingests). Until ``publish``, nothing of a new ingest is visible.
Dataset schemas and ``writeArrowTable`` live in :mod:`skyhook_dask.ingest.tables` and are
re-exported here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import config
from ..catalog.model import Dataset
from ..exceptions import IngestError
from ..formats import manifest as mf
from ..storage import ObjectStore, open_store
from .commit import (
    collect_garbage,
    dataset_lock,
    discard_objects,
    exists_error,
    ingest_under_way,
    publish,
    read_manifest,
    write_mode,
)
from .one_file import FileEntry, IngestOptions, ingest_file, progress_enabled
from .rootfile import SkippedBranchWarning
from .rootfile import source_attributes as source_attributes
from .tables import add_dataset_schema, write_arrow_table

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
    "write_datasets",
]

new_ingest_id = mf.new_ingest_id


# --- the whole write ---------------------------------------------------------------------------


def check_new_dataset(
    store: ObjectStore,
    name: str,
    sources: Sequence[str],
    *,
    mode: str,
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
    if mode == "create" and store.exists(mf.manifest_name(name)):
        raise exists_error(name)
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


def _files_in(store: ObjectStore, name: str) -> dict[str, str]:
    """The ROOT file UUIDs of dataset ``name`` (if it exists), with their file names."""
    manifest = read_manifest(store, name)
    files = manifest["files"] if manifest else []
    return {f["uuid"]: f["name"] for f in files if f.get("uuid")}


def _source(url: str | os.PathLike[str]) -> str:
    # A relative path means this process's working directory, wherever the file is read.
    text = os.fspath(url)
    return text if "://" in text else os.path.abspath(text)


@dataclass(frozen=True)
class DatasetWrite:
    """One dataset of a write: its name, its files, its metadata and (None: the write's) trees."""

    name: str
    urls: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]
    metadata: Mapping[str, Any] | None = None
    trees: Sequence[str] | None = None


def write_dataset(
    store: ObjectStore | str,
    urls: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    name: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    trees: Sequence[str] | None = None,
    **options: Any,
) -> Dataset:
    """Ingest ROOT files (paths or URLs) as dataset ``name`` and publish it, with ``metadata``
    (JSON values, as a coffea fileset's) kept in its manifest.

    ``mode``: "create" (default: DatasetExistsError if ``name`` exists), "overwrite" (as
    ``overwrite=True``: replace the dataset) or "append": add the files to the dataset (or
    create it) as its next version; readers see the old version or the new, older versions
    stay readable (``getDataset(name, version=k)``). A file already in the dataset (the same
    ROOT file UUID) raises DuplicateFileError, before any object is written, unless
    ``allow_duplicates``. The other options are :func:`write_datasets`'.
    """
    write = DatasetWrite(name, urls, metadata, trees)
    return write_datasets(store, [write], **options)[name]


def write_datasets(
    store: ObjectStore | str,
    writes: Sequence[DatasetWrite],
    *,
    object_size: int | None = None,
    compression: str | None = "lz4",
    trees: Sequence[str] | None = None,
    step_size: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    mapper: Any = None,
    mode: str | None = None,
    allow_duplicates: bool = False,
) -> dict[str, Dataset]:
    """Ingest the files of several datasets as the tasks of one ``mapper`` call and publish
    each dataset; returns them by name. Options (and ``mode``) as :func:`write_dataset`'s.

    ``object_size`` defaults to the ``skyhook.object-size`` setting (64 MiB). Each file is one
    task of ``mapper`` (see :mod:`skyhook_dask.runtime.mappers`; default: one after the other in
    this process). Every dataset is checked before any object is written, and nothing is
    visible until every file is written; on a failure the objects not yet published are
    removed and the first error (in file order) is raised. ``progress`` (None: when standard
    error is a terminal) shows a bar per file in this process, or the mapper's own on Dask.
    """
    store = open_store(store) if isinstance(store, str) else store
    here = mapper is None or mapper.in_process
    show = progress_enabled(progress)
    mode = write_mode(mode, overwrite)
    names = [w.name for w in writes]
    if len(set(names)) != len(names):
        raise IngestError(f"a write names a dataset twice: {names}")
    target = store if here else store.url  # tasks elsewhere open the store by its URL
    ids, arguments, counts = {}, [], []
    for write in writes:
        single = isinstance(write.urls, str | os.PathLike)
        urls = [write.urls] if single else list(write.urls)  # type: ignore[list-item,arg-type]
        sources = [_source(u) for u in urls]
        options = check_new_dataset(
            store,
            write.name,
            sources,
            mode=mode,
            object_size=object_size,
            compression=compression,
            trees=write.trees if write.trees is not None else trees,
            step_size=step_size,
            progress=show and here,  # bars on workers would only clutter their logs
        )
        check_metadata(write.name, write.metadata)
        refuse = _files_in(store, write.name) if mode == "append" and not allow_duplicates else None
        ids[write.name] = ingest_id = new_ingest_id()
        arguments += [
            (target, url, write.name, ingest_id, n, options, refuse)
            for n, url in enumerate(sources)
        ]
        counts.append(len(sources))
    published: dict[str, Dataset] = {}
    try:
        with contextlib.ExitStack() as running:
            for name, ingest_id in ids.items():
                running.enter_context(ingest_under_way(store, name, ingest_id))
            if mapper is None:
                entries = [ingest_file(*args) for args in arguments]
            else:
                label = f"ingest-skyhook-{names[0] if len(names) == 1 else 'fileset'}"
                entries = mapper(ingest_file, arguments, store_url=store.url, label=label,
                                 progress=show and not here)  # fmt: skip
            for write, count in zip(writes, counts, strict=True):
                mine, entries = entries[:count], entries[count:]
                published[write.name] = publish(
                    store, write.name, mine, ids[write.name], metadata=write.metadata,
                    mode=mode, allow_duplicates=allow_duplicates,
                )  # fmt: skip
    except BaseException:
        # After a task failure every task has finished (the mapper waits), so no object lands
        # after the clean-up. When interrupted, tasks already running on workers may still
        # write: publish() of a later ingest collects such left-overs.
        for name, ingest_id in ids.items():
            if name not in published:
                discard_objects(store, name, ingest_id)
        raise
    return published
