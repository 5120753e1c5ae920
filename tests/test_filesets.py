"""coffea filesets: ingested with one call (one dataset per entry, its metadata kept), then run
by the coffea executor with the very fileset coffea's Runner takes -- the same output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea_processors import DimuonProcessor, chunk_metadata

from skyhook_dask import SkyhookDM
from skyhook_dask import coffea as skyhook_coffea
from skyhook_dask.catalog.model import list_datasets
from skyhook_dask.cli import main
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import DatasetExistsError, IngestError, InvalidNameError

DY, DIMUON = str(sample_path("nano_dy.root")), str(sample_path("nano_dimuon.root"))
OBJECT_SIZE = 100_000  # several objects per file


def coffea_fileset(prefix: str) -> dict[str, Any]:
    """Both of coffea's forms: files with their tree and metadata, and a plain list."""
    return {
        f"{prefix}-DY": {"files": {DY: "Events"}, "metadata": {"xsec": 5765.4, "is_mc": True}},
        f"{prefix}-Data": [DIMUON],
    }


def runner(fileset: dict[str, Any], processor_instance: Any) -> Any:
    run = processor.Runner(processor.IterativeExecutor(status=False), schema=NanoAODSchema)
    return run(fileset, treename="Events", processor_instance=processor_instance)


def test_a_fileset_ingests_and_runs_as_coffea_runs_it(store_url: str, prefix: str) -> None:
    fileset = coffea_fileset(prefix)
    sk = SkyhookDM().connect(store=store_url, dask=False)
    written = sk.writeFileset(fileset, object_size=OBJECT_SIZE)
    assert list(written) == list(fileset)
    dy = sk.getDataset(f"{prefix}-DY")
    assert dy.metadata == {"xsec": 5765.4, "is_mc": True}
    assert [f.name for f in dy.files] == ["nano_dy.root"]
    assert sk.getDataset(f"{prefix}-Data").metadata == {}
    assert len(dy.files[0].tree("Events").objects) > 1

    # The one changed line: Runner(...)(fileset) becomes skyhook_coffea.run(..., fileset).
    ours = skyhook_coffea.run(DimuonProcessor(), fileset, store=store_url)
    assert ours == runner(fileset, DimuonProcessor())
    assert set(ours["cutflow"]) == set(fileset)

    meta = skyhook_coffea.run(chunk_metadata, fileset, store=store_url)["meta"]
    by_label = {m["dataset"]: m for m in meta}
    assert by_label[f"{prefix}-DY"]["xsec"] == 5765.4  # the manifest's metadata
    assert "xsec" not in by_label[f"{prefix}-Data"]
    assert {m["filename"] for m in meta} == {DY, DIMUON}  # as the fileset names them


def test_bad_filesets_name_the_entry_and_write_nothing(tmp_path: Path) -> None:
    url = (tmp_path / "store").as_uri()
    sk = SkyhookDM().connect(store=url, dask=False)
    cases = [
        ({}, "non-empty mapping"),
        ({"A": "a.root"}, "fileset entry 'A': expected a list of files"),
        ({"A": {"file": [DY]}}, r"fileset entry 'A': expected the keys 'files' \(required\)"),
        ({"A": {"files": []}}, "fileset entry 'A' has no files"),
        ({"A": {"files": {DY: "Events", DIMUON: "Runs"}}}, "'A' reads different trees"),
        ({"ok": [DY], "A": {"files": [DY], "metadata": {"t": object()}}}, "metadata of .* .A."),
        ({"ok": [DY], "bad name!": [DY]}, "dataset name 'bad name!'"),  # InvalidNameError
    ]
    for fileset, message in cases:
        with pytest.raises((IngestError, InvalidNameError), match=message):
            sk.writeFileset(fileset)
    assert list_datasets(url) == []  # nothing written by any of them
    sk.writeFileset({"B": [DY]})
    with pytest.raises(DatasetExistsError, match="dataset 'B' already exists"):
        sk.writeFileset({"A": [DY], "B": [DIMUON]})
    assert list_datasets(url) == ["B"]  # checked before A was written
    with pytest.raises(KeyError, match=r"has no file 'other\.root'"):
        skyhook_coffea.run(chunk_metadata, {"B": ["other.root"]}, store=url)


def test_command_line_ingests_a_fileset_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = (tmp_path / "store").as_uri()
    path = tmp_path / "fileset.json"
    path.write_text(json.dumps(coffea_fileset("cli")))
    assert main(["ingest", "--store", url, "--fileset", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cli-DY: 1 files" in out and "cli-Data: 1 files" in out
    assert main(["ingest", "--store", url, "--fileset", str(path)]) == 1
    assert "add --overwrite" in capsys.readouterr().err
    for argv in (["ingest", "--store", url], ["ingest", "--store", url, "x", DY, "--fileset", "f"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert (
            err.startswith("error: give a DATASET and its files, or --fileset")
            and err.count("\n") == 1
        )


def test_every_entry_ingests_in_one_round_of_tasks_and_appends_grow_entries(
    tmp_path: Path,
) -> None:
    """All files of all entries are the tasks of one mapper call (on Dask: in parallel); a
    second fileset appended to the first adds each entry's files as its next version."""
    from skyhook_dask.ingest.fileset import write_fileset
    from skyhook_dask.runtime.mappers import InProcess

    rounds: list[list[str]] = []

    class Recording(InProcess):
        def run(self, func: Any, calls: list[Any], *args: Any) -> list:
            rounds.append([call[1] for call in calls])
            return super().run(func, calls, *args)

    url, mapper = (tmp_path / "store").as_uri(), Recording()
    write_fileset(url, {"A": [DY], "B": [DIMUON, DY]}, mapper=mapper)
    assert rounds == [[DY, DIMUON, DY]]
    grown = write_fileset(url, {"A": [DIMUON]}, mapper=mapper, mode="append")
    assert (grown["A"].version, [f.name for f in grown["A"].files]) == (
        2, ["nano_dy.root", "nano_dimuon.root"]
    )  # fmt: skip
    with pytest.raises(IngestError, match="already in dataset 'B'"):
        write_fileset(url, {"B": [DY]}, mapper=mapper, mode="append")
