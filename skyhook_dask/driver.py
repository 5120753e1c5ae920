"""The Dask scheduler as SkyhookDM's driver: ingest and query tasks spread over Dask workers.

* :func:`connect_client` reaches a scheduler (``host``, ``host:port``, ``tcp://host:port``) or
  starts an embedded ``LocalCluster`` of worker processes.
* :func:`write_dataset_dask` runs one ingest task per ROOT file on the workers, then publishes
  the manifest from the driver: the same all-or-nothing result as
  :func:`skyhook_dask.ingest.write_dataset`.
* :func:`run_query_dask` runs one scan task per object and assembles each file's table in
  object order: the same tables as :func:`skyhook_dask.querying.query_file`.

Every task carries the store URL; the worker plugin (:mod:`skyhook_dask.plugin`) holds the
connection.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from dask.base import tokenize
from distributed import Client, Future, default_client, wait
from distributed.comm.addressing import parse_address, parse_host_port, unparse_host_port

from . import config
from . import manifest as mf
from .backends import normalize_url, open_store
from .catalog import Dataset, File
from .exceptions import SchedulerUnavailableError
from .ingest import IngestOptions, check_new_dataset, ingest_file, publish
from .planning import to_request
from .plugin import register_store_plugin, scan_object, with_store
from .protocol import ScanMetrics
from .query import Query, parse_query
from .querying import QueryResult, object_payloads, plan_file
from .writer import discard_objects

__all__ = [
    "DEFAULT_SCHEDULER_PORT",
    "connect_client",
    "query_files_dask",
    "run_query_dask",
    "scheduler_address",
    "write_dataset_dask",
]

DEFAULT_SCHEDULER_PORT = 8786
_HOST_PORT_SCHEMES = ("tcp", "tls", "ws", "wss")


def scheduler_address(address: str) -> str:
    """``host``, ``host:port`` or ``scheme://host[:port]`` as a full scheduler address."""
    text = address.strip() if isinstance(address, str) else ""
    if not text:
        raise ValueError(
            f"a scheduler address is 'host', 'host:port' or 'tcp://...', not {address!r}"
        )
    scheme, location = parse_address(text if "://" in text else f"tcp://{text}")
    if scheme not in _HOST_PORT_SCHEMES:
        return text  # inproc:// and other transports have their own location syntax
    try:
        host, port = parse_host_port(location, default_port=DEFAULT_SCHEDULER_PORT)
    except ValueError as exc:
        raise ValueError(f"cannot read the scheduler address {address!r}: {exc}") from exc
    return f"{scheme}://{unparse_host_port(host, port)}"


def has_current_client() -> bool:
    try:
        default_client()
    except ValueError:
        return False
    return True


def connect_client(address: str | None = None, *, timeout: float | None = None) -> Client:
    """A Dask client: connected to ``address``, else the current client, else a new embedded
    ``LocalCluster`` of worker processes (closed together with the client)."""
    if address is None:
        try:
            return default_client()
        except ValueError:
            return Client(processes=True)
    target = scheduler_address(address)
    try:
        return Client(target, **({} if timeout is None else {"timeout": timeout}))
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnavailableError(
            f"cannot reach the Dask scheduler at {target}: {exc}"
        ) from exc


# --- ingest ------------------------------------------------------------------------------------


def _ingest_task(
    store_url: str,
    url: str,
    dataset: str,
    ingest_id: str,
    file_no: int,
    options: IngestOptions,
) -> dict[str, Any]:
    return with_store(
        store_url, lambda store: ingest_file(store, url, dataset, ingest_id, file_no, options)
    )


def _source(url: str | os.PathLike[str]) -> str:
    # A relative path means the driver's working directory, not the worker's.
    text = os.fspath(url)
    return text if "://" in text else os.path.abspath(text)


def write_dataset_dask(
    client: Client,
    store_url: str,
    urls: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    name: str,
    *,
    object_size: int | None = None,
    compression: str | None = "lz4",
    trees: Sequence[str] | None = None,
    step_size: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Dataset:
    """Ingest ROOT files as dataset ``name``, one task per file on the workers.

    Nothing is visible until every file is written and the driver publishes the manifest; on
    any failure the objects of this attempt are removed and the first error is raised.
    """
    store_url = normalize_url(store_url)
    store = open_store(store_url)
    sources = [_source(urls)] if isinstance(urls, str | os.PathLike) else [_source(u) for u in urls]
    options = check_new_dataset(
        store,
        name,
        sources,
        overwrite=overwrite,
        object_size=object_size,
        compression=compression,
        trees=trees,
        step_size=step_size,
        progress=False,  # bars on workers would only clutter their logs
    )
    register_store_plugin(client, store_url)
    ingest_id = mf.new_ingest_id()
    prefix = f"ingest-skyhook-{name}-{tokenize(store_url, sources, ingest_id)}"
    futures: list[Future] = []
    try:
        futures = [
            client.submit(
                _ingest_task, store_url, url, name, ingest_id, n, options, key=(prefix, n)
            )
            for n, url in enumerate(sources)
        ]
        _show_progress(futures, progress)
        wait(futures)
        entries = _results_or_first_error(client, futures)
        return publish(store, name, entries, ingest_id, overwrite)
    except BaseException:
        # After a task failure every task has finished (wait above), so no object lands after
        # the clean-up. When interrupted, tasks already running may still write: publish()
        # of a later ingest collects such left-overs.
        with contextlib.suppress(Exception):
            client.cancel([f for f in futures if f.status == "pending"])
        discard_objects(store, name, ingest_id)
        raise


def _show_progress(futures: list[Future], progress: bool | None) -> None:
    import sys

    if progress or (progress is None and sys.stderr.isatty()):
        from distributed import progress as show

        show(futures)


def _results_or_first_error(client: Client, futures: list[Future]) -> list[Any]:
    for future in futures:
        if future.status == "error":
            future.result()  # raises the task's own exception (IngestError, StoreError, ...)
    return client.gather(futures)  # type: ignore[no-any-return]


# --- queries -----------------------------------------------------------------------------------


def query_files_dask(
    client: Client, store_url: str, files: Sequence[File], query: str | Query
) -> list[QueryResult]:
    """Plan ``query`` on the driver for each file, scan every object in its own task, and
    assemble one result per file (its objects' rows in object order)."""
    store_url = normalize_url(store_url)
    parsed = parse_query(query) if isinstance(query, str) else query
    compression = config.compression("result-compression")
    plans = [plan_file(f, parsed) for f in files]
    requests = [to_request(plan.bound, compression=compression) for plan in plans]
    register_store_plugin(client, store_url)
    dataset = next((f.dataset.name for f in files if f.dataset is not None), "files")
    prefix = f"query-skyhook-{dataset}-{tokenize(store_url, str(parsed), [f.name for f in files])}"
    futures: list[list[Future]] = []
    n = 0
    for plan, request in zip(plans, requests, strict=True):
        row = []
        payloads = object_payloads(request, [o.stats for o in plan.objects])
        for obj, payload in zip(plan.objects, payloads, strict=True):
            row.append(client.submit(scan_object, store_url, obj.name, payload, key=(prefix, n)))
            n += 1
        futures.append(row)
    outcomes = client.gather(futures)
    results = []
    for plan, request, parts in zip(plans, requests, outcomes, strict=True):
        metrics = ScanMetrics()
        for _, part_metrics in parts:
            metrics.add(part_metrics)
        if parts:
            table = pa.concat_tables([table for table, _ in parts])
        else:
            columns = list(request.columns) or plan.tree.schema.names
            table = plan.tree.schema.empty_table().select(columns)
        results.append(QueryResult(table, metrics, len(plan.objects), len(plan.skipped)))
    return results


def run_query_dask(
    client: Client, store_url: str, file_or_dataset: File | Dataset, query: str | Query
) -> pa.Table | list[pa.Table]:
    """``runQuery`` on the cluster: one table for a File, one table per file for a Dataset."""
    if isinstance(file_or_dataset, File):
        return query_files_dask(client, store_url, [file_or_dataset], query)[0].table
    if isinstance(file_or_dataset, Dataset):
        results = query_files_dask(client, store_url, file_or_dataset.getFiles(), query)
        return [r.table for r in results]
    raise TypeError(f"runQuery takes a File or a Dataset, not {type(file_or_dataset).__name__}")
