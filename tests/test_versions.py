"""Datasets that grow: appends publish numbered versions, older versions read back exactly,
a file already in a dataset is refused, concurrent appenders all land (processes, on the file
store and on Ceph), and garbage collection keeps every listed version's objects."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import uproot
from ingest_support import assert_matches_root

from skyhook_dask.catalog import list_versions, load_dataset
from skyhook_dask.catalog.verify import verify_dataset
from skyhook_dask.cli import main
from skyhook_dask.exceptions import (
    DatasetExistsError,
    DatasetVersionNotFoundError,
    DuplicateFileError,
)
from skyhook_dask.formats import manifest as mf
from skyhook_dask.ingest import commit as commit_module
from skyhook_dask.ingest.commit import collect_garbage, commit, ingest_under_way, publish
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.ingest.pipeline import IngestOptions, ingest_file, new_ingest_id, write_dataset
from skyhook_dask.storage import open_store

SIZE = 40_000  # bytes per object: two or three objects per file
SPAWN = multiprocessing.get_context("spawn")  # children open their own Ceph connection


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five small files, as five runs arriving one after another (each its own ROOT UUID)."""
    folder = tmp_path_factory.mktemp("runs")
    return [
        generate_nanoaod(folder / f"run{i}.root", 300, seed=40 + i, n_extra_branches=2)
        for i in range(5)
    ]


def _objects(store: Any, name: str) -> set[str]:
    return set(store.list(mf.data_prefix(name)))


def test_appends_publish_versions_and_old_versions_read_back(
    store: Any, prefix: str, runs: list[Path]
) -> None:
    name = f"{prefix}-grow"
    first = write_dataset(store, runs[0], name, object_size=SIZE)
    assert (first.version, [f.file_no for f in first.files]) == (1, [0])
    second = write_dataset(store, runs[1:3], name, object_size=SIZE, mode="append")
    assert second.version == 2
    assert [f.name for f in second.files] == [p.name for p in runs[:3]]
    assert [f.file_no for f in second.files] == [0, 1, 2]
    assert second.files[0].getAttributes() == first.files[0].getAttributes()
    for path in runs[:3]:
        assert_matches_root(store, second, path, stats=False)

    old = load_dataset(store, name, version=1)
    assert (old.version, [f.name for f in old.files]) == (1, [runs[0].name])
    assert old.manifest == first.manifest
    assert collect_garbage(store, name) == []  # version 1's objects are version 2's too
    assert_matches_root(store, old, runs[0], stats=False)
    assert verify_dataset(store, name).ok

    versions = list_versions(store, name)
    assert [(v.version, v.files, v.current) for v in versions] == [(1, 1, False), (2, 3, True)]
    entries = [uproot.open(p)["Events"].num_entries for p in runs[:3]]
    assert [v.entries["Events;1"] for v in versions] == [entries[0], sum(entries)]
    assert versions[1].stored_bytes == second.getSize()
    with pytest.raises(DatasetVersionNotFoundError, match=r"no version 7; .* kept are: 1, 2"):
        load_dataset(store, name, version=7)


def test_a_file_already_in_the_dataset_is_refused_unless_allowed(
    store: Any, prefix: str, runs: list[Path]
) -> None:
    name = f"{prefix}-dup"
    write_dataset(store, runs[:2], name, object_size=SIZE)
    before = _objects(store, name)
    with pytest.raises(DuplicateFileError, match=rf"{runs[1].name} is already in dataset"):
        write_dataset(store, [runs[2], runs[1]], name, mode="append", object_size=SIZE)
    assert _objects(store, name) == before  # refused before any object was written
    assert load_dataset(store, name).version == 1
    with pytest.raises(DuplicateFileError, match="allow_duplicates"):
        write_dataset(store, [runs[3], runs[3]], name, mode="append", object_size=SIZE)
    assert _objects(store, name) == before  # the same file twice in one append: refused
    again = write_dataset(
        store, runs[1], name, mode="append", allow_duplicates=True, object_size=SIZE
    )
    assert (again.version, len(again.files)) == (2, 3)
    assert again.files[1].uuid == again.files[2].uuid


def test_overwrite_starts_a_new_history_and_append_creates(
    store: Any, prefix: str, runs: list[Path]
) -> None:
    name = f"{prefix}-hist"
    created = write_dataset(store, runs[0], name, mode="append", object_size=SIZE)
    assert created.version == 1  # appending to a dataset that does not exist creates it
    write_dataset(store, runs[1], name, mode="append", object_size=SIZE)
    replaced = write_dataset(store, runs[2], name, overwrite=True, object_size=SIZE)
    assert replaced.version == 3  # numbers go on: a pinned number never changes meaning
    assert [v.version for v in list_versions(store, name)] == [3]
    assert _objects(store, name) == mf.referenced_objects(replaced.manifest)
    assert not list(store.list(mf.versions_prefix(name)))[:-1]  # earlier records removed
    with pytest.raises(DatasetVersionNotFoundError, match="kept are: 3"):
        load_dataset(store, name, version=2)
    with pytest.raises(DatasetExistsError, match="mode='append'"):
        write_dataset(store, runs[3], name)
    with pytest.raises(ValueError, match="contradicts"):
        write_dataset(store, runs[3], name, overwrite=True, mode="append")


def test_a_manifest_from_before_versions_gets_version_one(
    store: Any, prefix: str, runs: list[Path]
) -> None:
    name = f"{prefix}-old"
    dataset = write_dataset(store, runs[0], name, object_size=SIZE)
    legacy = {k: v for k, v in dataset.manifest.items() if k not in ("dataset_version",
                                                                     "history_start")}  # fmt: skip
    store.write(mf.manifest_name(name), mf.dumps(legacy))
    store.delete(mf.version_name(name, 1))
    assert load_dataset(store, name).version == 1
    write_dataset(store, runs[1], name, mode="append", object_size=SIZE)
    assert [f.name for f in load_dataset(store, name, version=1).files] == [runs[0].name]


def _append_in_child(url: str, name: str, source: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        version = write_dataset(url, source, name, mode="append", object_size=SIZE).version
        results.put(("ok", source, version))
    except BaseException as exc:  # reported, so the parent fails with the reason
        results.put(("error", source, repr(exc)))


@pytest.mark.parametrize("kind", ["file", "rados"])
def test_concurrent_appenders_all_land_and_readers_see_whole_versions(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, prefix: str, runs: list[Path]
) -> None:
    url = (
        tmp_path.as_uri() if kind == "file"
        else request.getfixturevalue("ceph_cluster").url  # type: ignore[attr-defined]
    )  # fmt: skip
    store, name = open_store(url), f"{prefix}-many"
    write_dataset(store, runs[0], name, object_size=SIZE)
    appended = [str(p) for p in runs[1:]]
    barrier, results = SPAWN.Barrier(len(appended)), SPAWN.Queue()
    children = [
        SPAWN.Process(target=_append_in_child, args=(url, name, source, barrier, results))
        for source in appended
    ]
    for child in children:
        child.start()
    seen: dict[int, list[str]] = {}
    problems: list[str] = []
    stop = threading.Event()

    def read_while_appending() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            dataset = load_dataset(store, name)
            names = [f.name for f in dataset.files]
            if len(names) != dataset.version:  # one file per version, never a mix
                problems.append(f"version {dataset.version} holds {names}")
            missing = [o.name for _, _, o in dataset.objects() if not store.exists(o.name)]
            if missing:
                problems.append(f"version {dataset.version} misses {missing}")
            seen[dataset.version] = names

    reader = threading.Thread(target=read_while_appending)
    reader.start()
    try:
        outcomes = [results.get(timeout=120) for _ in children]
    finally:
        stop.set()
        reader.join(30)
        for child in children:
            child.join(30)
    assert all(kind == "ok" for kind, *_ in outcomes), outcomes
    assert not problems, problems
    assert sorted(version for *_, version in outcomes) == [2, 3, 4, 5]
    final = load_dataset(store, name)
    assert final.version == 5 and len(seen) >= 1
    assert sorted(f.name for f in final.files) == sorted(p.name for p in runs)
    assert [f.file_no for f in final.files] == [0, 1, 2, 3, 4]
    for number in range(1, 6):
        names = [f.name for f in load_dataset(store, name, version=number).files]
        assert names == [f.name for f in final.files][:number]
        assert seen.get(number, names) == names  # what a reader saw is that version
    assert _objects(store, name) == mf.referenced_objects(final.manifest)
    for path in runs:
        assert_matches_root(store, final, path, stats=False)


def test_the_version_record_is_a_compare_and_swap(
    store: Any, prefix: str, runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers whose locks both seem held (one was taken over as stale) build the same
    version: one creates its record, the other builds again on top of it; neither is lost."""
    name = f"{prefix}-cas"
    write_dataset(store, runs[0], name, object_size=SIZE)
    options = IngestOptions(object_size=SIZE)
    ids = [new_ingest_id() + f"-{i}" for i in range(2)]
    entries = [ingest_file(store, str(runs[1 + i]), name, ids[i], 0, options) for i in range(2)]
    monkeypatch.setattr(commit_module, "dataset_lock", lambda *a, **k: nullcontext())
    barrier, attempts = threading.Barrier(2), [0, 0]

    def go(i: int) -> int:
        def change(current: dict[str, Any] | None) -> dict[str, Any]:
            assert current is not None
            attempts[i] += 1
            if attempts[i] == 1:
                barrier.wait()  # both read version 1 before either publishes
            current["files"].append({**entries[i], "file_no": len(current["files"])})
            return current

        return commit(store, name, change, append=True)["dataset_version"]

    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(go(i))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [2, 3] and sorted(attempts) == [1, 2]
    final = load_dataset(store, name)
    assert sorted(f.name for f in final.files) == sorted(p.name for p in runs[:3])


def test_a_record_a_killed_writer_left_is_rolled_forward(
    store: Any, prefix: str, runs: list[Path]
) -> None:
    name = f"{prefix}-roll"
    dataset = write_dataset(store, runs[0], name, object_size=SIZE)
    ingest_id = new_ingest_id()
    entry = ingest_file(store, str(runs[1]), name, ingest_id, 1, IngestOptions(SIZE))
    # killed after creating version 2's record, before replacing the head
    orphan = {**dataset.manifest, "dataset_version": 2, "files": [*dataset.manifest["files"],
                                                                   entry]}  # fmt: skip
    store.write(mf.version_name(name, 2), mf.dumps(orphan))
    assert load_dataset(store, name).version == 1  # readers see the head
    grown = write_dataset(store, runs[2], name, mode="append", object_size=SIZE)
    assert grown.version == 3
    assert [f.name for f in grown.files] == [p.name for p in runs[:3]]
    # a record whose objects are gone (its writer failed and removed them) is dropped
    failed_id = new_ingest_id()
    failed = ingest_file(store, str(runs[3]), name, failed_id, 3, IngestOptions(SIZE))
    store.delete(failed["trees"][0]["objects"][0]["name"])
    broken = {**grown.manifest, "dataset_version": 4, "files": [*grown.manifest["files"], failed]}
    store.write(mf.version_name(name, 4), mf.dumps(broken))
    last = write_dataset(store, runs[4], name, mode="append", object_size=SIZE)
    assert last.version == 4
    assert [f.name for f in last.files] == [p.name for p in (*runs[:3], runs[4])]
    assert verify_dataset(store, name).ok


def test_objects_of_an_ingest_under_way_survive_a_concurrent_publish(
    store: Any, prefix: str, runs: list[Path]
) -> None:
    name = f"{prefix}-way"
    write_dataset(store, runs[0], name, object_size=SIZE)
    ingest_id = new_ingest_id()
    with ingest_under_way(store, name, ingest_id):
        entry = ingest_file(store, str(runs[1]), name, ingest_id, 0, IngestOptions(SIZE))
        write_dataset(store, runs[2], name, mode="append", object_size=SIZE)  # collects garbage
        published = publish(store, name, [entry], ingest_id, mode="append")
    assert [f.name for f in published.files] == [runs[0].name, runs[2].name, runs[1].name]
    assert_matches_root(store, published, runs[1], stats=False)
    # a marker whose holder is gone (here: two days old) protects nothing
    stray = new_ingest_id()
    ingest_file(store, str(runs[3]), name, stray, 0, IngestOptions(SIZE))
    old = {"time": time.time() - 3 * 24 * 3600, "host": "elsewhere", "pid": 1}
    store.write(mf.ingest_marker_name(name, stray), json.dumps(old).encode())
    removed = collect_garbage(store, name)
    assert mf.ingest_marker_name(name, stray) in removed
    assert not list(store.list(mf.data_prefix(name, stray)))


def test_command_line_appends_and_lists_versions(
    tmp_path: Path, runs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = (tmp_path / "store").as_uri()
    assert main(["ingest", "--store", url, "cli", str(runs[0])]) == 0
    assert main(["ingest", "--store", url, "cli", str(runs[1]), str(runs[2]), "--append"]) == 0
    assert "cli: 3 files" in capsys.readouterr().out
    assert main(["ingest", "--store", url, "cli", str(runs[1]), "--append"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--allow-duplicates" in err
    assert main(["ingest", "--store", url, "cli", str(runs[1]), "--append", "--overwrite"]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["ls", "--store", url, "cli", "--versions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines] == [["1", lines[0].split()[1], "1"],
                                                    ["2", lines[1].split()[1], "3"]]  # fmt: skip
    assert lines[1].endswith("(current)") and not lines[0].endswith("(current)")
    assert main(["ls", "--store", url, "cli", "--version", "1"]) == 0
    assert runs[0].name in (out := capsys.readouterr().out) and runs[1].name not in out
    assert main(["query", "--store", url, "cli", "project nMuon", "--version", "9"]) == 1
    assert "no version 9" in capsys.readouterr().err


def test_read_skyhook_reads_a_version_by_name(tmp_path: Path, runs: list[Path]) -> None:
    import skyhook_dask.dataframe as sd

    url = (tmp_path / "store").as_uri()
    write_dataset(url, runs[0], "dfv", object_size=SIZE)
    grown = write_dataset(url, runs[1], "dfv", object_size=SIZE, mode="append")
    columns = ["nMuon", "MET_pt"]
    old = sd.read_skyhook("dfv", columns, store=url, version=1).compute()
    new = sd.read_skyhook("dfv", columns, store=url).compute()
    truth = [uproot.open(p)["Events"].arrays(columns, library="np") for p in runs[:2]]
    assert old["MET_pt"].tolist() == truth[0]["MET_pt"].tolist()
    assert new["nMuon"].tolist() == [*truth[0]["nMuon"].tolist(), *truth[1]["nMuon"].tolist()]
    with pytest.raises(TypeError, match="version= goes with a dataset name"):
        sd.read_skyhook(grown, columns, version=1)
    with pytest.raises(DatasetVersionNotFoundError):
        sd.read_skyhook("dfv", columns, store=url, version=3)
