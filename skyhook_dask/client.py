"""The seed's client API: ``SkyhookDM().connect / writeDataset / getDataset / runQuery /
addDatasetSchema / writeArrowTable``.

With no arguments, ``connect()`` uses the embedded local store (``$SKYHOOK_STORE`` or
``~/.local/share/skyhook``); ``connect(pool=...)`` a Ceph pool; ``connect(store=URL)`` any store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from . import catalog, ingest
from .backends import ObjectStore, normalize_url, open_store
from .catalog import Dataset, File
from .exceptions import SkyhookError
from .protocol import ScanMetrics
from .querying import QueryResult, query_file

__all__ = ["SkyhookDM"]


def rados_url(pool: str) -> str:
    """A store URL for a Ceph pool, from ``$CEPH_CONF`` and ``$SKYHOOK_CEPH_USER``."""
    conf = os.environ.get("CEPH_CONF", "/etc/ceph/ceph.conf")
    user = os.environ.get("SKYHOOK_CEPH_USER", "client.admin")
    return f"rados://{pool}?conf={conf}&name={user}"


class SkyhookDM:
    """Entry point of the client API, as the SkyhookDM Python client documents it."""

    def __init__(self) -> None:
        self._store_url: str | None = None
        self.address: str | None = None
        self.last_metrics = ScanMetrics()

    # -- connection -------------------------------------------------------------------------

    def connect(
        self, address: str | None = None, pool: str | None = None, *, store: str | None = None
    ) -> SkyhookDM:
        """Choose the storage (``store`` URL, Ceph ``pool``, or the embedded default).

        ``address`` names a Dask scheduler (``host``, ``host:port`` or ``tcp://...``).
        """
        if store is not None and pool is not None:
            raise SkyhookError("give either store= or pool=, not both")
        self._store_url = normalize_url(
            store if store is not None else (rados_url(pool) if pool else None)
        )
        self.address = address
        open_store(self._store_url)  # fail now, not at the first query, if it cannot be opened
        return self

    @property
    def store_url(self) -> str:
        if self._store_url is None:
            self.connect()
        assert self._store_url is not None
        return self._store_url

    @property
    def store(self) -> ObjectStore:
        return open_store(self.store_url)

    # -- datasets ---------------------------------------------------------------------------

    def writeDataset(
        self, urls: Sequence[str | os.PathLike[str]] | str, datasetname: str, **options: Any
    ) -> Dataset:
        """Ingest ROOT files (local paths, file:// or http(s):// URLs) as ``datasetname``."""
        return ingest.write_dataset(self.store, urls, datasetname, **options)

    def getDataset(self, name: str) -> Dataset:
        return catalog.load_dataset(self.store, name)

    def listDatasets(self) -> list[str]:
        return catalog.list_datasets(self.store)

    def addDatasetSchema(self, schema_json: str, data_type: str = "servicex") -> str:
        """Register a dataset schema (JSON); returns the dataset name it defines."""
        return ingest.add_dataset_schema(self.store, schema_json, data_type)

    def writeArrowTable(
        self, table: pa.Table, data_schema_name: str, table_name: str = ""
    ) -> list[str]:
        """Write an Arrow table into a dataset defined by addDatasetSchema; returns object names."""
        return ingest.write_arrow_table(self.store, table, data_schema_name, table_name)

    # -- queries ----------------------------------------------------------------------------

    def runQuery(self, obj: File | Dataset, querystr: str) -> pa.Table | list[pa.Table]:
        """Run ``select ..., project ...`` on a File (one table) or a Dataset (one per file)."""
        if isinstance(obj, File):
            result = self._query_file(obj, querystr)
            self.last_metrics = result.metrics
            return result.table
        if isinstance(obj, Dataset):
            results = [self._query_file(f, querystr) for f in obj.getFiles()]
            self.last_metrics = ScanMetrics()
            for r in results:
                self.last_metrics.add(r.metrics)
            return [r.table for r in results]
        raise TypeError(f"runQuery takes a File or a Dataset, not {type(obj).__name__}")

    def _query_file(self, file: File, querystr: str) -> QueryResult:
        store_url = file.dataset.store_url if file.dataset is not None else self.store_url
        return query_file(store_url, file, querystr)

    # snake_case aliases
    write_dataset = writeDataset
    get_dataset = getDataset
    list_datasets = listDatasets
    add_dataset_schema = addDatasetSchema
    write_arrow_table = writeArrowTable
    run_query = runQuery
