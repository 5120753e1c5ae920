"""What a coffea run reads: a dataset name, a Dataset, or a fileset in coffea's forms --
``{label: name | Dataset | [files] | {"dataset": ..., "files": [...] | {file: tree},
"treename": ..., "metadata": {...}}}``, where ``dataset`` defaults to the label, so the fileset
given to coffea's ``Runner`` runs over the datasets ``SkyhookDM.writeFileset`` made of it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..catalog.model import Dataset, File, load_dataset
from ..ingest.fileset import entry_files
from ..storage import normalize_url

__all__ = ["DatasetSpec", "Entry", "fileset_entries"]

DatasetSpec = str | Dataset | Mapping[str, Any]


@dataclass(frozen=True)
class Entry:
    """One fileset entry: a coffea dataset label over the chosen files of a Skyhook dataset."""

    label: str
    dataset: Dataset
    files: tuple[File, ...]
    treename: str
    metadata: dict[str, Any]


def _load(spec: str | Dataset, store: str | os.PathLike[str] | None) -> Dataset:
    if isinstance(spec, Dataset):
        return spec
    if isinstance(spec, str):
        return load_dataset(normalize_url(store), spec)
    raise TypeError(f"a Skyhook dataset is a name or a Dataset, not {type(spec).__name__}")


def _file_of(dataset: Dataset, name: str) -> File:
    """The file of ``dataset`` a fileset names: by its name or position, the URL it was read
    from, or the base name of that URL (as a coffea fileset names it)."""
    try:
        return dataset.file(name)
    except KeyError:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        found = [f for f in dataset.files if name == f.url] or [
            f for f in dataset.files if f.name == base
        ]
        if len(found) == 1:
            return found[0]
        names = [f.name for f in dataset.files]
        raise KeyError(f"dataset {dataset.name!r} has no file {name!r} (it has {names})") from None


def fileset_entries(
    dataset: DatasetSpec,
    store: str | os.PathLike[str] | None,
    treename: str,
    metadata: Mapping[str, Any] | None,
) -> list[Entry]:
    """``dataset`` as fileset entries: a name or Dataset (labelled by its name), or a fileset
    (see the module); each entry's metadata is ``metadata``, the dataset's own, then the
    entry's, the later winning."""
    common = dict(metadata or {})
    if isinstance(dataset, str | Dataset):
        ds = _load(dataset, store)
        return [Entry(ds.name, ds, tuple(ds.files), treename, common)]
    if not isinstance(dataset, Mapping):
        raise TypeError(
            f"dataset must be a name, a Dataset or a fileset mapping, not {type(dataset).__name__}"
        )
    entries = []
    for label, spec in dataset.items():
        if isinstance(spec, str | Dataset):
            options: dict[str, Any] = {"dataset": spec}
        elif isinstance(spec, Mapping):
            options = {"dataset": str(label), **spec}  # coffea's form: the label names it
        else:  # coffea's {label: [files]}
            options = {"dataset": str(label), "files": list(spec)}
        unknown = set(options) - {"dataset", "files", "treename", "metadata"}
        if unknown:
            raise ValueError(
                f"fileset entry {label!r}: expected keys 'dataset' (default: the label), "
                f"'files', 'treename', 'metadata'; got {sorted(options)}"
            )
        ds = _load(options["dataset"], store)
        tree = options.get("treename", treename)
        files = tuple(ds.files)
        if options.get("files") is not None:  # a list, or coffea's {file: tree}
            names, tree = entry_files(f"fileset entry {label!r}", options["files"], tree)
            files = tuple(_file_of(ds, n) for n in names)
        meta = {**common, **ds.metadata, **dict(options.get("metadata") or {})}
        entries.append(Entry(str(label), ds, files, tree, meta))
    if not entries:
        raise ValueError("the fileset is empty")
    return entries
