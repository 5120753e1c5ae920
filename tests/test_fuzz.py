"""Fuzzed input never breaks the query parser or the object readers: any text parses to a
query or raises QuerySyntaxError with a position; a corrupt or truncated object raises a
typed error naming it; verify_dataset finds what queries cannot (a flipped bit) and names
missing, truncated, swapped and stray objects.

Soak variants are marked ``slow``; reliability_support.py says how to run them.
"""

from __future__ import annotations

import math
import random
import struct
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_support import query_file
from reliability_support import SAMPLE_PAYLOADS, SMALL_OBJECTS, needs_slow, sample_table, slow
from reliability_support import small as small  # a module-scoped fixture

from skyhook_dask.catalog.model import Dataset
from skyhook_dask.catalog.verify import verify_dataset
from skyhook_dask.exceptions import (
    ChecksumError,
    ClassNotAvailableError,
    ObjectFormatError,
    ObjectNotFoundError,
    QuerySyntaxError,
    SkyhookError,
)
from skyhook_dask.formats import manifest as mf
from skyhook_dask.formats.objects import write_object
from skyhook_dask.formats.protocol import decode_result
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.query.parser import Query, parse_query
from skyhook_dask.runtime.calls import call_class
from skyhook_dask.storage import close_stores, open_store
from skyhook_dask.storage.memory import MemoryStore

# --- fuzzing the query parser ------------------------------------------------------------------

HOSTILE = [
    "select", "project", "and", "or", "not", "&&", "||", "!", "(", ")", ",", "<", "<=", "==",
    "!=", "+", "-", "*", "/", ".", ";", "`", "``", "x", "Events;1.nMuon", "`a b`", "1", "2.5",
    ".5", "1e308", "1e309", "-0", "18446744073709551615", "18446744073709551616", "any(",
    "abs(", "len(", "sum(", "count", "**", "sqrt(", "log(", "atan2(", "hypot(", "__import__",
    "('os')", "os.system", "eval(", "lambda", "as", "AS", "as y", "x[0]", "x[x > 1]",
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


def _corrupt(good: bytes, rng: random.Random) -> bytes:
    """Truncated at a random point, or 1 to 4 random bits flipped."""
    if rng.random() < 0.3:
        return good[: rng.randrange(len(good))]
    data = bytearray(good)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _check_corruptions(count: int, seed: int) -> dict[str, int]:
    """Scan corrupted copies in the store (Python class) and through the client-side fallback:
    each call returns a result or raises a typed error; a format error names the object."""
    rng = random.Random(seed)
    goods = [write_object(sample_table(), compression) for compression in (None, "lz4", "zstd")]
    stores = [MemoryStore(f"corrupt-{uuid.uuid4().hex}"), NoClassStore(f"nc-{uuid.uuid4().hex}")]
    outcomes: dict[str, int] = {}
    for i in range(count):
        data = _corrupt(goods[i % len(goods)], rng)
        name = f"ds/data/x/f0000-t000-{i:06d}"
        for store in stores:
            store.write(name, data)
            for method, payload in SAMPLE_PAYLOADS.items():
                try:
                    decode_result(call_class(store, name, method, payload))
                    outcome = "ok"
                except ObjectFormatError as error:
                    assert name in str(error), error
                    outcome = "ObjectFormatError"
                except SkyhookError as error:  # e.g. a column name or type bit flipped
                    outcome = type(error).__name__
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            store.delete(name)
    return outcomes


@pytest.mark.filterwarnings("ignore::skyhook_dask.runtime.calls.ClientSideFallbackWarning")
def test_corrupt_objects_raise_named_errors() -> None:
    outcomes = _check_corruptions(300, seed=1)
    assert outcomes["ObjectFormatError"] > 300  # the corruptions did reach the decoder


@slow
@needs_slow
@pytest.mark.filterwarnings("ignore::skyhook_dask.runtime.calls.ClientSideFallbackWarning")
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
    stats = [t.object_stats for f in dataset.files for t in f.trees.values() if t.object_stats]
    first_stats = stats[0]["name"]
    store.write(first_stats, store.read(first_stats)[:-1])  # the statistics are checked too
    report = verify_dataset(store, "raw")
    kinds = [(type(e), e.name) for e in report.errors]  # type: ignore[attr-defined]
    assert kinds == [
        (ObjectNotFoundError, objects[0].name),
        (ChecksumError, objects[1].name),
        (ChecksumError, objects[2].name),
        (ChecksumError, first_stats),
    ]
    every = [o for _, _, o in dataset.objects()]
    assert report.objects == len(every) + len(stats) and report.unreferenced == [stray]
    intact = sum(o.bytes for o in every if o not in objects[:3])
    assert report.bytes == intact + sum(s["bytes"] for s in stats[1:])
    assert objects[0].name in str(report)
