"""The Dask worker plugin that owns each worker process's storage connection.

Task graphs carry a store URL (a short string), never a live connection. The plugin, registered
once per client with :func:`register_store_plugin`, opens the store named by that URL when the
worker starts (through :func:`skyhook_dask.storage.open_store`, the process-wide cache), hands
the same connection to every task, reconnects once when an operation fails because the storage
went away (within the same ``skyhook.retry-time`` budget), and closes the connection when the
worker shuts down. A restarted worker runs the plugin's ``setup`` again, so the connection comes
back by itself.

Tasks call :func:`with_store` (or :func:`store_for`): on a worker with the plugin they use its
connection; anywhere else (the threaded or synchronous scheduler, a worker without the plugin)
they fall back to ``open_store`` in the current process.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import dask.config
from distributed import WorkerPlugin

from ..exceptions import StoreError, StoreUnavailableError
from ..retry import RetryPolicy
from ..storage import ObjectStore, close_stores, normalize_url, open_store

if TYPE_CHECKING:
    from distributed import Client, Worker

__all__ = [
    "PLUGIN_NAME",
    "StorePlugin",
    "current_plugin",
    "register_store_plugin",
    "store_for",
    "with_store",
]

PLUGIN_NAME = "skyhook-store"
T = TypeVar("T")
logger = logging.getLogger(__name__)

# Store URLs registered through each client, so repeated calls cost no round trip.
_registered: weakref.WeakKeyDictionary[Client, frozenset[str]] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


class StorePlugin(WorkerPlugin):
    """Holds one live connection per store URL in a worker process.

    ``connections_opened`` counts the connections this plugin opened in this process (one per
    URL, plus one per reconnection); tests and diagnostics read it through ``client.run``.
    """

    name = PLUGIN_NAME

    def __init__(self, store_urls: Iterable[str]) -> None:
        self.store_urls = tuple(sorted({normalize_url(url) for url in store_urls}))
        self._init_process_state()

    def _init_process_state(self) -> None:
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()
        self.connections_opened = 0
        self.worker_address: str | None = None

    # The plugin travels pickled to the scheduler and the workers: only the URLs go with it.
    def __getstate__(self) -> dict[str, Any]:
        return {"store_urls": self.store_urls}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.store_urls = tuple(state["store_urls"])
        self._init_process_state()

    def setup(self, worker: Worker) -> None:
        self.worker_address = worker.address
        for url in self.store_urls:
            try:
                self.store(url)
            except StoreError as exc:
                # A storage outage must not keep the worker from starting; the first task
                # that needs the store tries again and reports the error where it matters.
                logger.warning("worker %s cannot open %s yet: %s", worker.address, url, exc)

    def teardown(self, worker: Worker) -> None:
        with self._lock:
            urls = list(self._stores)
            self._stores.clear()
        for url in urls:
            close_stores(url)

    def store(self, url: str) -> ObjectStore:
        """The live connection for ``url`` (opened on first use, then reused)."""
        key = normalize_url(url)
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                store = open_store(key)
                self._stores[key] = store
                self.connections_opened += 1
            return store

    def reconnect(self, url: str) -> ObjectStore:
        """Drop the connection for ``url`` and open a fresh one."""
        key = normalize_url(url)
        with self._lock:
            self._stores.pop(key, None)
        close_stores(key)
        return self.store(key)

    def call(self, url: str, operation: Callable[[ObjectStore], T]) -> T:
        """``operation(store)``, once more on a fresh connection if the storage went away.

        Both attempts share one ``skyhook.retry-time`` budget (the operation's own retries
        included), so a cluster that stays down is reported within it, not twice it.
        """
        budget = RetryPolicy.from_config().budget
        started = time.monotonic()
        try:
            return operation(self.store(url))
        except StoreUnavailableError as exc:
            left = budget - (time.monotonic() - started)
            if left <= 0:
                raise
            logger.warning("store %s failed (%s); reconnecting", url, exc)
        with dask.config.set({"skyhook.retry-time": left}):
            return operation(self.reconnect(url))


def current_plugin() -> StorePlugin | None:
    """The store plugin of the worker running the current task, or None off a worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    plugin = worker.plugins.get(PLUGIN_NAME)
    return plugin if isinstance(plugin, StorePlugin) else None


def store_for(url: str) -> ObjectStore:
    """The connection a task should use for ``url``: the plugin's, else this process's."""
    plugin = current_plugin()
    return plugin.store(url) if plugin is not None else open_store(url)


def with_store(url: str, operation: Callable[[ObjectStore], T]) -> T:
    """Run ``operation`` with the task's connection for ``url`` (reconnecting on a worker)."""
    plugin = current_plugin()
    if plugin is not None:
        return plugin.call(url, operation)
    return operation(open_store(url))


REGISTER_ATTEMPTS = 5  # a worker dying while the plugin is broadcast fails one attempt


def register_store_plugin(client: Client, store_url: str) -> StorePlugin | None:
    """Make every worker of ``client`` (now and later ones) hold a connection to ``store_url``.

    A URL already registered through this client costs nothing. Registering another URL
    replaces the plugin with one holding every URL registered so far. Returns the plugin
    registered, or None when nothing changed.
    """
    url = normalize_url(store_url)
    with _registry_lock:
        known = _registered.get(client, frozenset())
        if url in known:
            return None
        urls = known | {url}
        _registered[client] = urls
    plugin = StorePlugin(urls)
    try:
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                client.register_plugin(plugin, name=PLUGIN_NAME)
                break
            except OSError:  # CommClosedError: a worker left during the broadcast
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * 2**attempt)  # registering again replaces it: idempotent
    except BaseException:
        with _registry_lock:
            _registered[client] = known
        raise
    return plugin
