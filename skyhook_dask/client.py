"""The seed's client API: ``SkyhookDM().connect / writeDataset / getDataset / runQuery /
addDatasetSchema / writeArrowTable``.

Storage: with no arguments, ``connect()`` uses the embedded local store (``$SKYHOOK_STORE`` or
``~/.local/share/skyhook``); ``connect(pool=...)`` a Ceph pool; ``connect(store=URL)`` any store.

Driver: the Dask scheduler, when there is one. ``connect(address)`` joins the scheduler at
``address``; without one, the current Dask client (if any) is used; ``connect(dask=True)``
starts an embedded ``LocalCluster`` when there is neither. Ingest then runs one task per file
and queries one task per object on the workers, whose plugin keeps one storage connection per
process. Otherwise -- a plain script, a notebook, ``connect(dask=False)``, or a ``memory://``
store, which worker processes cannot see -- everything runs in this process, on threads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .catalog import model as catalog
from .catalog.model import Dataset, File
from .catalog.versions import DatasetVersion, list_versions
from .exceptions import SkyhookError
from .formats.protocol import ScanMetrics
from .storage import ObjectStore, normalize_url, open_store

if TYPE_CHECKING:
    from distributed import Client

# Ingest, planning and Dask are imported by the methods that use them: listing datasets or
# reading a schema (the CLI's ls, schema) needs none of them.

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
        self.dask: bool | None = None
        self._client: Client | None = None
        self._owns_client = False
        self.last_metrics = ScanMetrics()

    # -- connection -------------------------------------------------------------------------

    def connect(
        self,
        address: str | None = None,
        pool: str | None = None,
        *,
        store: str | None = None,
        dask: bool | None = None,
    ) -> SkyhookDM:
        """Choose the driver and the storage.

        ``address``: a Dask scheduler (``host``, ``host:port`` or ``tcp://...``; port 8786 by
        default). ``pool``: a Ceph pool; ``store``: any store URL (default: the embedded one).
        ``dask``: None (default) uses Dask when an address is given or a Dask client is
        current, else runs in this process; True also starts an embedded ``LocalCluster`` when
        needed (in a script, under ``if __name__ == "__main__":``); False never uses Dask.
        """
        if store is not None and pool is not None:
            raise SkyhookError("give either store= or pool=, not both")
        url = store if store is not None else (rados_url(pool) if pool else None)
        self._store_url = normalize_url(url)
        open_store(self._store_url)  # fail now, not at the first query, if it cannot be opened
        self.address, self.dask = address, dask
        self._client = None
        if address is not None:
            _ = self.client  # join the scheduler now so a wrong address fails here
        return self

    @property
    def client(self) -> Client | None:
        """The Dask client that drives ingest and queries (None when running in-process): the
        scheduler at ``address``, else the current Dask client, else (with ``dask=True``) a new
        embedded ``LocalCluster``."""
        if self.dask is False or self.store_url.startswith("memory:"):
            return None
        if self._client is None or self._client.status in ("closed", "closing"):
            from .runtime import dask as driver
            from .runtime.plugin import register_store_plugin

            current = driver.has_current_client()
            if self.address is None and not current and not self.dask:
                return None  # a plain script or notebook: run here
            # A client made here (for an address, or a new LocalCluster) is closed by close().
            self._owns_client = self.address is not None or not current
            self._client = driver.connect_client(self.address)
            register_store_plugin(self._client, self.store_url)
        return self._client

    @property
    def use_dask(self) -> bool:
        """Whether ingest and queries run on Dask workers."""
        return self.client is not None

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
        """Ingest ROOT files (local paths, ``file://``, ``http(s)://`` or ``root://`` URLs) as
        ``datasetname``.

        Options: ``object_size``, ``compression``, ``trees``, ``overwrite``, ``progress``,
        ``metadata``, ``mode`` ("create", "overwrite" or "append": add the files as the
        dataset's next version) and ``allow_duplicates`` (append a file already in it).
        """
        from .ingest.pipeline import write_dataset
        from .runtime.mappers import OnDask

        client = self.client
        mapper = None if client is None else OnDask(client)
        return write_dataset(self.store, urls, datasetname, mapper=mapper, **options)

    def writeFileset(
        self, fileset: Mapping[str, Any] | str | os.PathLike[str], **options: Any
    ) -> dict[str, Dataset]:
        """Ingest a coffea fileset (a mapping, or a JSON file of one): one dataset per entry,
        named by its label, with the entry's metadata; returns them by label. The same fileset
        then runs through :func:`skyhook_dask.coffea.run`. Options as :meth:`writeDataset`."""
        from .ingest.fileset import write_fileset
        from .runtime.mappers import OnDask

        mapper = None if self.client is None else OnDask(self.client)
        return write_fileset(self.store, fileset, mapper=mapper, **options)

    def getDataset(self, name: str, version: int | None = None) -> Dataset:
        """The dataset ``name`` as it is now, or as it was at ``version`` (see listVersions)."""
        return catalog.load_dataset(self.store, name, version)

    def listVersions(self, name: str) -> list[DatasetVersion]:
        """The versions of dataset ``name`` that can be read, oldest first (each append
        publishes one; overwriting starts again)."""
        return list_versions(self.store, name)

    def listDatasets(self) -> list[str]:
        return catalog.list_datasets(self.store)

    def addDatasetSchema(self, schema_json: str, data_type: str = "servicex") -> str:
        """Register a dataset schema (JSON); returns the dataset name it defines."""
        from .ingest.tables import add_dataset_schema

        return add_dataset_schema(self.store, schema_json, data_type)

    def writeArrowTable(
        self, table: pa.Table, data_schema_name: str, table_name: str = ""
    ) -> list[str]:
        """Write an Arrow table into a dataset defined by addDatasetSchema; returns object names."""
        from .ingest.tables import write_arrow_table

        return write_arrow_table(self.store, table, data_schema_name, table_name)

    # -- queries ----------------------------------------------------------------------------

    def runQuery(self, obj: File | Dataset, querystr: str) -> pa.Table | list[pa.Table]:
        """Run ``select ..., project ...`` on a File (one table) or a Dataset (one per file)."""
        if isinstance(obj, File):
            files, store_url = [obj], self._store_of(obj.dataset)
        elif isinstance(obj, Dataset):
            files, store_url = obj.getFiles(), obj.store_url
        else:
            raise TypeError(f"runQuery takes a File or a Dataset, not {type(obj).__name__}")
        from .plan import plan
        from .query.parser import parse_query
        from .runtime.mappers import InProcess, Mapper, OnDask
        from .runtime.queries import run_plans

        query = parse_query(querystr)  # a syntax error surfaces before any work starts
        plans = [plan(f, query) for f in files]
        client = self.client if store_url == self.store_url else None
        mapper: Mapper = InProcess() if client is None else OnDask(client)
        dataset = files[0].dataset.name if files and files[0].dataset else "files"
        results = run_plans(plans, mapper, label=f"query-skyhook-{dataset}", store_url=store_url)
        self.last_metrics = ScanMetrics()
        for r in results:
            self.last_metrics.add(r.metrics)
        tables = [r.table for r in results]
        return tables[0] if isinstance(obj, File) else tables

    def histogram(self, obj: File | Dataset, values: str | list[str], **options: Any) -> Any:
        """A ``hist.Hist`` of ``values`` over a File or a Dataset, filled inside the storage
        (see :func:`skyhook_dask.reductions.histogram` for ``bins``, ``range``, ``where``,
        ``weight``); the tasks run on this client's Dask cluster when it has one."""
        from .reductions import histogram

        result = histogram(obj, values, client=self._reduction_client(obj), **options)
        self.last_metrics = ScanMetrics(
            rows_in=result.metadata["rows_in"],
            rows_out=result.metadata["rows_selected"],
            bytes_returned=result.metadata["bytes_returned"],
            calls=result.metadata["objects_scanned"] - result.metadata["objects_from_statistics"],
        )
        return result

    def aggregate(self, obj: File | Dataset, what: str | list[str], **options: Any) -> Any:
        """``count()``, ``sum(x)``, ``min(x)``, ``max(x)`` or ``mean(x)`` (or a list of them)
        over a File or a Dataset, computed inside the storage (see
        :func:`skyhook_dask.reductions.aggregate` for ``where``)."""
        from .reductions import aggregate

        return aggregate(obj, what, client=self._reduction_client(obj), **options)

    def _reduction_client(self, obj: File | Dataset) -> Any:
        """This object's Dask client for ``obj``'s tasks, or False: in this process."""
        store_url = obj.store_url if isinstance(obj, Dataset) else self._store_of(obj.dataset)
        client = self.client if store_url == self.store_url else None
        return False if client is None else client

    def _store_of(self, dataset: Dataset | None) -> str:
        return dataset.store_url if dataset is not None else self.store_url

    def close(self) -> None:
        """Close the Dask client this object started (a shared or remote cluster stays up)."""
        if self._client is not None and self._owns_client:
            self._client.close()
        self._client = None

    # snake_case aliases
    write_dataset = writeDataset
    get_dataset = getDataset
    list_datasets = listDatasets
    list_versions = listVersions
    add_dataset_schema = addDatasetSchema
    write_arrow_table = writeArrowTable
    run_query = runQuery
