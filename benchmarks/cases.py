"""The four systems that answer every query, each split into a timed ``run`` and an untimed
``describe`` (row count, checksum, bytes moved) of what ``run`` returned.

* ``skyhook_pushdown``: ``SkyhookDM.runQuery`` -- the predicate and projection run inside the
  storage (the C++ class in the OSD on RADOS; the Python reference class on local stores), and
  only the selected rows and columns come back.
* ``skyhook_client``: what a system without pushdown does on the same objects: read every
  object whole (one ``store.read`` of the size the catalog records), then decode the needed
  columns and filter in the client with the reference scan
  (:func:`skyhook_dask.objclass.scan.scan_table`). Objects are fetched as concurrently as the
  pushdown calls are (``skyhook.max-in-flight``).
* ``uproot``: the ROOT file read directly, only the needed branches, filtered with awkward.
* ``parquet``: the same rows as Parquet files (one per object) through ``pyarrow.dataset`` with
  ``columns=`` and ``filter=``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import uproot

from skyhook_dask import SkyhookDM, config
from skyhook_dask.formats.objects import read_columns
from skyhook_dask.formats.protocol import ScanMetrics, ScanRequest
from skyhook_dask.objclass.scan import scan_table
from skyhook_dask.plan import PlannedObject, plan
from skyhook_dask.query import parse_query
from skyhook_dask.query.expr import columns_of
from skyhook_dask.storage import open_store

from .data import CHECKSUM_COLUMN, SELECTION_BRANCH, TREE, QuerySpec, Workload, arrow_checksum

SYSTEMS = ("skyhook_pushdown", "skyhook_client", "uproot", "parquet")


@dataclass
class Answer:
    """What one system returned for one query (computed outside the timed region)."""

    rows_out: int
    checksum: float
    bytes_from_storage: int
    result_nbytes: int
    table: pa.Table | None = None  # Arrow answers, kept so a test can compare them
    storage: dict[str, Any] | None = None  # skyhook systems: what the object calls did


@dataclass
class System:
    name: str
    run: Callable[[Workload, QuerySpec], Any]
    describe: Callable[[Workload, QuerySpec, Any], Answer]


# --- skyhook_pushdown --------------------------------------------------------------------------

_clients: dict[str, SkyhookDM] = {}


def skyhook_client(store_url: str) -> SkyhookDM:
    client = _clients.get(store_url)
    if client is None:
        client = _clients[store_url] = SkyhookDM().connect(store=store_url, dask=False)
    return client


def run_pushdown(workload: Workload, query: QuerySpec) -> tuple[pa.Table, ScanMetrics]:
    client = skyhook_client(workload.store_url)
    table = client.runQuery(workload.file, query.text)
    assert isinstance(table, pa.Table)
    return table, client.last_metrics


def _storage_stats(metrics: ScanMetrics) -> dict[str, Any]:
    return {
        "calls": metrics.calls,
        "rows_in": metrics.rows_in,
        "bytes_read": metrics.bytes_read,
        "object_bytes": metrics.object_size,
        "bytes_returned": metrics.bytes_returned,
        "storage_elapsed_s": metrics.elapsed_ns / 1e9,
    }


def describe_pushdown(workload: Workload, query: QuerySpec, raw: Any) -> Answer:
    table, metrics = raw
    return Answer(
        rows_out=table.num_rows,
        checksum=arrow_checksum(table),
        bytes_from_storage=metrics.bytes_returned,
        result_nbytes=table.nbytes,
        table=table,
        storage=_storage_stats(metrics),
    )


# --- skyhook_client ----------------------------------------------------------------------------


def run_client_side(workload: Workload, query: QuerySpec) -> tuple[pa.Table, ScanMetrics]:
    scan = plan(workload.file, parse_query(query.text))
    request = ScanRequest(scan.columns or (), scan.predicate)  # every object filtered here
    needed = None
    if request.columns:
        needed = list(dict.fromkeys([*request.columns, *columns_of(request.predicate)]))
    store = open_store(workload.store_url)

    def fetch_and_filter(entry: PlannedObject) -> tuple[pa.Table, int]:
        # The whole object crosses from storage to the client, in one read of the size the
        # catalog records (no stat round trip first).
        data = store.read(entry.name, 0, entry.bytes)
        return scan_table(read_columns(data, needed, entry.name), request), len(data)

    workers = max(1, min(int(config.get("max-in-flight")), len(scan.objects)))
    with ThreadPoolExecutor(workers, thread_name_prefix="bench-client-side") as pool:
        parts = list(pool.map(fetch_and_filter, scan.objects))
    metrics = ScanMetrics(calls=len(parts), rows_in=sum(o.rows for o in scan.objects))
    metrics.bytes_read = metrics.object_size = metrics.bytes_returned = sum(n for _, n in parts)
    if not parts:
        return scan.empty_table(), metrics
    return pa.concat_tables([t for t, _ in parts]), metrics


def describe_client_side(workload: Workload, query: QuerySpec, raw: Any) -> Answer:
    answer = describe_pushdown(workload, query, raw)
    assert answer.storage is not None
    answer.storage.pop("storage_elapsed_s")  # nothing ran in the storage
    return answer


# --- uproot ------------------------------------------------------------------------------------


def run_uproot(workload: Workload, query: QuerySpec) -> ak.Array:
    with uproot.open(workload.root_path) as f:
        arrays = f[TREE].arrays(query.branches(workload.branches), library="ak")
    selected = arrays[arrays[SELECTION_BRANCH] >= np.float32(query.threshold)]
    return selected if query.columns is None else selected[list(query.columns)]


def describe_uproot(workload: Workload, query: QuerySpec, raw: Any) -> Answer:
    values = ak.values_astype(raw[CHECKSUM_COLUMN], np.float64)
    return Answer(
        rows_out=len(raw),
        checksum=float(ak.sum(values, axis=None)),
        bytes_from_storage=sum(workload.branch_bytes[b] for b in query.branches(workload.branches)),
        result_nbytes=int(ak.to_packed(raw).nbytes),  # a filtered array shares buffers
    )


# --- parquet -----------------------------------------------------------------------------------


def run_parquet(workload: Workload, query: QuerySpec) -> pa.Table:
    dataset = pads.dataset(workload.parquet_dir, format="parquet")
    threshold = pa.scalar(query.threshold, pa.float32())
    columns = None if query.columns is None else list(query.columns)
    return dataset.to_table(columns=columns, filter=pc.field(SELECTION_BRANCH) >= threshold)


def describe_parquet(workload: Workload, query: QuerySpec, raw: Any) -> Answer:
    if query.columns is None:
        needed = list(workload.parquet_bytes)
    else:
        needed = list(dict.fromkeys([*query.columns, SELECTION_BRANCH]))
    moved = sum(workload.parquet_bytes[c] for c in needed) + workload.parquet_footer_bytes
    return Answer(
        rows_out=raw.num_rows,
        checksum=arrow_checksum(raw),
        bytes_from_storage=moved,
        result_nbytes=raw.nbytes,
        table=raw,
    )


ALL_SYSTEMS = {
    "skyhook_pushdown": System("skyhook_pushdown", run_pushdown, describe_pushdown),
    "skyhook_client": System("skyhook_client", run_client_side, describe_client_side),
    "uproot": System("uproot", run_uproot, describe_uproot),
    "parquet": System("parquet", run_parquet, describe_parquet),
}
