"""Storage backends behind one protocol (:class:`ObjectStore`): the embedded local directory
(``file://``, the default), memory (``memory://``, for tests) and Ceph RADOS (``rados://``).

A store URL names a backend, which is imported lazily.

``open_store(url)`` returns one shared instance per URL per process, so every task in a worker
reuses the same connection (the Dask worker plugin relies on this cache too).

Layer: storage backends. Imports ``objclass`` (stores without an OSD run the Python class),
``formats`` and the ground floor (``exceptions``, ``config``, ``retry``).
"""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from ..exceptions import BackendNotInstalledError, StoreURLError
from ..formats.names import validate_name
from .base import ObjectInfo, ObjectStore, StoreBase

__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "StoreBase",
    "close_stores",
    "default_store_url",
    "normalize_url",
    "open_store",
    "register_backend",
    "validate_name",
]

# scheme -> (module, class name, install hint)
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "file": ("skyhook_dask.storage.local", "LocalStore", ""),
    "memory": ("skyhook_dask.storage.memory", "MemoryStore", ""),
    "rados": (
        "skyhook_dask.storage.rados",
        "RadosStore",
        "the RADOS backend needs Debian's python3-rados: `apt-get install python3-rados` "
        "then `skyhook ceph link-rados` to make it importable in this environment",
    ),
}

_open: dict[str, ObjectStore] = {}
_lock = threading.Lock()


def register_backend(scheme: str, module: str, cls: str, hint: str = "") -> None:
    """Add a backend for ``scheme://`` URLs (imported on first use)."""
    _BACKENDS[scheme] = (module, cls, hint)


def default_store_url() -> str:
    """``$SKYHOOK_STORE`` if set, else the embedded store in ``~/.local/share/skyhook``."""
    env = os.environ.get("SKYHOOK_STORE")
    if env:
        return normalize_url(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base, "skyhook").absolute().as_uri()


def normalize_url(url: str | os.PathLike[str] | None) -> str:
    """Turn a URL or a plain directory path into a canonical store URL."""
    if url is None:
        return default_store_url()
    url = os.fspath(url)
    if "://" not in url:
        return Path(url).expanduser().absolute().as_uri()
    scheme = urlsplit(url).scheme
    if scheme not in _BACKENDS:
        raise StoreURLError(
            f"unknown store URL scheme {scheme!r} in {url!r}; known: {', '.join(sorted(_BACKENDS))}"
        )
    return url


def open_store(url: str | os.PathLike[str] | None = None) -> ObjectStore:
    """The process-wide store for ``url`` (opened on first use, then reused)."""
    key = normalize_url(url)
    with _lock:
        store = _open.get(key)
        if store is None:
            store = _construct(key)
            _open[key] = store
        return store


def _construct(url: str) -> ObjectStore:
    scheme = urlsplit(url).scheme
    module_name, cls_name, hint = _BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"cannot open {url!r}: {exc}" + (f"; {hint}" if hint else "")
        ) from exc
    return getattr(module, cls_name).from_url(url)  # type: ignore[no-any-return]


def close_stores(url: str | None = None) -> None:
    """Close (and forget) one cached store, or all of them."""
    with _lock:
        keys = [normalize_url(url)] if url else list(_open)
        for key in keys:
            store = _open.pop(key, None)
            if store is not None:
                store.close()
