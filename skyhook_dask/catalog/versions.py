"""A dataset's versions: every publication since it was created or last overwritten.

Each append publishes a new version; the older ones stay readable with
``load_dataset(store, name, version=k)`` (``SkyhookDM().getDataset(name, version=k)``) and
their objects stay stored, since later versions of one history only add files.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..formats import manifest as mf
from ..storage import ObjectStore, open_store
from .model import Dataset, kept_versions, load_dataset

__all__ = ["DatasetVersion", "list_versions"]


@dataclass(frozen=True)
class DatasetVersion:
    """One version of a dataset: what it held when it was published."""

    version: int
    created: str  # ISO 8601 UTC time of its publication
    ingest_id: str  # the ingest (or table write) that published it
    files: int
    entries: dict[str, int]  # tree key -> its entries summed over the files
    stored_bytes: int
    current: bool


def list_versions(store: ObjectStore | str, name: str) -> list[DatasetVersion]:
    """The versions of dataset ``name`` that can be read, oldest first."""
    store = open_store(store) if isinstance(store, str) else store
    current = load_dataset(store, name)
    versions = []
    for number in kept_versions(store, current):
        dataset = current if number == current.version else _record(store, name, number)
        versions.append(
            DatasetVersion(
                version=number,
                created=dataset.created,
                ingest_id=dataset.ingest_id,
                files=len(dataset.files),
                entries=_entries(dataset),
                stored_bytes=dataset.getSize(),
                current=number == current.version,
            )
        )
    return versions


def _record(store: ObjectStore, name: str, number: int) -> Dataset:
    where = mf.version_name(name, number)
    return Dataset(name, mf.loads(store.read(where), f"{where} in {store.url}"), store.url)


def _entries(dataset: Dataset) -> dict[str, int]:
    totals: dict[str, int] = {}
    for file in dataset.files:
        for key, tree in file.trees.items():
            totals[key] = totals.get(key, 0) + tree.entries
    return totals
