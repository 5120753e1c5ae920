"""Reliability: fuzzed input never breaks the parser or the object readers; corrupt objects are
named; storage calls ride out brief outages within a bounded time; an ingest killed at any point
leaves its dataset complete or absent; concurrent writers never mix; many clients at once get the
answers one gets alone.

Long soak variants are marked ``slow`` and run only on demand::

    SKYHOOK_SLOW_TESTS=1 .venv/bin/pytest -m slow tests/test_reliability.py tests/test_faults.py
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import signal
import statistics
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import numpy as np
import pyarrow as pa
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyhook_dask import manifest as mf
from skyhook_dask.backends import close_stores, open_store
from skyhook_dask.backends.local import LocalStore
from skyhook_dask.backends.memory import MemoryStore
from skyhook_dask.catalog import Dataset, list_datasets, load_dataset
from skyhook_dask.exceptions import (
    ChecksumError,
    ClassNotAvailableError,
    DatasetExistsError,
    DatasetNotFoundError,
    IngestError,
    ObjectExistsError,
    ObjectFormatError,
    ObjectNotFoundError,
    QueryError,
    QuerySyntaxError,
    SkyhookError,
    StoreUnavailableError,
)
from skyhook_dask.execution import aggregate_objects, call_class
from skyhook_dask.expr import Call, Column, Literal
from skyhook_dask.generate import generate_nanoaod
from skyhook_dask.ingest import IngestOptions, ingest_file, new_ingest_id, publish, write_dataset
from skyhook_dask.lock_owner import holder_is_dead, owner_record
from skyhook_dask.objects import write_object
from skyhook_dask.protocol import Aggregate, ScanRequest, decode_result
from skyhook_dask.query import Query, parse_query
from skyhook_dask.querying import plan_file, query_file
from skyhook_dask.retry import RetryPolicy, call_with_retries
from skyhook_dask.verify import verify_dataset
from skyhook_dask.writer import dataset_lock

SLOW_ENABLED = os.environ.get("SKYHOOK_SLOW_TESTS") == "1"
slow = pytest.mark.slow
needs_slow = pytest.mark.skipif(not SLOW_ENABLED, reason="soak test: set SKYHOOK_SLOW_TESTS=1")
FORK = multiprocessing.get_context("fork")
SMALL_OBJECTS = 30_000  # bytes per object: several objects even for small files


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("reliability")
    return [generate_nanoaod(folder / f"r{i}.root", 400, seed=70 + i) for i in range(2)]


# --- fuzzing the query parser ------------------------------------------------------------------

HOSTILE = [
    "select", "project", "and", "or", "not", "&&", "||", "!", "(", ")", ",", "<", "<=", "==",
    "!=", "+", "-", "*", "/", ".", ";", "`", "``", "x", "Events;1.nMuon", "`a b`", "1", "2.5",
    ".5", "1e308", "1e309", "-0", "18446744073709551615", "18446744073709551616", "any(",
    "abs(", "len(", "sum(", "count", "__import__", "('os')", "os.system", "eval(", "lambda",
    ":", "[", "]", "{", "}", "'", '"', "\\", "\x00", "\n", "\t", "$", "%", "^", "~", "@", "²",
    "٣", "é", "\u200b", "\ud800", "ß", "İ", "ﬁ",
]  # fmt: skip
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=200)
TOKEN_SOUP = st.builds(
    lambda tokens, separator: separator.join(tokens),
    st.lists(st.sampled_from(HOSTILE), max_size=40),
    st.sampled_from([" ", "", ","]),
)
NESTING = st.builds(
    lambda opener, depth, closer: opener * depth + "x" + closer * depth,
    st.sampled_from(["select (", "select not ", "select -", "select abs(", "select any(", "(("]),
    st.integers(0, 400),
    st.sampled_from([")", "", "))"]),
)
QUERY_TEXT = st.one_of(ANY_TEXT, TOKEN_SOUP, NESTING)


def assert_parses_or_fails_cleanly(text: str) -> None:
    """A Query that re-parses equal from its rendering, or a QuerySyntaxError with a position."""
    try:
        query = parse_query(text)
    except QuerySyntaxError as error:
        assert error.position is None or 0 <= error.position <= len(text)
        return
    assert isinstance(query, Query)
    assert parse_query(str(query)) == query


# A per-example deadline catches inputs that make the parser crawl (a hang would never end).
FUZZ_SETTINGS = {
    "deadline": timedelta(seconds=2),
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "database": None,
}


@settings(max_examples=600, **FUZZ_SETTINGS)
@given(QUERY_TEXT)
def test_parser_fuzz(text: str) -> None:
    assert_parses_or_fails_cleanly(text)


@slow
@needs_slow
@pytest.mark.parametrize("strategy", [ANY_TEXT, TOKEN_SOUP, NESTING], ids=["text", "soup", "nest"])
def test_parser_fuzz_soak(strategy: st.SearchStrategy[str]) -> None:
    """10 000 examples of each kind of input (30 000 in all)."""

    @settings(max_examples=10_000, **FUZZ_SETTINGS)
    @given(strategy)
    def check(text: str) -> None:
        assert_parses_or_fails_cleanly(text)

    check()


# --- corrupt and truncated objects -------------------------------------------------------------


class NoClassStore(MemoryStore):
    """A store without the object class: queries take the client-side fallback path."""

    def exec(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        raise ClassNotAvailableError(f"no object class in {self.url}")


def _sample_table(rows: int = 60) -> pa.Table:
    rng = np.random.default_rng(5)
    counts = rng.poisson(2, rows)
    values = pa.array(rng.normal(30, 10, counts.sum()).astype(np.float32))
    return pa.table(
        {
            "event_id": pa.array(np.arange(rows), pa.int64()),
            "nMuon": pa.array(counts.astype(np.int32)),
            "MET_pt": pa.array(rng.exponential(25, rows)),
            "Muon_pt": pa.LargeListArray.from_arrays(np.r_[0, np.cumsum(counts)], values),
        }
    )


def _corrupt(good: bytes, rng: random.Random) -> bytes:
    """Truncated at a random point, or 1 to 4 random bits flipped."""
    if rng.random() < 0.3:
        return good[: rng.randrange(len(good))]
    data = bytearray(good)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


REQUESTS = {
    "scan": ScanRequest(
        ("event_id", "Muon_pt"),
        Call("any", (Call("greater", (Column("Muon_pt"), Literal(20.0, "float"))),)),
    ),
    "aggregate": ScanRequest(
        aggregates=(Aggregate("sum", Column("MET_pt")), Aggregate("max", Column("Muon_pt")))
    ),
}


def _check_corruptions(count: int, seed: int) -> dict[str, int]:
    """Scan corrupted copies in the store (Python class) and through the client-side fallback:
    each call returns a result or raises a typed error; a format error names the object."""
    rng = random.Random(seed)
    goods = [write_object(_sample_table(), compression) for compression in (None, "lz4", "zstd")]
    stores = [MemoryStore(f"corrupt-{uuid.uuid4().hex}"), NoClassStore(f"nc-{uuid.uuid4().hex}")]
    outcomes: dict[str, int] = {}
    for i in range(count):
        data = _corrupt(goods[i % len(goods)], rng)
        name = f"ds/data/x/f0000-t000-{i:06d}"
        for store in stores:
            store.write(name, data)
            for method, request in REQUESTS.items():
                try:
                    decode_result(call_class(store, name, method, request.encode()))
                    outcome = "ok"
                except ObjectFormatError as error:
                    assert name in str(error), error
                    outcome = "ObjectFormatError"
                except SkyhookError as error:  # e.g. a column name or type bit flipped
                    outcome = type(error).__name__
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            store.delete(name)
    return outcomes


@pytest.mark.filterwarnings("ignore::skyhook_dask.execution.ClientSideFallbackWarning")
def test_corrupt_objects_raise_named_errors() -> None:
    outcomes = _check_corruptions(300, seed=1)
    assert outcomes["ObjectFormatError"] > 300  # the corruptions did reach the decoder


@slow
@needs_slow
@pytest.mark.filterwarnings("ignore::skyhook_dask.execution.ClientSideFallbackWarning")
def test_corrupt_objects_soak() -> None:
    outcomes = _check_corruptions(20_000, seed=2)
    print(f"\n{outcomes}")


@pytest.fixture
def raw_dataset(small: list[Path]) -> Iterator[tuple[Any, Dataset]]:
    """A dataset stored without compression, so that single values can be found in its bytes."""
    store = open_store(f"memory://verify-{uuid.uuid4().hex}")
    dataset = write_dataset(store, [small[0]], "raw", object_size=SMALL_OBJECTS, compression=None)
    yield store, dataset
    close_stores(store.url)


def test_verify_catches_a_bit_flip_that_queries_cannot(raw_dataset: tuple[Any, Dataset]) -> None:
    """One flipped bit in a float of a column buffer still parses as Arrow: the query returns
    a wrong value, and only the checksum tells. verify_dataset reads objects whole and does."""
    store, dataset = raw_dataset
    assert verify_dataset(store, "raw").ok
    tree = dataset.files[0].trees["Events;1"]
    obj = tree.objects[1]
    truth = uproot.open(dataset.files[0].url)["Events"]["MET_pt"].array(library="np")
    value = truth[obj.first_event]
    data = bytearray(store.read(obj.name))
    where = data.find(struct.pack("<f", value))
    assert where > 0
    data[where + 2] ^= 0x10  # an exponent-free mantissa bit: a plausible, wrong number
    store.write(obj.name, bytes(data))
    query = f"select event_id == {obj.first_event}, project MET_pt"
    got = query_file(store.url, dataset.files[0], query).table.column("MET_pt")[0].as_py()
    assert got != value and math.isfinite(got)  # silently wrong at the query level
    report = verify_dataset(store, "raw")
    assert not report.ok and len(report.errors) == 1
    error = report.errors[0]
    assert isinstance(error, ChecksumError) and error.name == obj.name
    assert obj.name in str(error) and obj.checksum in str(error)
    with pytest.raises(ChecksumError, match=obj.name):
        report.raise_first()


def test_verify_names_missing_truncated_swapped_and_stray_objects(
    raw_dataset: tuple[Any, Dataset],
) -> None:
    store, dataset = raw_dataset
    objects = dataset.files[0].trees["Events;1"].objects
    assert len(objects) >= 4
    store.delete(objects[0].name)
    store.write(objects[1].name, store.read(objects[1].name)[:-100])
    store.write(objects[2].name, store.read(objects[3].name))  # valid Arrow, wrong object
    stray = mf.data_prefix("raw", "20000101T000000Z-00000000") + "f0000-t000-000000"
    store.write(stray, b"left over")
    report = verify_dataset(store, "raw")
    kinds = [(type(e), e.name) for e in report.errors]  # type: ignore[attr-defined]
    assert kinds == [
        (ObjectNotFoundError, objects[0].name),
        (ChecksumError, objects[1].name),
        (ChecksumError, objects[2].name),
    ]
    every = [o for _, _, o in dataset.objects()]
    assert report.objects == len(every) and report.unreferenced == [stray]
    assert report.bytes == sum(o.bytes for o in every if o not in objects[:3])
    assert objects[0].name in str(report)


# --- retries -----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _flaky(failures: int, cost: float, clock: FakeClock) -> Callable[[], str]:
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        clock.now += cost
        if calls["n"] <= failures:
            raise StoreUnavailableError(f"OSD restarting (call {calls['n']})")
        return f"done after {calls['n']} calls"

    return operation


def test_retries_back_off_and_succeed() -> None:
    clock = FakeClock()
    policy = RetryPolicy(budget=30, first_delay=0.1, max_delay=1.0, jitter=0)
    result = call_with_retries(
        _flaky(6, 0.5, clock), "read", policy, clock=lambda: clock.now, sleep=clock.sleep
    )
    assert result == "done after 7 calls"
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_retries_stop_at_the_budget_with_a_clear_error() -> None:
    clock = FakeClock()
    policy = RetryPolicy(budget=10, first_delay=0.5, max_delay=2, jitter=0)
    with pytest.raises(StoreUnavailableError) as raised:
        call_with_retries(
            _flaky(10**6, 1.0, clock), "skyhook.scan on object 'd/o'", policy,
            clock=lambda: clock.now, sleep=clock.sleep,
        )  # fmt: skip
    message = str(raised.value)
    assert "skyhook.scan on object 'd/o'" in message and "retry-time = 10 s" in message
    assert "OSD restarting" in message and isinstance(raised.value.__cause__, SkyhookError)
    # No attempt started after the budget: the last one ended at most one call later.
    assert clock.now <= 10 + 1.0
    assert f"over {len(clock.sleeps) + 1} attempts" in message


@pytest.mark.parametrize(
    "error", [ObjectNotFoundError("s", "o"), QueryError("bad"), ChecksumError("o", "a", "b")]
)
def test_only_unavailability_is_retried(error: Exception) -> None:
    calls: list[int] = []

    def operation() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        call_with_retries(operation, "x", RetryPolicy(budget=60), sleep=lambda _: None)
    assert calls == [1]


class FlakyStore(MemoryStore):
    """Its next ``failures`` class calls fail as if the OSD were restarting."""

    failures = 0

    def exec(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError(f"{self.url} is restarting")
        return super().exec(name, cls, method, payload)


def test_class_calls_retry_within_skyhook_retry_time() -> None:
    store = FlakyStore(f"flaky-{uuid.uuid4().hex}")
    table = _sample_table()
    store.write("d/o", write_object(table))
    payload = REQUESTS["scan"].encode()
    expected = decode_result(store.exec("d/o", "skyhook", "scan", payload))[0]
    assert expected.num_rows > 0
    store.failures = 3
    assert decode_result(call_class(store, "d/o", "scan", payload))[0].equals(expected)
    store.failures = 3
    with (
        dask.config.set({"skyhook.retry-time": 0}),
        pytest.raises(StoreUnavailableError, match="restarting"),
    ):
        call_class(store, "d/o", "scan", payload)


# --- ingest killed at any point ----------------------------------------------------------------


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
    assert sorted(store.list("k/data/")) == sorted(o.name for _, _, o in again.objects())
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


# --- concurrent writers of one dataset ---------------------------------------------------------


def _assert_one_ingest(store: Any, name: str, winners: list[str]) -> None:
    """The published manifest is one writer's, whole: every object its own, present, intact."""
    dataset = load_dataset(store, name)
    assert dataset.ingest_id in winners
    assert {f.ingest_id for f in dataset.files} == {dataset.ingest_id}
    prefix = mf.data_prefix(name, dataset.ingest_id)
    assert all(obj.name.startswith(prefix) for _, _, obj in dataset.objects())
    assert verify_dataset(store, name).ok


def _race(store_url: str, sources: list[list[str]], overwrite: bool) -> list[Any]:
    """Ingest each source list as dataset "same" from its own thread, started together."""
    barrier = threading.Barrier(len(sources))

    def ingest(files: list[str]) -> Any:
        barrier.wait()
        try:
            return write_dataset(store_url, files, "same", object_size=SMALL_OBJECTS,
                                 overwrite=overwrite).ingest_id  # fmt: skip
        except (DatasetExistsError, IngestError) as exc:
            return exc

    with ThreadPoolExecutor(len(sources)) as pool:
        return list(pool.map(ingest, sources))


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_concurrent_ingests_threads(kind: str, small: list[Path], tmp_path: Path) -> None:
    for round_no in range(3):
        url = (
            f"memory://race-{uuid.uuid4().hex}" if kind == "memory"
            else (tmp_path / f"round{round_no}").as_uri()
        )  # fmt: skip
        outcomes = _race(url, [[str(small[0])], [str(small[1])]], overwrite=False)
        winners = [o for o in outcomes if isinstance(o, str)]
        assert len(winners) == 1, outcomes
        assert isinstance(next(o for o in outcomes if not isinstance(o, str)), DatasetExistsError)
        _assert_one_ingest(open_store(url), "same", winners)
        store = open_store(url)
        assert [f.name for f in load_dataset(store, "same").files] in (
            [small[0].name], [small[1].name]
        )  # fmt: skip
        # The loser's objects are gone (it removed them, or the winner collected them).
        referenced = {o.name for _, _, o in load_dataset(store, "same").objects()}
        assert set(store.list("same/data/")) == referenced
        close_stores(url)


def test_concurrent_replacing_ingests_never_mix(small: list[Path]) -> None:
    """With overwrite=True both may succeed one after the other, or one finds its objects
    collected by the other's publish (IngestError): the manifest is always one writer's."""
    for _ in range(3):
        url = f"memory://replace-{uuid.uuid4().hex}"
        outcomes = _race(url, [[str(small[0])], [str(small[1])]], overwrite=True)
        winners = [o for o in outcomes if isinstance(o, str)]
        assert winners and all(isinstance(o, str | IngestError) for o in outcomes), outcomes
        _assert_one_ingest(open_store(url), "same", winners)
        close_stores(url)


def test_concurrent_publishes_one_wins(small: list[Path]) -> None:
    """Both ingests wrote every object before either published: exactly one publish wins."""
    store = open_store(f"memory://publish-{uuid.uuid4().hex}")
    options = IngestOptions(object_size=SMALL_OBJECTS)
    ids = [new_ingest_id() + f"-{i}" for i in range(2)]
    entries = [[ingest_file(store, str(small[i]), "same", ids[i], 0, options)] for i in range(2)]
    barrier = threading.Barrier(2)

    def go(i: int) -> str | Exception:
        barrier.wait()
        try:
            return publish(store, "same", entries[i], ids[i]).ingest_id
        except DatasetExistsError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(go, range(2)))
    winners = [o for o in outcomes if isinstance(o, str)]
    assert len(winners) == 1, outcomes
    _assert_one_ingest(store, "same", winners)
    assert set(store.list("same/data/")) == {
        o.name for _, _, o in load_dataset(store, "same").objects()
    }
    close_stores(store.url)


def _ingest_in_child(url: str, source: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        ingest_id = write_dataset(url, [source], "same", object_size=SMALL_OBJECTS).ingest_id
        results.put(("ok", ingest_id))
    except (DatasetExistsError, IngestError) as exc:
        results.put((type(exc).__name__, str(exc)))
    except BaseException as exc:  # reported, so the parent fails with the reason
        results.put(("unexpected", repr(exc)))


def test_concurrent_ingests_processes(small: list[Path], tmp_path: Path) -> None:
    url = tmp_path.as_uri()
    barrier, results = FORK.Barrier(2), FORK.Queue()
    children = [
        FORK.Process(target=_ingest_in_child, args=(url, str(path), barrier, results))
        for path in small
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(30)
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["DatasetExistsError", "ok"], outcomes
    winner = next(detail for kind, detail in outcomes if kind == "ok")
    store = open_store(url)
    _assert_one_ingest(store, "same", [winner])
    assert list_datasets(store) == ["same"]
    close_stores(url)


# --- many clients at once ----------------------------------------------------------------------

LOAD_QUERIES = [
    "project event_id MET_pt",
    "select nMuon >= 2, project event_id Muon_pt Muon_eta",
    "select any(Muon_pt > 25) and MET_pt > 20, project event_id nMuon Muon_pt",
    "select count(Jet_pt > 30) >= 2 or MET_pt > 60, project Jet_pt",
    "select all(abs(Electron_eta) < 1.5) and len(Electron_pt) >= 1, project Electron_pt",
    "select sum(Jet_pt) > 2 * MET_pt, project event_id",
]
AGGREGATE_PREDICATES = ["select nMuon >= 1", "select any(Jet_pt > 40)"]


def _aggregate_request(file: Any, text: str) -> ScanRequest:
    predicate = plan_file(file, text).bound.predicate
    aggregates = (
        Aggregate("count"),
        Aggregate("sum", Column("MET_pt")),
        Aggregate("max", Column("Muon_pt")),
        Aggregate("mean", Column("Jet_pt")),
    )
    return ScanRequest(predicate=predicate, aggregates=aggregates)


def _workload(url: str, file: Any) -> list[Callable[[], Any]]:
    names = [o.name for o in file.trees["Events;1"].objects]
    jobs: list[Callable[[], Any]] = [
        lambda q=q: query_file(url, file, q).table for q in LOAD_QUERIES
    ]
    jobs += [
        lambda p=p: aggregate_objects(url, names, _aggregate_request(file, p))[0]
        for p in AGGREGATE_PREDICATES
    ]
    return jobs


def _run_load(url: str, file: Any, clients: int, per_client: int) -> tuple[float, list[float]]:
    jobs = _workload(url, file)
    expected = [job() for job in jobs]  # one client alone
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(per_client):
            index = (k + i) % len(jobs)
            began = time.perf_counter()
            try:
                got = jobs[index]()
                if isinstance(got, pa.Table):
                    assert got.equals(expected[index]), LOAD_QUERIES[index]
                else:
                    assert got == expected[index]
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                continue
            with lock:
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - began
    assert errors == [], errors[:3]
    assert len(latencies) == clients * per_client
    return elapsed, latencies


def _report(label: str, elapsed: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    print(
        f"\n{label}: {len(latencies)} queries in {elapsed:.2f} s = "
        f"{len(latencies) / elapsed:.1f} queries/s; latency p50 "
        f"{statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


@pytest.fixture(scope="module")
def load_file(ceph_cluster: Any, small: list[Path]) -> Any:
    name = f"load-{uuid.uuid4().hex[:8]}"
    dataset = write_dataset(ceph_cluster.url, [str(small[0])], name, object_size=60_000)
    file = dataset.files[0]
    # Ground truth for one aggregate, straight from the ROOT file.
    events = uproot.open(small[0])["Events"].arrays(["nMuon", "MET_pt"])
    total = aggregate_objects(
        ceph_cluster.url,
        [o.name for o in file.trees["Events;1"].objects],
        _aggregate_request(file, "select nMuon >= 1"),
    )[0]
    mask = events.nMuon >= 1
    assert total[0] == int(ak.sum(mask))
    assert total[1] == pytest.approx(float(ak.sum(events.MET_pt[mask])), rel=1e-5)
    return file


@pytest.mark.ceph
def test_eight_concurrent_clients(ceph_cluster: Any, load_file: Any) -> None:
    assert len(load_file.trees["Events;1"].objects) >= 3
    elapsed, latencies = _run_load(ceph_cluster.url, load_file, clients=8, per_client=50)
    _report("8 clients x 50 queries", elapsed, latencies)


@pytest.mark.ceph
@slow
@needs_slow
def test_concurrent_clients_soak(ceph_cluster: Any, load_file: Any) -> None:
    elapsed, latencies = _run_load(ceph_cluster.url, load_file, clients=16, per_client=300)
    _report("16 clients x 300 queries", elapsed, latencies)
