"""One ROOT file cut into objects: ``ingest_file`` writes its trees' objects and returns the
file's manifest entry (nothing is published; see :mod:`skyhook_dask.ingest.pipeline`).

Objects are sized from ``object_size`` (uncompressed Arrow bytes): the bytes per event of the
first 1 000 entries give the number of objects, and the tree is cut into that many equal entry
ranges. Entries are read in cluster-aligned steps of at least one object (see READ_BYTES), or
``step_size`` entries at a time, so memory stays bounded whatever the file size and no basket
is decompressed twice however small the objects are. An empty tree gets no objects, but its
schema is recorded.
"""

from __future__ import annotations

import bisect
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from ..exceptions import IngestError, SkyhookError
from ..formats import manifest as mf
from ..formats.objects import COMPRESSIONS
from ..storage import ObjectStore, open_store
from .commit import duplicate_file
from .rootfile import TreeHandle, TreeReader, open_root, source_attributes, walk_file
from .writer import ObjectWriter, rows_per_object

__all__ = ["FileEntry", "IngestOptions", "ingest_file"]

FileEntry = dict[str, Any]
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


def _ingest_tree(
    store: ObjectStore,
    handle: TreeHandle,
    where: str,
    name_of: Any,
    stats_name: str,
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
    with ObjectWriter(store, name_of, rows, options.compression) as writer:
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
        object_stats = writer.write_stats(stats_name)
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
        "object_stats": object_stats,
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


def progress_enabled(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def ingest_file(
    store: ObjectStore | str,
    url: str,
    dataset: str,
    ingest_id: str,
    file_no: int,
    options: IngestOptions | None = None,
    refuse: Mapping[str, str] | None = None,
) -> FileEntry:
    """Write one ROOT file's objects and return its manifest entry (nothing is published).

    ``refuse`` maps the UUIDs of ROOT files already in the dataset to their names: such a
    file raises DuplicateFileError before any object is written."""
    store, options = _as_store(store), options or IngestOptions()
    mf.validate_dataset_name(dataset)
    url = os.fspath(url)
    entry: FileEntry = {"file_no": file_no, **source_attributes(url), "ingest_id": ingest_id}
    with open_root(url) as directory:
        uuid = getattr(getattr(directory, "file", None), "uuid", None)
        entry["uuid"] = str(uuid) if uuid is not None else None  # the TFile's own UUID
        if refuse and entry["uuid"] in refuse:
            raise duplicate_file(dataset, url, refuse[entry["uuid"]], entry["uuid"])
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
            disable=not progress_enabled(options.progress),
        )
        entry["trees"] = []
        with bar:
            for tree_no, handle in enumerate(handles):
                handle.node["ingested"] = handle in selected
                if handle not in selected:
                    continue

                def name_of(seq: int, tree_no: int = tree_no) -> str:
                    return mf.object_name(dataset, ingest_id, file_no, tree_no, seq)

                stats = mf.stats_object_name(dataset, ingest_id, file_no, tree_no)
                try:
                    tree = _ingest_tree(store, handle, url, name_of, stats, options, bar)
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
