"""Reductions inside the storage: histograms equal ``hist`` filled from uproot + awkward, bin for
bin (flow bins included), and aggregates equal numpy's, on every backend -- on Ceph through the
C++ class, strict, no fallback."""

from __future__ import annotations

from typing import Any

import awkward as ak
import dask
import hist
import numpy as np
import pytest
import uproot
from dask.delayed import Delayed

import skyhook_dask
from skyhook_dask import SkyhookDM
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import QueryError, QuerySyntaxError, QueryTypeError
from skyhook_dask.runtime.calls import process_metrics
from skyhook_dask.runtime.reductions import FAN_IN

SAMPLE = sample_path("nano_dimuon.root")
F32 = np.float32


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(SAMPLE)["Events"].arrays()


def same(ours: Any, expected: Any) -> None:
    assert ours.axes == expected.axes
    assert np.array_equal(ours.view(flow=True), expected.view(flow=True))


def test_masked_jagged_values_with_a_where(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    sk, file = dimuon_file
    with dask.config.set({"skyhook.strict": True}):
        ours = sk.histogram(
            file, "Jet_pt[abs(Jet_eta) < 1]", bins=20, range=(15, 60),
            where="count(Jet_pt > 40) >= 2",
        )  # fmt: skip
    e = events[ak.sum(events.Jet_pt > F32(40), axis=1) >= 2]
    expected = hist.Hist(hist.axis.Regular(20, 15, 60, label="Jet_pt[abs(Jet_eta) < 1]"))
    expected = hist.Hist(*expected.axes, storage=hist.storage.Int64())
    expected.fill(ak.flatten(e.Jet_pt[abs(e.Jet_eta) < F32(1)]))
    same(ours, expected)
    assert ours.sum(flow=True) > 0 and ours.metadata["rows_selected"] == len(e)


def test_two_axes_variable_edges_and_a_weight(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    sk, file = dimuon_file
    edges = [-2.5, -1.0, 0.0, 1.0, 2.5]
    with dask.config.set({"skyhook.strict": True}):
        ours = sk.histogram(
            file, ["Muon_pt", "Muon_eta"], bins=[10, edges], range=[(0, 100), None],
            weight="nJet + 1",
        )  # fmt: skip
    axes = (
        hist.axis.Regular(10, 0, 100, label="Muon_pt"),
        hist.axis.Variable(edges, label="Muon_eta"),
    )
    expected = hist.Hist(*axes, storage=hist.storage.Weight())
    weight = ak.broadcast_arrays(events.nJet + 1, events.Muon_pt)[0]  # whole numbers: exact
    expected.fill(
        ak.flatten(events.Muon_pt), ak.flatten(events.Muon_eta), weight=ak.flatten(weight)
    )
    same(ours, expected)


def test_nan_goes_to_overflow_and_per_event_values(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    sk, file = dimuon_file
    with dask.config.set({"skyhook.strict": True}):
        ours = sk.histogram(file, "sqrt(MET_pt - 30)", bins=8, range=(0, 8))
    expected = hist.Hist(
        hist.axis.Regular(8, 0, 8, label="sqrt(MET_pt - 30)"), storage=hist.storage.Int64()
    )
    with np.errstate(invalid="ignore"):
        expected.fill(np.sqrt(ak.to_numpy(events.MET_pt) - F32(30)))
    same(ours, expected)
    assert ours.view(flow=True)[-1] > 0  # the NaN of every event below 30


def test_objects_answered_by_their_statistics(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    """Each object whose statistics put every value of the column in one cell is answered
    without a call; the others are filled in the storage; the sum equals ``hist``."""
    sk, file = dimuon_file
    objects = file.tree("Events").objects
    assert len(objects) >= 4
    first, last = int(events.event[0]), int(events.event[-1])
    # one bin per two objects' events: most objects lie within a bin, some straddle an edge
    bins = (len(objects) + 1) // 2
    axis = {"bins": bins, "range": (first, last + 1)}
    calls = process_metrics().calls
    with dask.config.set({"skyhook.strict": True}):
        ours = sk.histogram(file, "event", **axis)
        calls = process_metrics().calls - calls
        again = sk.histogram(file, "event", where="nMuon >= 0", **axis)
        filtered = sk.histogram(file, "event", where="nMuon > 1", **axis)
    expected = hist.Hist(hist.axis.Regular(bins, first, last + 1, label="event"))
    expected = hist.Hist(*expected.axes, storage=hist.storage.Int64()).fill(events.event)
    same(ours, expected)
    same(again, expected)  # a where every object's statistics prove true: read whole
    known = ours.metadata["objects_from_statistics"]
    assert 0 < known < len(objects) == ours.metadata["objects_scanned"]
    assert again.metadata["objects_from_statistics"] == known
    assert calls == len(objects) - known  # no call for the objects answered
    assert ours.metadata["rows_in"] == len(events)
    # With a predicate to evaluate, every object is filled in the storage.
    expected = hist.Hist(*expected.axes, storage=hist.storage.Int64())
    same(filtered, expected.fill(events.event[events.nMuon > 1]))
    assert filtered.metadata["objects_from_statistics"] == 0


def test_lists_of_two_collections_name_both(dimuon_file: tuple[SkyhookDM, Any]) -> None:
    sk, file = dimuon_file
    strict = dask.config.set({"skyhook.strict": True})
    with strict, pytest.raises(QueryTypeError, match=r"Jet_pt.*Muon_pt|Muon_pt.*Jet_pt"):
        sk.histogram(file, ["Jet_pt", "Muon_pt"], bins=[5, 5], range=[(0, 50), (0, 50)])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bins": 0, "range": (0, 1)}, "0 bins"),
        ({"bins": 10, "range": (1, 1)}, "low < high"),
        ({"bins": 10, "range": (0, float("nan"))}, "finite"),
        ({"bins": 10**8, "range": (0, 1)}, "an axis has 1 to"),
        ({"bins": [0, 2, 1]}, "must increase"),
        ({"bins": 10}, r"need a range \(low, high\)"),
        ({"bins": 4000, "range": [(0, 1)] * 2, "values": ["MET_pt", "MET_phi"]}, "cells"),
    ],
)
def test_hostile_bins_fail_before_any_object_is_read(
    options: dict[str, Any], message: str, tmp_path: Any
) -> None:
    sk = SkyhookDM().connect(store=str(tmp_path), dask=False)
    file = sk.writeDataset([str(SAMPLE)], "h").files[0]
    values = options.pop("values", "MET_pt")
    calls = process_metrics().calls
    with pytest.raises(QueryError, match=message):
        skyhook_dask.histogram(file, values, **options)
    assert process_metrics().calls == calls


def test_bad_expressions_name_the_fault(tmp_path: Any) -> None:
    sk = SkyhookDM().connect(store=str(tmp_path), dask=False)
    file = sk.writeDataset([str(SAMPLE)], "h").files[0]
    with pytest.raises(QuerySyntaxError, match="expected the end of the expression"):
        sk.histogram(file, "MET_pt MET_phi", bins=2, range=(0, 1))
    with pytest.raises(Exception, match="unknown column 'MET_ptt'"):
        sk.histogram(file, "MET_ptt", bins=2, range=(0, 1))
    with pytest.raises(QueryTypeError, match="reads no column"):
        sk.histogram(file, "1 + 2", bins=2, range=(0, 1))


def test_on_dask_workers_with_a_tree_reduction(
    client: Any, tmp_path: Any, events: ak.Array
) -> None:
    sk = SkyhookDM().connect(store=str(tmp_path), dask=False)
    dataset = sk.writeDataset([str(SAMPLE)], "h", object_size=12_000)
    objects = len(dataset.files[0].tree("Events").objects)
    assert objects > FAN_IN  # the partial histograms are added in two levels of tasks
    ours = skyhook_dask.histogram(
        "h", "Muon_pt", bins=10, range=(0, 100), store=str(tmp_path), client=client
    )
    expected = hist.Hist(
        hist.axis.Regular(10, 0, 100, label="Muon_pt"), storage=hist.storage.Int64()
    )
    expected.fill(ak.flatten(events.Muon_pt))
    same(ours, expected)
    assert ours.metadata["objects_scanned"] == objects


def test_histograms_share_one_graph(tmp_path: Any, events: ak.Array) -> None:
    sk = SkyhookDM().connect(store=str(tmp_path), dask=False)
    file = sk.writeDataset([str(SAMPLE)], "h", object_size=12_000).files[0]
    options = {"bins": 10, "range": (0, 100), "client": False, "compute": False}
    lazy = [skyhook_dask.histogram(file, v, **options) for v in ("MET_pt", "Jet_pt")]
    assert all(isinstance(h, Delayed) for h in lazy)
    met, jets = dask.compute(*lazy)
    for ours, values in ((met, events.MET_pt), (jets, ak.flatten(events.Jet_pt))):
        assert np.array_equal(ours.view(flow=True)[1:-1], np.histogram(values, 10, (0, 100))[0])
        assert ours.sum(flow=True) == len(values)


def test_aggregates_equal_numpy(dimuon_file: tuple[SkyhookDM, Any], events: ak.Array) -> None:
    sk, file = dimuon_file
    what = ["count()", "count(Jet_pt[abs(Jet_eta) < 1])", "sum(nJet)", "max(Jet_pt)"]
    what += ["min(MET_pt)", "mean(Muon_pt[0])", "sum(Muon_pt[Muon_pt > 1000])"]
    with dask.config.set({"skyhook.strict": True}):
        ours = sk.aggregate(file, what, where="nMuon >= 2 and sqrt(MET_sumEt) > 15")
        none = sk.aggregate(file, ["mean(MET_pt)", "count()"], where="nMuon > 100")
    e = events[(events.nMuon >= 2) & (np.sqrt(events.MET_sumEt) > F32(15))]
    first = ak.to_numpy(e.Muon_pt[:, 0]).astype(np.float64)
    expected = [
        len(e), int(ak.count(e.Jet_pt[abs(e.Jet_eta) < F32(1)])), int(ak.sum(e.nJet)),
        float(ak.max(e.Jet_pt)), float(ak.min(e.MET_pt)), float(first.mean()), 0.0,
    ]  # fmt: skip
    assert ours[:5] == expected[:5] and ours[6] == 0
    assert ours[5] == pytest.approx(expected[5], rel=1e-12)
    assert 0 < expected[0] < len(events)
    assert none == [None, 0]


def test_bad_aggregates_name_the_fault(tmp_path: Any) -> None:
    sk = SkyhookDM().connect(store=str(tmp_path), dask=False)
    file = sk.writeDataset([str(SAMPLE)], "a").files[0]
    with pytest.raises(QuerySyntaxError, match=r"an aggregate is one of count\(...\)"):
        sk.aggregate(file, "median(MET_pt)")
    with pytest.raises(QuerySyntaxError, match=r"sum\(\) needs a value"):
        sk.aggregate(file, "sum()")
    assert sk.aggregate(file, "count()") == 40 == skyhook_dask.aggregate(file, "count(*)")
