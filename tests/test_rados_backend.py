"""The RADOS backend against the real dev cluster, checked with Ceph's own `rados` tool.

The shared contract suite (test_backend_contract.py) covers what every backend must do; these
tests cover what is particular to RADOS: URLs, librados errors, class calls, concurrency.
"""

from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import time
from typing import Any

import pytest

from skyhook_dask.ceph.cluster import DevCluster
from skyhook_dask.exceptions import (
    ClassNotAvailableError,
    ObjectExistsError,
    ObjectNotFoundError,
    ProtocolError,
    StoreURLError,
)
from skyhook_dask.runtime.mappers import InProcess
from skyhook_dask.storage import open_store
from skyhook_dask.storage.rados import RadosStore

# --- URLs (no cluster needed) ----------------------------------------------------------------


def test_url_parameters_reach_the_store() -> None:
    url = "rados://mypool?conf=/x/ceph.conf&name=client.alice&keyring=/x/k&timeout=7.5"
    store = RadosStore.from_url(url)
    assert store.pool == "mypool" and store.name == "client.alice" and store.timeout == 7.5
    assert store.url == url
    connection = store._connection
    assert (connection.conf, connection.keyring) == ("/x/ceph.conf", "/x/k")
    copy = pickle.loads(pickle.dumps(store))
    assert copy.url == url and copy._connection is connection  # one handle per process


def test_url_defaults() -> None:
    store = RadosStore.from_url("rados://p")
    assert store.name == "client.admin" and store._connection.conf is None
    assert RadosStore.from_url("rados://p?name=bob").name == "client.bob"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("rados://?conf=/c", "rados://POOL"),
        ("rados://p/extra", "rados://POOL"),
        ("rados://p?conf=/c&user=x", "unknown parameter.*user"),
        ("rados://p?timeout=soon", "timeout must be a number"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StoreURLError, match=message):
        RadosStore.from_url(url)


def test_missing_config_file_is_named() -> None:
    with pytest.raises(StoreURLError, match=r"/nonexistent/ceph\.conf"):
        RadosStore.from_url("rados://p?conf=/nonexistent/ceph.conf").stat("x")


# --- against the cluster ---------------------------------------------------------------------


def _rados_cli(cluster: DevCluster, *args: str, stdin: bytes | None = None) -> bytes:
    """Ground truth independent of the backend: Ceph's `rados` tool as client.admin."""
    argv = ["rados", "-c", str(cluster.conf_path), "--name", "client.admin", "-p", cluster.pool]
    done = subprocess.run([*argv, *args], input=stdin, capture_output=True, timeout=30, check=True)
    return done.stdout


@pytest.fixture
def rados_store(ceph_cluster: DevCluster) -> RadosStore:
    store = open_store(ceph_cluster.url)
    assert isinstance(store, RadosStore)
    return store


@pytest.mark.ceph
def test_bytes_agree_with_the_rados_tool(
    rados_store: RadosStore, ceph_cluster: DevCluster, prefix: str
) -> None:
    data = bytes(range(256)) * 20_000  # 5 MiB, several OSD extents
    rados_store.write(f"{prefix}/ours", data)
    assert _rados_cli(ceph_cluster, "get", f"{prefix}/ours", "-") == data
    _rados_cli(ceph_cluster, "put", f"{prefix}/theirs", "-", stdin=data[:1234])
    assert rados_store.read(f"{prefix}/theirs") == data[:1234]
    assert rados_store.read(f"{prefix}/ours", 4_000_000, 10) == data[4_000_000:4_000_010]
    assert rados_store.read(f"{prefix}/ours", len(data) - 3) == data[-3:]
    assert rados_store.read(f"{prefix}/ours", len(data) + 10) == b""
    assert rados_store.read(f"{prefix}/ours", 7, 0) == b""
    with pytest.raises(ValueError, match="offset"):
        rados_store.read(f"{prefix}/ours", -1)


@pytest.mark.ceph
def test_stat_size_and_mtime(rados_store: RadosStore, prefix: str) -> None:
    before = time.time()
    rados_store.write(f"{prefix}/s", b"12345")
    info = rados_store.stat(f"{prefix}/s")
    assert info.name == f"{prefix}/s" and info.size == 5
    assert before - 2 <= info.mtime <= time.time() + 2  # RADOS reports whole seconds


@pytest.mark.ceph
def test_exclusive_create_keeps_first_writer(
    rados_store: RadosStore, ceph_cluster: DevCluster, prefix: str
) -> None:
    rados_store.write(f"{prefix}/x", b"first", exclusive=True)
    with pytest.raises(ObjectExistsError, match=f"'{prefix}/x'.*RADOS pool 'skyhook'"):
        rados_store.write(f"{prefix}/x", b"second", exclusive=True)
    assert _rados_cli(ceph_cluster, "get", f"{prefix}/x", "-") == b"first"


@pytest.mark.ceph
def test_list_and_delete_agree_with_the_rados_tool(
    rados_store: RadosStore, ceph_cluster: DevCluster, prefix: str
) -> None:
    names = [f"{prefix}/b/2", f"{prefix}/a", f"{prefix}/b/1"]
    for name in names:
        rados_store.write(name, b"x")
    listed = _rados_cli(ceph_cluster, "ls").decode().split()
    assert sorted(n for n in listed if n.startswith(prefix)) == sorted(names)
    assert list(rados_store.list(prefix)) == sorted(names)
    assert list(rados_store.list(f"{prefix}/b/")) == [f"{prefix}/b/1", f"{prefix}/b/2"]
    rados_store.delete(f"{prefix}/a")
    rados_store.delete(f"{prefix}/a")
    assert f"{prefix}/a" not in _rados_cli(ceph_cluster, "ls").decode().split()


@pytest.mark.ceph
def test_metadata_is_xattrs(rados_store: RadosStore, ceph_cluster: DevCluster, prefix: str) -> None:
    rados_store.write(f"{prefix}/m", b"data")
    rados_store.set_meta(f"{prefix}/m", "checksum", b"\x00\xffbinary")
    assert _rados_cli(ceph_cluster, "getxattr", f"{prefix}/m", "checksum") == b"\x00\xffbinary"
    assert rados_store.get_meta(f"{prefix}/m") == {"checksum": b"\x00\xffbinary"}
    # Metadata never creates an object that does not exist.
    with pytest.raises(ObjectNotFoundError, match=f"{prefix}/none"):
        rados_store.set_meta(f"{prefix}/none", "k", b"v")
    assert not rados_store.exists(f"{prefix}/none")


@pytest.mark.ceph
def test_builtin_hello_class(rados_store: RadosStore, prefix: str) -> None:
    rados_store.write(f"{prefix}/h", b"")
    assert rados_store.exec(f"{prefix}/h", "hello", "say_hello", b"skyhook") == b"Hello, skyhook!"
    assert rados_store.exec(f"{prefix}/h", "hello", "say_hello", b"") == b"Hello, world!"


@pytest.mark.ceph
def test_class_call_errors(rados_store: RadosStore, prefix: str) -> None:
    name = f"{prefix}/e"
    rados_store.write(name, b"x")
    with pytest.raises(ClassNotAvailableError, match=f"hello.no_such_method on object '{name}'"):
        rados_store.exec(name, "hello", "no_such_method", b"")
    with pytest.raises(ClassNotAvailableError, match="no object class 'nosuchclass'"):
        rados_store.exec(name, "nosuchclass", "scan", b"")
    # hello.say_hello refuses inputs over 100 bytes with EINVAL.
    with pytest.raises(ProtocolError, match=f"hello.say_hello on object '{name}'"):
        rados_store.exec(name, "hello", "say_hello", b"x" * 101)
    with pytest.raises(ObjectNotFoundError, match=f"{prefix}/missing"):
        rados_store.exec(f"{prefix}/missing", "hello", "replay", b"")


@pytest.mark.ceph
def test_output_larger_than_the_first_buffer_is_retried(
    rados_store: RadosStore, prefix: str
) -> None:
    data = bytes(range(256)) * 4 + b"tail" * 19  # 1100 bytes: all that hello.replay returns
    rados_store.write(f"{prefix}/r", data)
    assert rados_store.exec(f"{prefix}/r", "hello", "replay", b"", output_bound=16) == data


@pytest.mark.ceph
def test_concurrent_calls_on_one_connection_return_outputs_in_order(
    rados_store: RadosStore, prefix: str
) -> None:
    names = [f"{prefix}/o{i}" for i in range(40)]
    for i, name in enumerate(names):
        rados_store.write(name, f"object {i}".encode())
    calls = [(name, "hello", "replay", b"") for name in names] * 5
    threads = InProcess(8)
    outputs = threads(rados_store.exec, calls, store_url=rados_store.url, label="replay")
    assert outputs == [f"object {i}".encode() for i in range(40)] * 5
    assert threads(rados_store.exec, [], store_url=rados_store.url, label="replay") == []
    calls[17] = (names[0], "hello", "no_such_method", b"")
    with pytest.raises(ClassNotAvailableError, match="no_such_method"):
        threads(rados_store.exec, calls, store_url=rados_store.url, label="replay")


@pytest.mark.ceph
def test_stores_share_one_connection(ceph_cluster: DevCluster, rados_store: RadosStore) -> None:
    other = RadosStore.from_url(ceph_cluster.url)
    assert other is not rados_store and other._connection is rados_store._connection
    assert open_store(ceph_cluster.url) is rados_store


def _call_in_child(url: str, name: str, queue: Any) -> None:
    store = open_store(url)  # the parent's cached store, with its inherited handle
    queue.put((store.read(name), store.exec(name, "hello", "say_hello", b"child")))


@pytest.mark.ceph
def test_forked_children_open_their_own_connection(
    rados_store: RadosStore, ceph_cluster: DevCluster, prefix: str
) -> None:
    rados_store.write(f"{prefix}/f", b"from parent")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [
        context.Process(target=_call_in_child, args=(ceph_cluster.url, f"{prefix}/f", queue))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    results = [queue.get(timeout=30) for _ in children]
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert results == [(b"from parent", b"Hello, child!")] * 2
    assert rados_store.read(f"{prefix}/f") == b"from parent"  # the parent's handle still works
