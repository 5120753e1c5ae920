"""The worker plugin: one storage connection per worker process, reused, re-opened after a
failure or a restart, closed at teardown. Runs on a real two-process LocalCluster."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster, WorkerPlugin

from skyhook_dask import storage as backends
from skyhook_dask.exceptions import StoreUnavailableError
from skyhook_dask.runtime.plugin import (
    PLUGIN_NAME,
    StorePlugin,
    register_store_plugin,
    store_for,
    with_store,
)
from skyhook_dask.storage.local import LocalStore

SCHEME = "countfile"


class CountingStore(LocalStore):
    """A local store that counts, per process, how often it is opened and closed, and can be
    told to fail its next read as if the storage had gone away."""

    opened = 0
    closed = 0
    fail_next_read = False

    @classmethod
    def from_url(cls, url: str) -> CountingStore:
        store = super().from_url(url)
        store.url = url  # keep the counting scheme, so errors name the URL that was opened
        CountingStore.opened += 1
        return store  # type: ignore[return-value]

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if CountingStore.fail_next_read:
            CountingStore.fail_next_read = False
            raise StoreUnavailableError(f"{self.url} went away")
        return super().read(name, offset, length)

    def close(self) -> None:
        CountingStore.closed += 1


class RegisterCountingBackend(WorkerPlugin):
    """Registered before the store plugin, so every worker (restarted ones too) knows the
    counting scheme when the store plugin opens its URL."""

    name = "register-counting-backend"

    def setup(self, worker: object) -> None:
        backends.register_backend(SCHEME, __name__, "CountingStore")


def _counts() -> tuple[int, int, int]:
    return os.getpid(), CountingStore.opened, CountingStore.closed


def _plugin_connections(dask_worker: object) -> int:
    return dask_worker.plugins[PLUGIN_NAME].connections_opened  # type: ignore[attr-defined]


def _task_store(url: str, _: int) -> tuple[int, int]:
    return os.getpid(), id(store_for(url))


def _read_after_failure(url: str, name: str) -> tuple[bytes, int]:
    CountingStore.fail_next_read = True
    data = with_store(url, lambda store: store.read(name))
    return data, CountingStore.opened


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    backends.register_backend(SCHEME, __name__, "CountingStore")
    root = tmp_path_factory.mktemp("counting-store")
    url = f"{SCHEME}://{root}"
    LocalStore(root).write("probe/object", b"payload")
    return url


@pytest.fixture(scope="module")
def client(store_url: str) -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        c.register_plugin(RegisterCountingBackend())
        register_store_plugin(c, store_url)
        yield c


def test_many_tasks_share_one_connection_per_worker(client: Client, store_url: str) -> None:
    futures = client.map(_task_store, [store_url] * 24, range(24), pure=False)
    seen = client.gather(futures)
    stores_by_pid: dict[int, set[int]] = {}
    for pid, store_id in seen:
        stores_by_pid.setdefault(pid, set()).add(store_id)
    assert all(len(ids) == 1 for ids in stores_by_pid.values())
    counts = client.run(_counts)
    assert len(counts) == 2
    assert {opened for _, opened, _ in counts.values()} == {1}
    assert set(client.run(_plugin_connections).values()) == {1}


def test_registering_again_is_free(client: Client, store_url: str) -> None:
    assert register_store_plugin(client, store_url) is None
    assert {opened for _, opened, _ in client.run(_counts).values()} == {1}


def test_reconnects_after_the_storage_fails(client: Client, store_url: str) -> None:
    worker = next(iter(client.scheduler_info()["workers"]))
    data, opened = client.submit(
        _read_after_failure, store_url, "probe/object", workers=[worker], pure=False
    ).result()
    assert data == b"payload"
    assert opened == 2  # the failed connection was replaced by exactly one new one
    counts = client.run(_counts, workers=[worker])[worker]
    assert counts[1:] == (2, 1)  # the broken one was closed
    assert client.run(_plugin_connections, workers=[worker])[worker] == 2


def test_restart_reopens_the_connection_through_the_plugin(client: Client, store_url: str) -> None:
    pids_before = {pid for pid, _, _ in client.run(_counts).values()}
    client.restart()
    counts = client.run(_counts)
    assert len(counts) == 2
    assert not pids_before & {pid for pid, _, _ in counts.values()}  # new processes
    assert {(opened, closed) for _, opened, closed in counts.values()} == {(1, 0)}
    seen = client.gather(client.map(_task_store, [store_url] * 8, range(8), pure=False))
    assert {pid for pid, _ in seen} <= {pid for pid, _, _ in counts.values()}
    assert {opened for _, opened, _ in client.run(_counts).values()} == {1}


def test_teardown_closes_and_a_new_plugin_reopens(client: Client, store_url: str) -> None:
    # A second client registering the same URL replaces the plugin on every worker.
    with Client(client.scheduler.address) as other:
        assert register_store_plugin(other, store_url) is not None
        counts = client.run(_counts)
    assert {(opened, closed) for _, opened, closed in counts.values()} == {(2, 1)}


def test_off_a_worker_tasks_use_the_process_store(tmp_path: Path) -> None:
    url = tmp_path.as_uri()
    assert store_for(url) is backends.open_store(url)
    backends.open_store(url).write("a/b", b"x")
    assert with_store(url, lambda store: store.read("a/b")) == b"x"
    backends.close_stores(url)


def test_the_plugin_travels_without_its_connection(tmp_path: Path) -> None:
    plugin = StorePlugin([tmp_path.as_uri(), str(tmp_path)])
    assert plugin.store_urls == (tmp_path.as_uri(),)  # paths and URLs normalize alike
    plugin.store(tmp_path.as_uri())
    copy = pickle.loads(pickle.dumps(plugin))
    assert copy.store_urls == plugin.store_urls
    assert copy.connections_opened == 0 and copy._stores == {}
    backends.close_stores(tmp_path.as_uri())


def _failing(seconds: float, calls: list[float]) -> Any:
    """An operation that fails after ``seconds``, noting the retry budget it was given."""

    def operation(store: object) -> bytes:
        calls.append(float(dask.config.get("skyhook.retry-time")))
        time.sleep(seconds)
        raise StoreUnavailableError("the cluster did not answer")

    return operation


def test_reconnecting_shares_the_retry_budget(tmp_path: Path) -> None:
    """A worker's reconnect gets what is left of skyhook.retry-time, and none once it is spent:
    a cluster that stays down is reported within one budget, not two."""
    plugin = StorePlugin([tmp_path.as_uri()])
    calls: list[float] = []
    with dask.config.set({"skyhook.retry-time": 1.0}):
        with pytest.raises(StoreUnavailableError):
            plugin.call(tmp_path.as_uri(), _failing(0.3, calls))
        assert calls[0] == 1.0 and 0.5 < calls[1] <= 0.7  # the second attempt: what was left
        calls.clear()
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            plugin.call(tmp_path.as_uri(), _failing(1.1, calls))
        assert calls == [1.0] and time.monotonic() - began < 1.5  # spent: no reconnect
    backends.close_stores(tmp_path.as_uri())


def test_a_worker_leaving_during_registration_is_ridden_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler broadcasts the plugin to every worker; one that dies meanwhile fails that
    broadcast (CommClosedError). Registering again reaches the workers still there."""
    from distributed.comm.core import CommClosedError

    from skyhook_dask.runtime import plugin as plugin_module

    monkeypatch.setattr(plugin_module.time, "sleep", lambda _: None)

    class Flaky:
        def __init__(self, failures: int) -> None:
            self.failures, self.calls = failures, 0

        def register_plugin(self, plugin: Any, name: str) -> None:
            self.calls += 1
            if self.calls <= self.failures:
                raise CommClosedError("Address removed.")

    recovering = Flaky(failures=2)
    assert register_store_plugin(recovering, "memory://leaving") is not None  # type: ignore[arg-type]
    assert recovering.calls == 3
    broken = Flaky(failures=99)
    with pytest.raises(CommClosedError):
        register_store_plugin(broken, "memory://leaving")  # type: ignore[arg-type]
    assert broken.calls == plugin_module.REGISTER_ATTEMPTS
    assert register_store_plugin(Flaky(0), "memory://leaving") is not None  # type: ignore[arg-type]
