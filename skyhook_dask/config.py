"""Settings, kept in Dask's config system under ``skyhook.*``.

Set them like any Dask option: ``dask.config.set({"skyhook.strict": True})``, a YAML file in
``~/.config/dask/``, or environment variables such as ``DASK_SKYHOOK__STRICT=true``.
"""

from __future__ import annotations

from typing import Any

import dask.config

DEFAULTS: dict[str, Any] = {
    "skyhook": {
        # Fail instead of filtering client-side when the object class is missing on the OSDs.
        "strict": False,
        # Object calls in flight at once from one process.
        "max-in-flight": 16,
        # Target size of one object written by ingest (bytes of uncompressed Arrow data).
        "object-size": 64 * 1024 * 1024,
        # Compression of column buffers inside objects: none, lz4 or zstd.
        "object-compression": "lz4",
        # Compression of scan results sent back from the storage: none, lz4 or zstd.
        "result-compression": "lz4",
        # Seconds before a storage operation is given up (RADOS op/mon timeouts).
        "timeout": 60,
        # Seconds during which object calls that find the storage unavailable are retried.
        "retry-time": 30,
    }
}

dask.config.update_defaults(DEFAULTS)


def get(key: str) -> Any:
    """``skyhook.<key>`` from Dask's config (``key`` without the prefix)."""
    # the default stays when a dask.config.set entered before this module was imported has
    # taken the whole "skyhook" section away on leaving
    return dask.config.get(f"skyhook.{key}", default=DEFAULTS["skyhook"][key])


def compression(key: str) -> str | None:
    value = get(key)
    return None if value in (None, "none", "") else str(value)
