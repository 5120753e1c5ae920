"""Concurrent writers of one dataset never mix: one ingest publishes, the others fail with
a typed error, and the manifest always belongs to one ingest with all its objects.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from reliability_support import FORK, SMALL_OBJECTS
from reliability_support import small as small  # a module-scoped fixture

from skyhook_dask.catalog.model import list_datasets, load_dataset
from skyhook_dask.catalog.verify import verify_dataset
from skyhook_dask.exceptions import DatasetExistsError, IngestError
from skyhook_dask.formats import manifest as mf
from skyhook_dask.ingest.pipeline import (
    IngestOptions,
    ingest_file,
    new_ingest_id,
    publish,
    write_dataset,
)
from skyhook_dask.storage import close_stores, open_store


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
        referenced = mf.referenced_objects(load_dataset(store, "same").manifest)
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
    assert set(store.list("same/data/")) == mf.referenced_objects(
        load_dataset(store, "same").manifest
    )
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
