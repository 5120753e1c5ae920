"""coffea filesets as Skyhook datasets: each entry of a fileset becomes one dataset, named by
its label, holding its files and its metadata.

The forms coffea's ``Runner`` takes are read: ``{"DY": ["a.root", "b.root"]}``,
``{"DY": {"files": {"root://host//a.root": "Events"}, "metadata": {...}}}`` and
``{"DY": {"files": [...], "treename": "Events"}}``; a fileset may also be a JSON file of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog.model import Dataset
from ..exceptions import IngestError
from ..storage import ObjectStore, open_store
from .pipeline import DatasetWrite, write_datasets

__all__ = ["FilesetEntry", "entry_files", "read_fileset", "write_fileset"]

_KEYS = {"files", "treename", "metadata"}


@dataclass(frozen=True)
class FilesetEntry:
    """One entry: its files (paths or URLs, in order), the tree read from them (None: every
    tree), and its metadata."""

    label: str
    files: tuple[str, ...]
    tree: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def read_fileset(fileset: Mapping[str, Any] | str | os.PathLike[str]) -> list[FilesetEntry]:
    """The entries of a fileset (a mapping, or the path of a JSON file holding one)."""
    if isinstance(fileset, str | os.PathLike):
        path = Path(fileset)
        try:
            fileset = json.loads(path.read_text())
        except OSError as exc:
            raise IngestError(f"cannot read the fileset {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise IngestError(f"the fileset {path} is not JSON: {exc}") from None
    if not isinstance(fileset, Mapping) or not fileset:
        raise IngestError("a fileset is a non-empty mapping {label: files or {'files': ...}}")
    return [_entry(str(label), spec) for label, spec in fileset.items()]


def _entry(label: str, spec: Any) -> FilesetEntry:
    where = f"fileset entry {label!r}"
    if isinstance(spec, str) or not isinstance(spec, Mapping | Sequence):
        raise IngestError(f"{where}: expected a list of files or {{'files': ...}}, got {spec!r}")
    options = dict(spec) if isinstance(spec, Mapping) else {"files": list(spec)}
    if set(options) - _KEYS or "files" not in options:
        raise IngestError(
            f"{where}: expected the keys 'files' (required), 'treename', 'metadata'; got "
            f"{sorted(options)}"
        )
    paths, tree = entry_files(where, options["files"], options.get("treename"))
    if not paths:
        raise IngestError(f"{where} has no files")
    metadata = options.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise IngestError(f"{where}: 'metadata' must be a mapping, not {metadata!r}")
    return FilesetEntry(label, tuple(paths), tree, dict(metadata))


def entry_files(where: str, files: Any, treename: str | None) -> tuple[list[str], str | None]:
    """The files of a fileset entry -- a list, or coffea's ``{file: tree}`` -- and the one tree
    they are read from (``treename`` for a file that names none). IngestError, naming
    ``where``, for anything else, or for files naming different trees: a dataset of a fileset
    reads one tree from every file."""
    if isinstance(files, Mapping):
        paths = [str(f) for f in files]
        trees = {str(t) if t else treename for t in files.values()}
    elif isinstance(files, Sequence) and not isinstance(files, str):
        paths, trees = [str(f) for f in files], {treename}
    else:
        raise IngestError(f"{where}: 'files' is a list of files or {{file: tree}}, not {files!r}")
    if len(trees) > 1:
        named = sorted(t for t in trees if t is not None)
        raise IngestError(
            f"{where} reads different trees from its files ({named}); a dataset of a fileset "
            "reads one tree from every file"
        )
    return paths, trees.pop() if trees else treename


def write_fileset(
    store: ObjectStore | str, fileset: Mapping[str, Any] | str | os.PathLike[str], **options: Any
) -> dict[str, Dataset]:
    """Ingest every entry of ``fileset`` as a dataset named by its label (options as
    :func:`~skyhook_dask.ingest.pipeline.write_dataset`'s); returns them by label.

    Every entry is checked (files, tree, name, metadata; the name free unless ``overwrite`` or
    ``mode="append"``) before any is written; then the files of every entry run as the tasks
    of one ``mapper`` call (on Dask workers, in parallel), and each entry is published whole.
    """
    store = open_store(store) if isinstance(store, str) else store
    writes = [
        DatasetWrite(
            entry.label,
            list(entry.files),
            entry.metadata,
            [entry.tree] if entry.tree is not None else None,
        )
        for entry in read_fileset(fileset)
    ]
    return write_datasets(store, writes, **options)
