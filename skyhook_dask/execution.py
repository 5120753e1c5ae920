"""Run one request on many objects: in the storage when the class is there, else client-side.

Everything here takes a picklable store URL and object names, so the same functions run in the
driver's thread pool or as Dask tasks on workers (which reuse the process-wide store).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import config
from .backends import ObjectStore, open_store
from .exceptions import ClassNotAvailableError
from .objects import RangeFile, read_columns
from .protocol import (
    CLASS_NAME,
    COMPRESSION_CODES,
    Aggregate,
    ScanMetrics,
    ScanRequest,
    decode_result,
)
from .retry import call_with_retries

_fallback_warned: set[str] = set()


class ClientSideFallbackWarning(UserWarning):
    """The storage has no skyhook class: objects are read and filtered in the client."""


def call_class(store: ObjectStore, name: str, method: str, payload: bytes) -> bytes:
    """``skyhook.<method>`` on one object, falling back to the Python class in this process.

    A call that fails because the storage is briefly unavailable (an OSD restarting) is
    repeated within the ``skyhook.retry-time`` budget (see :mod:`skyhook_dask.retry`).
    """
    return call_with_retries(
        lambda: _call_class_once(store, name, method, payload),
        f"skyhook.{method} on object {name!r}",
    )


def _call_class_once(store: ObjectStore, name: str, method: str, payload: bytes) -> bytes:
    try:
        return store.exec(name, CLASS_NAME, method, payload)
    except ClassNotAvailableError:
        if config.get("strict"):
            raise
        if store.url not in _fallback_warned:
            _fallback_warned.add(store.url)
            warnings.warn(
                f"the storage at {store.url} has no '{CLASS_NAME}' object class; reading objects "
                "and filtering in the client instead (set skyhook.strict to make this an error)",
                ClientSideFallbackWarning,
                stacklevel=5,  # the caller of call_class, past call_with_retries
            )
    from .scan import execute

    size = store.stat(name).size
    source = RangeFile(lambda offset, length: store.read(name, offset, length), size)
    return execute(method, source, payload, object_size=size, name=name)


# Requests for every row and every column, whatever the result compression.
_EVERYTHING = frozenset(ScanRequest(compression=c).encode() for c in COMPRESSION_CODES)


def scan(store: ObjectStore, name: str, payload: bytes) -> tuple[pa.Table, ScanMetrics]:
    """``skyhook.scan`` on one object. A request for every row and column reads the object
    itself instead: the storage then neither decodes nor re-encodes it."""
    if payload not in _EVERYTHING:
        return decode_result(call_class(store, name, "scan", payload))
    data = call_with_retries(lambda: store.read(name), f"read of object {name!r}")
    table = read_columns(data, name=name)
    rows, size = table.num_rows, len(data)
    metrics = ScanMetrics(rows, rows, size, size, bytes_returned=size, calls=1)
    return table, metrics


def scan_object(store_url: str, name: str, payload: bytes) -> tuple[pa.Table, ScanMetrics]:
    """Selected rows and projected columns of one object, with what the scan did."""
    return scan(open_store(store_url), name, payload)


def aggregate_object(store_url: str, name: str, payload: bytes) -> tuple[pa.Table, ScanMetrics]:
    """One object's partial aggregates (to be merged with :func:`combine_aggregates`)."""
    return decode_result(call_class(open_store(store_url), name, "aggregate", payload))


def map_objects(
    func: Any, store_url: str, names: Sequence[str], payloads: Sequence[bytes] | bytes
) -> tuple[list[pa.Table], ScanMetrics]:
    """Apply ``scan_object``/``aggregate_object`` to many objects concurrently, keeping order;
    ``payloads`` is one request for all, or one per object."""
    metrics = ScanMetrics()
    if not names:
        return [], metrics
    if isinstance(payloads, bytes):
        payloads = [payloads] * len(names)
    workers = max(1, min(int(config.get("max-in-flight")), len(names)))
    with ThreadPoolExecutor(workers, thread_name_prefix="skyhook-scan") as pool:
        results = list(pool.map(lambda n, p: func(store_url, n, p), names, payloads))
    for _, m in results:
        metrics.add(m)
    return [t for t, _ in results], metrics


def scan_objects(
    store_url: str,
    names: Sequence[str],
    request: ScanRequest,
    schema: pa.Schema,
    payloads: Sequence[bytes] | None = None,
) -> tuple[pa.Table, ScanMetrics]:
    """One table with the selected rows of all objects, in object order.

    ``schema`` is the tree's schema; it gives the result's columns when no object is scanned.
    ``payloads`` (one per object) replace ``request`` where objects need different ones.
    """
    tables, metrics = map_objects(scan_object, store_url, names, payloads or request.encode())
    if not tables:
        columns = list(request.columns) or schema.names
        return schema.empty_table().select(columns), metrics
    return pa.concat_tables(tables), metrics


def combine_aggregates(partials: Sequence[pa.Table], aggregates: Sequence[Aggregate]) -> list[Any]:
    """Merge per-object aggregate rows into final values (None where nothing was aggregated)."""
    values: list[Any] = []
    for i, agg in enumerate(aggregates):
        col = [t.column(str(i)) for t in partials]
        counts = sum(pc.sum(t.column(f"{i}.n")).as_py() or 0 for t in partials)
        if agg.op == "count":
            values.append(sum(c[0].as_py() or 0 for c in col))
            continue
        merged = pa.chunked_array([c for c in col if len(c)], type=col[0].type) if col else None
        if merged is None or counts == 0:
            values.append(0 if agg.op == "sum" else None)
        elif agg.op == "sum":
            values.append(pc.sum(merged).as_py())
        elif agg.op == "mean":
            values.append(pc.sum(merged.cast(pa.float64())).as_py() / counts)
        else:
            values.append(getattr(pc, agg.op)(merged).as_py())
    return values


def aggregate_objects(
    store_url: str, names: Sequence[str], request: ScanRequest
) -> tuple[list[Any], ScanMetrics]:
    partials, metrics = map_objects(aggregate_object, store_url, names, request.encode())
    return combine_aggregates(partials, request.aggregates), metrics
