"""The contract every storage backend passes: memory, local directory and real RADOS alike."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from skyhook_dask.exceptions import (
    ClassNotAvailableError,
    InvalidNameError,
    ObjectExistsError,
    ObjectNotFoundError,
    ProtocolError,
    QueryTypeError,
    SkyhookError,
    UnknownColumnError,
)
from skyhook_dask.formats.objects import write_object
from skyhook_dask.formats.protocol import ScanRequest, decode_result
from skyhook_dask.objclass import scan
from skyhook_dask.query.expr import Call, Column, Literal
from skyhook_dask.storage import ObjectStore


def test_is_an_object_store(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_write_then_read_whole_and_ranges(store: ObjectStore, prefix: str) -> None:
    data = bytes(range(256)) * 40
    store.write(f"{prefix}/a", data)
    assert store.read(f"{prefix}/a") == data
    assert store.read(f"{prefix}/a", 100, 50) == data[100:150]
    assert store.read(f"{prefix}/a", 10_000) == data[10_000:]
    assert store.read(f"{prefix}/a", len(data) - 5, 100) == data[-5:]  # short read at the end
    assert store.stat(f"{prefix}/a").size == len(data)


@pytest.mark.parametrize("size", [(1 << 20) - 1, 1 << 20, 3 << 20])
def test_whole_reads_of_large_objects(store: ObjectStore, prefix: str, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    store.write(f"{prefix}/big", data)
    assert store.read(f"{prefix}/big") == data
    assert store.read(f"{prefix}/big", size // 3) == data[size // 3 :]
    assert store.read(f"{prefix}/big", size + 10) == b""


def test_write_replaces_atomically(store: ObjectStore, prefix: str) -> None:
    store.write(f"{prefix}/a", b"old contents")
    store.write(f"{prefix}/a", b"new")
    assert store.read(f"{prefix}/a") == b"new"
    assert store.stat(f"{prefix}/a").size == 3


def test_empty_object(store: ObjectStore, prefix: str) -> None:
    store.write(f"{prefix}/empty", b"")
    assert store.read(f"{prefix}/empty") == b""
    assert store.stat(f"{prefix}/empty").size == 0


def test_exclusive_create(store: ObjectStore, prefix: str) -> None:
    store.write(f"{prefix}/x", b"first", exclusive=True)
    with pytest.raises(ObjectExistsError, match=f"{prefix}/x"):
        store.write(f"{prefix}/x", b"second", exclusive=True)
    assert store.read(f"{prefix}/x") == b"first"


def test_exclusive_create_races_have_one_winner(store: ObjectStore, prefix: str) -> None:
    wins: list[int] = []

    def attempt(i: int) -> None:
        try:
            store.write(f"{prefix}/race", str(i).encode(), exclusive=True)
            wins.append(i)
        except ObjectExistsError:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.read(f"{prefix}/race") == str(wins[0]).encode()


def test_missing_object_errors_name_it(store: ObjectStore, prefix: str) -> None:
    name = f"{prefix}/nope"
    for call in (
        lambda: store.read(name),
        lambda: store.stat(name),
        lambda: store.get_meta(name),
    ):
        with pytest.raises(ObjectNotFoundError, match=name):
            call()
    assert not store.exists(name)
    store.delete(name)  # deleting a missing object is fine


def test_list_by_prefix_sorted(store: ObjectStore, prefix: str) -> None:
    names = [f"{prefix}/d/b", f"{prefix}/d/a", f"{prefix}/d2/c", f"{prefix}/e"]
    for n in names:
        store.write(n, b"x")
    assert list(store.list(f"{prefix}/d/")) == [f"{prefix}/d/a", f"{prefix}/d/b"]
    assert list(store.list(f"{prefix}/d")) == sorted(names[:3])
    assert list(store.list(prefix)) == sorted(names)
    assert list(store.list(f"{prefix}/zzz")) == []


def test_delete(store: ObjectStore, prefix: str) -> None:
    store.write(f"{prefix}/gone", b"x")
    assert store.exists(f"{prefix}/gone")
    store.delete(f"{prefix}/gone")
    assert not store.exists(f"{prefix}/gone")
    assert list(store.list(f"{prefix}/gone")) == []


def test_delete_if_compares_the_whole_object(store: ObjectStore, prefix: str) -> None:
    name = f"{prefix}/lock"
    assert store.delete_if(name, b"token") is False  # missing
    store.write(name, b"token-and-more")
    assert store.delete_if(name, b"token") is False  # a longer object is not equal
    assert store.delete_if(name, b"token-and-mora") is False
    assert store.read(name) == b"token-and-more"
    assert store.delete_if(name, b"token-and-more") is True
    assert not store.exists(name)
    assert store.delete_if(name, b"token-and-more") is False


def _take_over(store: ObjectStore, name: str, seen: bytes, callers: int) -> list[int]:
    """``callers`` threads that all saw ``seen`` at ``name`` try to replace it at once."""
    barrier = threading.Barrier(callers)
    winners: list[int] = []

    def attempt(i: int) -> None:
        barrier.wait()
        if store.delete_if(name, seen):
            store.write(name, f"new-{i}".encode(), exclusive=True)
            winners.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return winners


def test_delete_if_races_remove_once(store: ObjectStore, prefix: str) -> None:
    """Callers that all saw the same lock: one removes it and takes the name; the others
    neither remove the new holder's object nor fail on it."""
    name = f"{prefix}/contended"
    for round_ in range(6):
        store.write(name, f"old-{round_}".encode())
        winners = _take_over(store, name, f"old-{round_}".encode(), callers=6)
        assert len(winners) == 1
        assert store.read(name) == f"new-{winners[0]}".encode()


def test_metadata(store: ObjectStore, prefix: str) -> None:
    store.write(f"{prefix}/m", b"data")
    assert store.get_meta(f"{prefix}/m") == {}
    store.set_meta(f"{prefix}/m", "checksum", b"sha256:abc")
    store.set_meta(f"{prefix}/m", "rows", b"\x00\x01")
    assert store.get_meta(f"{prefix}/m") == {"checksum": b"sha256:abc", "rows": b"\x00\x01"}
    store.write(f"{prefix}/m", b"rewritten")  # a data rewrite keeps metadata, as on Ceph
    assert store.get_meta(f"{prefix}/m")["checksum"] == b"sha256:abc"


@pytest.mark.parametrize(
    "bad", ["", "/abs", "a//b", "../etc/passwd", "a/../b", "a/./b", "with space", "nl\n", "a/"]
)
def test_invalid_names_rejected(store: ObjectStore, bad: str) -> None:
    with pytest.raises(InvalidNameError):
        store.write(bad, b"x")


def test_exec_runs_the_skyhook_class(store: ObjectStore, prefix: str) -> None:
    table = pa.table(
        {"event_id": pa.array(range(10), pa.int64()), "x": [float(i) for i in range(10)]}
    )
    store.write(f"{prefix}/obj", write_object(table))
    out, metrics = decode_result(store.exec(f"{prefix}/obj", "skyhook", "stat", b""))
    assert out.column("column").to_pylist() == ["event_id", "x"]
    assert out.column("max").to_pylist() == [9.0, 9.0]
    assert metrics.object_size == store.stat(f"{prefix}/obj").size


def test_exec_unknown_method(store: ObjectStore, prefix: str) -> None:
    store.write(f"{prefix}/obj", b"x")
    with pytest.raises(ClassNotAvailableError):
        store.exec(f"{prefix}/obj", "skyhook", "no_such_method", b"")


REFUSED = {
    "unknown column": (ScanRequest(("x", "nope")).encode(), UnknownColumnError),
    "mistyped comparison": (
        ScanRequest((), Call("greater", (Column("s"), Literal(1.0, "double")))).encode(),
        QueryTypeError,
    ),
    "malformed request": (b"SKYQ\x00 not a request", ProtocolError),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused_calls_give_the_reason(store: ObjectStore, prefix: str, case: str) -> None:
    """Every backend raises the reference class's own error for a request it refuses --
    on Ceph too, where the OSD returns only an errno."""
    payload, kind = REFUSED[case]
    data = write_object(pa.table({"event_id": pa.array([0, 1], pa.int64()), "s": ["a", "b"]}))
    store.write(f"{prefix}/obj", data)
    with pytest.raises(SkyhookError) as reference:
        scan.execute("scan", data, payload, name=f"{prefix}/obj")
    with pytest.raises(kind) as raised:
        store.exec(f"{prefix}/obj", "skyhook", "scan", payload)
    assert type(raised.value) is type(reference.value)
    assert str(raised.value) == str(reference.value)
