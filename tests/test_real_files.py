"""Files as experiments write them: CMSSW metadata trees whose every branch uproot cannot read,
Delphes' split TClonesArrays (whose top branch reads as a per-event count), and files that are
not ROOT files at all. Every branch uproot reads by name is a column with uproot's values."""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import pytest
import uproot
from realfile_support import DELPHES, METADATA_TREES, cmssw_like_file

from skyhook_dask import SkyhookDM
from skyhook_dask.exceptions import IngestError
from skyhook_dask.formats.objects import EVENT_ID
from skyhook_dask.ingest import write_dataset
from skyhook_dask.ingest.rootfile import SkippedBranchWarning


def _ingest(path: Path, name: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedBranchWarning)
        return write_dataset(f"memory://real-{name}", [str(path)], name)


def test_cmssw_metadata_trees_without_a_readable_branch_still_ingest(tmp_path: Path) -> None:
    path = cmssw_like_file(tmp_path / "nano.root")
    with uproot.open(path) as root:
        for tree in METADATA_TREES:  # the shape: entries, and no branch uproot can read
            assert root[tree].num_entries == 1
            for branch in root[tree].branches:
                with pytest.raises(ValueError):
                    branch.array()
    file = _ingest(path, "cmssw").files[0]
    for tree, branches in METADATA_TREES.items():
        info = file.tree(tree)
        assert info.entries == 1 and info.columns == [EVENT_ID]
        assert [s["branch"] for s in info.skipped] == branches
        assert all("uproot cannot read it" in s["reason"] for s in info.skipped)
    events = uproot.open(path)["Events"].arrays()
    table = (
        SkyhookDM()
        .connect(store="memory://real-cmssw")
        .runQuery(file, "select nMuon >= 1, project event")
    )
    assert table.column("event").to_pylist() == ak.to_list(events.event[events.nMuon >= 1])
    metadata = (
        SkyhookDM().connect(store="memory://real-cmssw").runQuery(file, "project MetaData.event_id")
    )
    assert metadata.column(EVENT_ID).to_pylist() == [0]


def test_every_delphes_branch_uproot_reads_by_name_is_a_column_with_its_values() -> None:
    file = _ingest(DELPHES, "delphes").files[0]
    info = file.tree("Delphes")
    tree = uproot.open(DELPHES)["Delphes"]
    # The top branch of a split TClonesArray is the per-event count, as uproot reads it.
    for top in ("Event", "Particle", "Track", "Jet", "GenJet"):
        assert top in info.columns
    sk = SkyhookDM().connect(store="memory://real-delphes")
    columns = [c for c in info.columns if c != EVENT_ID]
    table = sk.runQuery(file, "project " + " ".join(f"`{c}`" for c in columns))
    for column in columns:
        assert table.column(column).to_pylist() == ak.to_list(tree[column].array()), column
    # What cannot be a column says why: unreadable, or shadowed by a same-named branch.
    reasons = {s["branch"]: s["reason"] for s in info.skipped}
    assert all(reasons.values()) and set(tree.keys()) == set(columns) | set(reasons)
    selected = sk.runQuery(file, "select Particle > 2300 and Jet >= 5, project Particle Jet")
    counts, jets = tree["Particle"].array(), tree["Jet"].array()
    keep = (counts > 2300) & (jets >= 5)
    assert selected.column("Particle").to_pylist() == ak.to_list(counts[keep])


@pytest.mark.parametrize("content", [b"", b"root\x00\x00", b"abcdef"])
def test_a_file_too_short_for_a_root_header_is_not_a_root_file(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "short.root"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=r"short\.root is not a ROOT file: it is too short"):
        write_dataset(f"memory://short-{len(content)}-{content[:1].hex()}", [str(path)], "s")
