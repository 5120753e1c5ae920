"""The one way to call the object class on an object, for every front end.

:func:`call_object` runs ``skyhook.<method>`` on one object with the task's connection (the
worker plugin's on a Dask worker, reconnecting once when the storage went away; this
process's otherwise), repeats calls that find the storage briefly unavailable within the
``skyhook.retry-time`` budget, falls back to the Python class in this process when the storage
has no class (an error under ``skyhook.strict``), and adds what the call did to this process's
metrics (:func:`process_metrics`, read by ``collect_metrics``).
"""

from __future__ import annotations

import threading
import warnings

import dask.config
import pyarrow as pa

from .. import config
from ..exceptions import ClassNotAvailableError
from ..formats.objects import RangeFile, read_columns
from ..formats.protocol import (
    CLASS_NAME,
    COMPRESSION_CODES,
    ScanMetrics,
    ScanRequest,
    decode_result,
)
from ..retry import call_with_retries
from ..storage import ObjectStore
from .plugin import with_store

__all__ = ["ClientSideFallbackWarning", "call_class", "call_object", "process_metrics"]

_fallback_warned: set[str] = set()

# What every object call run in this process did, summed; read through process_metrics().
_process_metrics = ScanMetrics()
_metrics_lock = threading.Lock()

# Requests for every row and every column, whatever the result compression.
_EVERYTHING = frozenset(ScanRequest(compression=c).encode() for c in COMPRESSION_CODES)


class ClientSideFallbackWarning(UserWarning):
    """The storage has no skyhook class: objects are read and filtered in the client."""


def call_object(
    store_url: str, name: str, method: str, payload: bytes, *, strict: bool | None = None
) -> tuple[pa.Table, ScanMetrics]:
    """``skyhook.<method>`` (``scan``, ``aggregate`` or ``stat``) on object ``name``, decoded.

    ``strict`` (None: the ``skyhook.strict`` setting) travels with a task because a worker
    does not see the driver's Dask config. A ``scan`` of every row and every column reads the
    object itself: the storage then neither decodes nor re-encodes it.
    """
    settings = {} if strict is None else {"skyhook.strict": bool(strict)}
    with dask.config.set(settings):
        table, metrics = with_store(store_url, lambda store: _call(store, name, method, payload))
    with _metrics_lock:
        _process_metrics.add(metrics)
    return table, metrics


def _call(
    store: ObjectStore, name: str, method: str, payload: bytes
) -> tuple[pa.Table, ScanMetrics]:
    if method != "scan" or payload not in _EVERYTHING:
        return decode_result(call_class(store, name, method, payload))
    data = call_with_retries(lambda: store.read(name), f"read of object {name!r}")
    table = read_columns(data, name=name)
    rows, size = table.num_rows, len(data)
    return table, ScanMetrics(rows, rows, size, size, bytes_returned=size, calls=1)


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
                stacklevel=2,
            )
    from ..objclass.scan import execute

    size = store.stat(name).size
    source = RangeFile(lambda offset, length: store.read(name, offset, length), size)
    return execute(method, source, payload, object_size=size, name=name)


def process_metrics() -> ScanMetrics:
    """A copy of the metrics summed over every object call this process has made."""
    with _metrics_lock:
        total = ScanMetrics()
        total.add(_process_metrics)
        return total
