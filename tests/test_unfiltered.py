"""Objects whose statistics prove that every row satisfies the predicate are scanned without it:
the answer stays that of uproot + awkward, in process and on Dask, on every backend; a query of
every column then reads such objects as they are, without the object class."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from distributed import Client
from query_support import plan_file, query_file

from skyhook_dask.dataframe.reader import read_skyhook
from skyhook_dask.formats.protocol import decode_request
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.runtime.mappers import OnDask

EVENTS = 3000
OBJECTS = 40_000  # bytes: about ten objects, each holding a range of event numbers


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unfiltered")
    return generate_nanoaod(folder / "events.root", EVENTS, seed=11, n_extra_branches=2)


@pytest.fixture(scope="module")
def events(source: Path) -> ak.Array:
    return uproot.open(source)["Events"].arrays()


def test_only_objects_within_the_bounds_drop_the_predicate(source: Path, events: ak.Array) -> None:
    url = "memory://unfiltered-plan"
    file = write_dataset(url, [source], "plan", object_size=OBJECTS).files[0]
    cut = int(events.event[EVENTS // 2])
    plan = plan_file(file, f"select event >= {cut}, project Muon_pt")
    requests = [decode_request(plan.payload(o)) for o in plan.objects]
    filtered = [r.predicate is not None for r in requests]
    assert filtered == [not o.unfiltered for o in plan.objects]
    assert len(plan.objects) + len(plan.skipped) > 3 and any(filtered) and not all(filtered)
    tree = file.trees["Events;1"]
    stats = {o.name: s for o, s in zip(tree.objects, tree.stats(["event"]), strict=True)}
    for obj, needs_filter in zip(plan.objects, filtered, strict=True):
        assert needs_filter == (stats[obj.name]["event"]["min"] < cut)  # event numbers rise


def test_results_equal_uproot(store_url: str, prefix: str, source: Path, events: ak.Array) -> None:
    file = write_dataset(store_url, [source], f"{prefix}-u", object_size=OBJECTS).files[0]
    cut = int(events.event[EVENTS // 3])
    result = query_file(store_url, file, f"select event >= {cut} and nMuon >= 0, project Muon_pt")
    keep = events.event >= cut
    assert result.table.column("Muon_pt").to_pylist() == ak.to_list(events.Muon_pt[keep])
    # Every row of every object: no filtering, and every column comes from a plain read.
    everything = query_file(store_url, file, "select luminosityBlock >= 1")
    objects = file.trees["Events;1"].objects
    assert everything.metrics.bytes_returned == sum(o.bytes for o in objects)
    assert everything.metrics.rows_out == everything.table.num_rows == EVENTS
    assert everything.table.column("MET_pt").to_pylist() == ak.to_list(events.MET_pt)
    assert everything.table.column("Jet_pt").to_pylist() == ak.to_list(events.Jet_pt)
    assert everything.table.column("event_id").to_pylist() == list(range(EVENTS))


def test_dask_tasks_scan_unfiltered_objects_too(
    client: Client, tmp_path: Path, source: Path, events: ak.Array
) -> None:
    url = tmp_path.as_uri()
    file = write_dataset(url, [source], "dask", object_size=OBJECTS).files[0]
    cut = int(events.event[EVENTS // 2])
    result = query_file(url, file, f"select event < {cut}, project event", OnDask(client))
    assert result.table.column("event").to_pylist() == ak.to_list(events.event[events.event < cut])
    whole = query_file(url, file, "select run == 1", OnDask(client))
    assert whole.table.num_rows == EVENTS
    assert np.array_equal(whole.table.column("PV_npvs").to_numpy(), ak.to_numpy(events.PV_npvs))


def test_read_skyhook_partitions_scan_unfiltered_objects_too(
    tmp_path: Path, source: Path, events: ak.Array
) -> None:
    url = tmp_path.as_uri()
    write_dataset(url, [source], "frame", object_size=OBJECTS)
    cut = float(np.median(ak.to_numpy(events.MET_pt)))
    frame = read_skyhook("frame", store=url, columns=["event", "MET_pt"])
    selected = frame[(frame.event >= 1) & (frame.MET_pt < cut)].compute(scheduler="sync")
    keep = (events.event >= 1) & (events.MET_pt < cut)
    assert selected.event.tolist() == ak.to_list(events.event[keep])
    assert selected.MET_pt.tolist() == ak.to_list(events.MET_pt[keep])
    whole = read_skyhook("frame", store=url, filters=[("run", "==", 1)], columns=["PV_npvs"])
    assert whole.PV_npvs.compute(scheduler="sync").tolist() == ak.to_list(events.PV_npvs)


def test_a_predicate_added_after_choosing_partitions_is_not_skipped(
    tmp_path: Path, source: Path, events: ak.Array
) -> None:
    """Objects proven for ``run == 1`` are read unfiltered only under that very predicate: a
    filter pushed down after choosing partitions still applies to them."""
    url = tmp_path.as_uri()
    file = write_dataset(url, [source], "later", object_size=OBJECTS).files[0]
    first, second = file.trees["Events;1"].objects[:2]
    frame = read_skyhook("later", store=url, filters=[("run", "==", 1)], columns=["MET_pt"])
    chosen = frame.partitions[[0, 1]]
    cut = float(np.median(ak.to_numpy(events.MET_pt)))
    got = chosen[chosen.MET_pt < cut].compute(scheduler="sync")
    met = events.MET_pt[first.first_event : second.stop_event]
    assert got.MET_pt.tolist() == ak.to_list(met[met < cut])
