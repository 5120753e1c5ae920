"""Publishing datasets: overwriting, a crash before or during publishing leaves nothing visible,
ingest and publish as separate steps, garbage collection and the writer's lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ingest_support import SMALL, assert_matches_root, generated_file, memory_store, small_files

from skyhook_dask.catalog.model import Dataset, list_datasets, load_dataset
from skyhook_dask.exceptions import DatasetExistsError, DatasetNotFoundError, IngestError
from skyhook_dask.formats import manifest as mf
from skyhook_dask.ingest.lock import dataset_lock
from skyhook_dask.ingest.pipeline import (
    IngestOptions,
    collect_garbage,
    ingest_file,
    new_ingest_id,
    publish,
    write_dataset,
)

store = pytest.fixture(memory_store)
generated = pytest.fixture(scope="module")(generated_file)
small = pytest.fixture(scope="module")(small_files)


def test_existing_dataset_needs_overwrite(store: Any, small: list[Path], generated: Path) -> None:
    first = write_dataset(store, [small[0]], "ds", object_size=SMALL)
    old_objects = set(store.list("ds/data/"))
    with pytest.raises(DatasetExistsError, match="overwrite=True"):
        write_dataset(store, [generated], "ds")
    second = write_dataset(store, [generated], "ds", overwrite=True, object_size=200_000)
    assert second.ingest_id != first.ingest_id
    assert load_dataset(store, "ds").files[0].name == generated.name
    now = set(store.list("ds/data/"))
    assert not now & old_objects  # the replaced objects are gone
    assert now == mf.referenced_objects(second.manifest)
    assert_matches_root(store, second, generated, stats=False)


def test_crash_before_publish_leaves_nothing_visible(store: Any, small: list[Path]) -> None:
    path = small[0]
    ingest_id = new_ingest_id()
    entry = ingest_file(store.url, str(path), "crashy", ingest_id, 0, IngestOptions(SMALL))
    written = set(store.list("crashy/data/"))
    assert written == {n for t in entry["trees"] for n in mf.tree_object_names(t)}
    assert "crashy" not in list_datasets(store)
    with pytest.raises(DatasetNotFoundError):
        load_dataset(store, "crashy")
    # the re-run publishes, and collects the crashed attempt's objects
    dataset = write_dataset(store, [path], "crashy", object_size=SMALL)
    assert set(store.list("crashy/data/")) == mf.referenced_objects(dataset.manifest)
    assert not written & set(store.list("crashy/data/"))
    assert_matches_root(store, dataset, path, stats=False)


def test_failure_during_publish_cleans_up(
    store: Any, small: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyhook_dask.ingest import pipeline as ingest

    def broken_publish(*args: Any, **kwargs: Any) -> Dataset:
        raise RuntimeError("power cut")

    monkeypatch.setattr(ingest, "publish", broken_publish)
    with pytest.raises(RuntimeError, match="power cut"):
        write_dataset(store, small, "cut", object_size=SMALL)
    assert list(store.list("cut/")) == []
    monkeypatch.undo()
    assert len(write_dataset(store, small, "cut").files) == 3


def test_decomposed_ingest_and_publish(store: Any, small: list[Path]) -> None:
    ingest_id = new_ingest_id()
    options = IngestOptions(object_size=SMALL, compression=None)
    entries = [
        ingest_file(store, str(path), "parts", ingest_id, number, options)
        for number, path in reversed(list(enumerate(small)))
    ]
    dataset = publish(store.url, "parts", entries, ingest_id)
    assert [f.name for f in dataset.files] == [p.name for p in small]
    for path in small:
        assert_matches_root(store, dataset, path, stats=False)
    with pytest.raises(DatasetExistsError):
        publish(store, "parts", entries, ingest_id)
    with pytest.raises(IngestError, match="repeat a file_no"):
        publish(store, "parts", entries + entries[:1], ingest_id, overwrite=True)


def test_publish_refuses_vanished_objects(store: Any, small: list[Path]) -> None:
    ingest_id = new_ingest_id()
    entry = ingest_file(store, str(small[0]), "gone", ingest_id, 0)
    store.delete(entry["trees"][0]["objects"][0]["name"])
    with pytest.raises(IngestError, match="vanished"):
        publish(store, "gone", [entry], ingest_id)
    assert "gone" not in list_datasets(store)


def test_collect_garbage(store: Any, small: list[Path]) -> None:
    dataset = write_dataset(store, [small[0]], "gc")
    stray = "gc/data/20000101T000000Z-00000000/f0000-t000-000000"
    store.write(stray, b"left over")
    assert collect_garbage(store, "gc") == [stray]
    assert set(store.list("gc/data/")) == mf.referenced_objects(dataset.manifest)


def test_dataset_lock_waits_and_breaks_stale_locks(store: Any) -> None:
    with (
        dataset_lock(store, "locked"),
        pytest.raises(DatasetExistsError, match="another writer"),
        dataset_lock(store, "locked", timeout=0.05),
    ):
        pass
    assert not store.exists("locked/manifest.lock")
    stale = {"token": "x", "time": 0.0, "host": "gone", "pid": 1}
    store.write("locked/manifest.lock", json.dumps(stale).encode())
    with dataset_lock(store, "locked", timeout=0.05):
        assert json.loads(store.read("locked/manifest.lock"))["token"] != "x"
