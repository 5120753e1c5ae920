"""An ingest killed at any point leaves its dataset complete or absent, and rerunning it
completes and leaves no garbage; a rerun ingest task accepts its own objects; the lock of
a killed writer is taken over at once, while a live holder's lock holds, and writers racing to
take over a stale lock hold it one at a time.

Soak variants are marked ``slow``; reliability_support.py says how to run them.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from query_support import query_file
from reliability_support import FORK, SMALL_OBJECTS, needs_slow, slow
from reliability_support import small as small  # a module-scoped fixture

from skyhook_dask.catalog.model import load_dataset
from skyhook_dask.catalog.verify import verify_dataset
from skyhook_dask.exceptions import (
    DatasetExistsError,
    DatasetNotFoundError,
    ObjectExistsError,
    ObjectNotFoundError,
)
from skyhook_dask.formats import manifest as mf
from skyhook_dask.ingest.lock import dataset_lock, holder_is_dead, owner_record
from skyhook_dask.ingest.pipeline import IngestOptions, ingest_file, new_ingest_id, write_dataset
from skyhook_dask.storage import close_stores, open_store
from skyhook_dask.storage.local import LocalStore


def _slow_ingest(url: str, sources: list[str], name: str, overwrite: bool, delay: float) -> None:
    """Run in a forked child: an ingest whose every store write takes ``delay`` longer."""
    original = LocalStore.write

    def write(self: LocalStore, obj: str, data: bytes, *, exclusive: bool = False) -> None:
        original(self, obj, data, exclusive=exclusive)
        time.sleep(delay)

    LocalStore.write = write  # type: ignore[method-assign]
    write_dataset(url, sources, name, object_size=SMALL_OBJECTS, overwrite=overwrite)


def _assert_complete_or_absent(store: Any, name: str, old: str | None) -> str | None:
    """The dataset is absent (or still the old version), or complete. Returns its ingest_id."""
    if not store.exists(mf.manifest_name(name)):
        assert old is None
        with pytest.raises(DatasetNotFoundError):
            load_dataset(store, name)
        return None
    dataset = load_dataset(store, name)
    prefix = mf.data_prefix(name, dataset.ingest_id)
    assert all(f.ingest_id == dataset.ingest_id for f in dataset.files)
    assert all(obj.name.startswith(prefix) for _, _, obj in dataset.objects())
    report = verify_dataset(store, name)
    assert report.ok, str(report)
    for file in dataset.files:
        events = file.trees["Events;1"]
        table = query_file(store.url, file, "project event_id").table
        assert table.column("event_id").to_pylist() == list(range(events.entries))
    return dataset.ingest_id


def _kill_when(trigger: Callable[[], bool], child: Any, timeout: float = 60) -> bool:
    """SIGKILL ``child`` once ``trigger()`` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while child.is_alive() and time.monotonic() < deadline:
        if trigger():
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
            return True
        time.sleep(0.002)
    child.join(30)
    return False


def _killed_ingest_trial(
    directory: Path, sources: list[str], point: str, count: int, reference: list[str]
) -> None:
    """Kill an ingest at ``point`` (objects written, lock held, manifest written), check the
    store, then ingest again and check that it completes and leaves no garbage."""
    url = directory.as_uri()
    store = open_store(url)
    old = None
    if point == "manifest":  # replacing a published version: kill between publish and gc
        old = write_dataset(store, sources[:1], "k", object_size=SMALL_OBJECTS).ingest_id
    triggers = {
        "objects": lambda: (
            sum(1 for n in store.list("k/data/") if old is None or old not in n) >= count
        ),
        "lock": lambda: store.exists(mf.lock_name("k")),
        "manifest": lambda: b'"ingest_id":"' + old.encode() not in _manifest_bytes(store),
    }
    child = FORK.Process(target=_slow_ingest, args=(url, sources, "k", old is not None, 0.02))
    child.start()
    killed = _kill_when(triggers[point], child)
    assert killed, f"the ingest finished before the kill point {point}"
    # Killed while publishing, the writer leaves its lock behind.
    assert store.exists(mf.lock_name("k")) == (point in ("lock", "manifest"))
    _assert_complete_or_absent(store, "k", old)
    started = time.monotonic()
    again = write_dataset(store, sources, "k", object_size=SMALL_OBJECTS, overwrite=True)
    assert time.monotonic() - started < 20  # a dead writer's lock does not hold it up
    assert _assert_complete_or_absent(store, "k", None) == again.ingest_id
    assert set(store.list("k/data/")) == mf.referenced_objects(again.manifest)
    assert [o.checksum for _, _, o in again.objects()] == reference
    assert not store.exists(mf.lock_name("k"))
    close_stores(url)


def _manifest_bytes(store: Any) -> bytes:
    try:
        return store.read(mf.manifest_name("k"))  # type: ignore[no-any-return]
    except ObjectNotFoundError:
        return b""


@pytest.fixture(scope="module")
def reference_checksums(small: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    url = tmp_path_factory.mktemp("reference").as_uri()
    dataset = write_dataset(url, [str(p) for p in small], "k", object_size=SMALL_OBJECTS)
    return [o.checksum for _, _, o in dataset.objects()]


@pytest.mark.parametrize(
    ("point", "count"), [("objects", 1), ("objects", 7), ("lock", 0), ("manifest", 0)]
)
def test_ingest_killed_leaves_dataset_complete_or_absent(
    small: list[Path], tmp_path: Path, reference_checksums: list[str], point: str, count: int
) -> None:
    assert len(reference_checksums) > 8
    _killed_ingest_trial(tmp_path, [str(p) for p in small], point, count, reference_checksums)


@slow
@needs_slow
def test_ingest_killed_at_random_points_soak(
    small: list[Path], tmp_path: Path, reference_checksums: list[str]
) -> None:
    rng = random.Random(11)
    for trial in range(40):
        point = rng.choice(["objects", "objects", "lock", "manifest"])
        count = rng.randrange(1, len(reference_checksums))
        folder = tmp_path / f"trial{trial}"
        _killed_ingest_trial(folder, [str(p) for p in small], point, count, reference_checksums)


def test_an_ingest_task_run_twice_meets_its_own_objects(small: list[Path]) -> None:
    """A Dask task re-run after its worker died writes the same names again: identical bytes
    are accepted, different bytes (another writer) are not."""
    store = open_store(f"memory://rerun-{uuid.uuid4().hex}")
    options = IngestOptions(object_size=SMALL_OBJECTS)
    ingest_id = new_ingest_id()
    first = ingest_file(store, str(small[0]), "r", ingest_id, 0, options)
    store.delete(first["trees"][0]["objects"][-1]["name"])  # the first run died before its end
    again = ingest_file(store, str(small[0]), "r", ingest_id, 0, options)
    assert again["trees"] == first["trees"]
    with pytest.raises(ObjectExistsError):
        ingest_file(store, str(small[1]), "r", ingest_id, 0, options)
    close_stores(store.url)


# --- locks of dead writers ---------------------------------------------------------------------


def _exit_at_once() -> None:
    pass


def test_lock_holder_liveness() -> None:
    assert not holder_is_dead(owner_record())  # this process
    child = FORK.Process(target=_exit_at_once)
    child.start()
    child.join(10)
    dead = {**owner_record(), "pid": child.pid, "started": owner_record()["started"]}
    assert holder_is_dead(dead)
    reused = {**owner_record(), "started": owner_record()["started"] - 1}  # same pid, other start
    assert holder_is_dead(reused)
    assert not holder_is_dead({**dead, "host": "another-host"})
    assert not holder_is_dead({**dead, "pidns": "pid:[1]"})
    assert not holder_is_dead({"pid": child.pid})  # an old-style record: only time tells


def _hold_lock(url: str) -> None:
    with dataset_lock(open_store(url), "held"):
        time.sleep(600)


def test_lock_of_a_killed_writer_is_taken_over_at_once(tmp_path: Path) -> None:
    url = tmp_path.as_uri()
    store = open_store(url)
    child = FORK.Process(target=_hold_lock, args=(url,))
    child.start()
    try:
        deadline = time.monotonic() + 30
        while not store.exists(mf.lock_name("held")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # While its holder lives, the lock holds.
        with (
            pytest.raises(DatasetExistsError, match="another writer"),
            dataset_lock(store, "held", timeout=0.3),
        ):
            pass
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    started = time.monotonic()
    with dataset_lock(store, "held", timeout=5):
        assert time.monotonic() - started < 1
    close_stores(url)


def _hold_in_turn(store: Any, dataset: str, writers: int) -> list[tuple[float, float]]:
    """``writers`` threads take ``dataset``'s lock at once; the times each held it."""
    barrier = threading.Barrier(writers)
    held: list[tuple[float, float]] = []

    def writer() -> None:
        barrier.wait()
        with dataset_lock(store, dataset, timeout=60):
            began = time.monotonic()
            time.sleep(0.02)
            held.append((began, time.monotonic()))

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return held


def test_writers_taking_over_a_stale_lock_hold_it_one_at_a_time(store: Any, prefix: str) -> None:
    """All writers find a dead writer's lock and break it at once: still, one holder at a time
    (taking over is one atomic compare-and-delete), and the last one out leaves no lock."""
    dataset = f"{prefix}-stale"
    for round_ in range(3):
        dead = {"token": f"dead-{round_}", "time": 0.0, "host": "gone", "pid": 1}
        store.write(mf.lock_name(dataset), json.dumps(dead).encode())
        held = sorted(_hold_in_turn(store, dataset, writers=6))
        assert len(held) == 6
        assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(held)), held
        assert not store.exists(mf.lock_name(dataset))
