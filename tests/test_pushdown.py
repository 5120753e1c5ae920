"""Projection and predicate pushdown through dask-expr's optimizer into the object class.

Runs with the synchronous scheduler on the local store: the optimized expressions must carry
the predicate and the columns, the scans must return fewer rows and bytes, and every result
must equal uproot's (and pandas' own filtering, where the two typing rules differ)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import awkward as ak
import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import uproot
from dask.dataframe.dask_expr._expr import Filter

from skyhook_dask.data import DATA_DIR
from skyhook_dask.dataframe import pushdown
from skyhook_dask.dataframe.pushdown import ListComparisonError, ReadSkyhook, check_internals
from skyhook_dask.dataframe.reader import (
    ColumnConflictWarning,
    PushdownUnavailableWarning,
    collect_metrics,
    read_skyhook,
)
from skyhook_dask.exceptions import SchemaError
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.query.expr import Call, Column, Literal

DATA = DATA_DIR
DIMUON, TREE = DATA / "nano_dimuon.root", DATA / "nano_tree.root"
BRANCHES = ["nMuon", "Muon_pt", "MET_pt", "PuppiMET_pt", "Flag_goodVertices"]


@pytest.fixture(scope="module", autouse=True)
def synchronous() -> Iterator[None]:
    with dask.config.set(scheduler="sync"):
        yield


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = tmp_path_factory.mktemp("pushdown-store").as_uri()
    options: dict[str, Any] = {"object_size": 60_000, "trees": ["Events"], "progress": False}
    write_dataset(url, [str(DIMUON)], "dimuon", **options)
    write_dataset(url, [str(DIMUON), str(TREE)], "mixed", **options)
    return url


@pytest.fixture(scope="module")
def truth() -> ak.Array:
    return uproot.open(DIMUON)["Events"].arrays(BRANCHES)


def _optimized_any(collection: Any) -> tuple[Any, list[Filter]]:
    expr = collection.optimize(fuse=False).expr
    return expr, [e for e in expr.walk() if isinstance(e, Filter)]


def _optimized(collection: Any) -> tuple[ReadSkyhook, list[Filter]]:
    expr = collection.optimize(fuse=False).expr
    readers = [e for e in expr.walk() if isinstance(e, ReadSkyhook)]
    assert len(readers) == 1
    return readers[0], [e for e in expr.walk() if isinstance(e, Filter)]


def test_dask_expr_internals_are_present() -> None:
    check_internals()


def test_a_missing_internal_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    required = {**pushdown.REQUIRED_INTERNALS, "dask.dataframe.dask_expr._expr": ("NoSuchExpr",)}
    monkeypatch.setattr(pushdown, "REQUIRED_INTERNALS", required)
    with pytest.raises(ImportError, match="NoSuchExpr"):
        check_internals()


def test_without_the_internals_reads_still_work_without_pushdown(
    store_url: str, truth: ak.Array, monkeypatch: pytest.MonkeyPatch
) -> None:
    required = {**pushdown.REQUIRED_INTERNALS, "dask.dataframe.dask_expr._expr": ("NoSuchExpr",)}
    monkeypatch.setattr(pushdown, "REQUIRED_INTERNALS", required)
    with pytest.warns(PushdownUnavailableWarning, match="NoSuchExpr"):
        df = read_skyhook("dimuon", ["nMuon", "MET_pt"], store=store_url, index="event_id")
    assert not any(isinstance(e, ReadSkyhook) for e in df.expr.walk())
    assert df.npartitions == 4 and df.known_divisions
    query = df[df.nMuon >= 2].MET_pt
    _, filters = _optimized_any(query)
    assert len(filters) == 1  # the filter stays after the read
    mask = truth.nMuon >= 2
    assert query.compute().tolist() == ak.to_list(truth.MET_pt[mask])
    with pytest.warns(PushdownUnavailableWarning):
        filtered = read_skyhook("dimuon", ["MET_pt"], [("nMuon", ">=", 2)], store=store_url)
    assert filtered.MET_pt.compute().tolist() == ak.to_list(truth.MET_pt[mask])  # in storage


def test_filter_and_projection_land_in_the_reader(store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("dimuon", store=store_url)
    query = df[df.nMuon >= 2][["nMuon", "Muon_pt"]]
    reader, filters = _optimized(query)
    assert filters == []
    assert reader.operand("columns") == ["nMuon", "Muon_pt"]
    assert reader.operand("predicate") == Call(
        "greater_equal", (Column("nMuon"), Literal(2, "uint32"))
    )
    mask = truth.nMuon >= 2
    result = query.compute()
    assert result.nMuon.tolist() == ak.to_list(truth.nMuon[mask])
    assert pa.array(result.Muon_pt).to_pylist() == ak.to_list(truth.Muon_pt[mask])


def test_pushdown_reduces_rows_and_bytes(store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("dimuon", store=store_url)
    with collect_metrics() as everything:
        whole = df[["nMuon", "Muon_pt"]].compute()
    with collect_metrics() as pushed:
        selected = df[df.nMuon >= 3][["Muon_pt"]].compute()
    expected = int(ak.sum(truth.nMuon >= 3))
    assert len(whole) == everything.metrics.rows_out == len(truth)
    assert len(selected) == pushed.metrics.rows_out == expected < len(truth)
    assert pushed.metrics.bytes_returned < everything.metrics.bytes_returned
    assert pushed.metrics.calls <= everything.metrics.calls


@pytest.mark.parametrize(
    ("build", "numpy_mask"),
    [
        (lambda df: (df.nMuon > 1) & (df.MET_pt < 30), lambda t: (t.nMuon > 1) & (t.MET_pt < 30)),
        (
            lambda df: ~(df.nMuon > 1) | (df.MET_pt >= 50),
            lambda t: ~(t.nMuon > 1) | (t.MET_pt >= 50),
        ),
        (lambda df: df.MET_pt > df.PuppiMET_pt, lambda t: t.MET_pt > t.PuppiMET_pt),
        (lambda df: ~df.Flag_goodVertices, lambda t: ~t.Flag_goodVertices),
        (lambda df: 2 <= df.nMuon, lambda t: t.nMuon >= 2),  # noqa: SIM300 (reflected on purpose)
    ],
    ids=["and", "or-not", "column-column", "boolean-column", "reflected"],
)
def test_combined_predicates_are_absorbed(
    store_url: str, truth: ak.Array, build: Any, numpy_mask: Any
) -> None:
    df = read_skyhook("dimuon", store=store_url)
    query = df[build(df)].MET_pt
    reader, filters = _optimized(query)
    assert filters == [] and reader.operand("predicate") is not None
    assert reader.operand("columns") == ["MET_pt"]
    assert query.compute().tolist() == ak.to_list(truth.MET_pt[numpy_mask(truth)])


@pytest.mark.parametrize(
    "build",
    [
        lambda df: df.nMuon + 1 > 3,  # arithmetic: pandas' checked integer math is not ours
        lambda df: df.MET_pt.isin([1.0]) | (df.nMuon > 2),  # a method we do not translate
        lambda df: df.nMuon > np.float32(1.5),  # a numpy scalar with numpy dtypes: see below
    ],
    ids=["arithmetic", "isin", "numpy-scalar"],
)
def test_unsupported_predicates_keep_the_filter(
    store_url: str, truth: ak.Array, build: Any
) -> None:
    df = read_skyhook("dimuon", store=store_url, dtype_backend=None)
    query = df[build(df)].MET_pt
    reader, filters = _optimized(query)
    assert len(filters) == 1 and reader.operand("predicate") is None
    frame = df[["nMuon", "MET_pt"]].compute()
    assert query.compute().tolist() == frame.MET_pt[build(frame)].tolist()
    assert len(frame) == len(truth)


def test_a_reader_used_elsewhere_keeps_the_filter(store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("dimuon", store=store_url)
    total = df[df.nMuon >= 2].MET_pt.sum() + df.MET_pt.sum()  # the unfiltered frame is used too
    filters = [e for e in total.optimize(fuse=False).expr.walk() if isinstance(e, Filter)]
    assert len(filters) == 1
    met = ak.to_numpy(truth.MET_pt).astype(np.float64)
    expected = met[ak.to_numpy(truth.nMuon) >= 2].sum() + met.sum()
    assert float(total.compute()) == pytest.approx(expected, rel=1e-6)


def test_literal_typing_follows_each_dtype_backend(store_url: str, truth: ak.Array) -> None:
    met = ak.to_numpy(truth.MET_pt)
    assert met.dtype == np.float32
    # A double just above one float32 value: equal to it in float32, greater in float64.
    literal = float(np.nextafter(np.float64(met[7]), np.inf))
    float64_answer = met.astype(np.float64) >= literal
    float32_answer = met >= np.float32(literal)
    assert float64_answer.sum() != float32_answer.sum()
    for backend, expected in (("pyarrow", float64_answer), (None, float32_answer)):
        df = read_skyhook("dimuon", store=store_url, dtype_backend=backend)
        query = df[df.MET_pt >= literal].MET_pt
        reader, filters = _optimized(query)
        assert filters == [] and reader.operand("predicate") is not None
        assert query.compute().tolist() == met[expected].tolist()
        # pandas on the same dtypes agrees: the pushdown changed nothing but the work done.
        frame = df[["MET_pt"]].compute()
        assert frame.MET_pt[frame.MET_pt >= literal].tolist() == met[expected].tolist()


def test_statistics_drop_partitions_at_optimization(store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("dimuon", store=store_url, index="event_id")
    assert df.npartitions == 4 and df.known_divisions
    late = df[df.event == -1][["event"]]  # never true: every partition can be dropped
    assert _optimized(late)[0].npartitions == 1
    assert len(late.compute()) == 0
    first_event = int(uproot.open(DIMUON)["Events"]["event"].array()[0])
    query = df[df.event == first_event][["nMuon"]]
    reader, _ = _optimized(query)
    assert reader.npartitions < df.npartitions
    assert query.optimize().known_divisions
    assert query.compute().index.tolist() == [0]


def test_len_comes_from_the_manifest(store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("dimuon", store=store_url)
    with collect_metrics() as counted:
        assert len(df) == len(truth)
    assert counted.metrics.calls == 0
    with collect_metrics() as scanned:
        assert len(df[df.nMuon >= 2]) == int(ak.sum(truth.nMuon >= 2))
    assert scanned.metrics.calls > 0


def test_a_column_missing_from_one_file_keeps_the_filter(store_url: str) -> None:
    with pytest.warns(ColumnConflictWarning, match="Flag_BadPFMuonFilter"):
        df = read_skyhook("mixed", store=store_url)
    with pytest.raises(SchemaError, match=r"Flag_BadPFMuonFilter.*bool.*uint8"):
        read_skyhook("mixed", ["Flag_BadPFMuonFilter"], store=store_url)
    query = df[df.ChsMET_pt > 20].MET_pt  # nano_tree.root has no ChsMET_pt
    reader, filters = _optimized(query)
    assert len(filters) == 1 and reader.operand("predicate") is None
    events = uproot.open(DIMUON)["Events"].arrays(["ChsMET_pt", "MET_pt"])
    assert query.compute().tolist() == ak.to_list(events.MET_pt[events.ChsMET_pt > 20])
    common = df[df.nMuon >= 1].MET_pt  # present everywhere: pushed into both files' objects
    assert _optimized(common)[1] == []
    both = [uproot.open(p)["Events"].arrays(["nMuon", "MET_pt"]) for p in (DIMUON, TREE)]
    expected = [m for t in both for m in ak.to_list(t.MET_pt[t.nMuon >= 1])]
    assert common.compute().tolist() == expected


def test_numpy_backends_keep_lists_columnar(store_url: str, truth: ak.Array) -> None:
    for backend in (None, "numpy_nullable"):
        frame = read_skyhook("dimuon", ["nMuon", "Muon_pt"], store=store_url, dtype_backend=backend)
        result = frame.compute()
        assert isinstance(result.Muon_pt.dtype, pd.ArrowDtype)
        assert not isinstance(result.nMuon.dtype, pd.ArrowDtype)
        assert result.nMuon.tolist() == ak.to_list(truth.nMuon)


def test_comparing_a_list_column_says_what_to_write(store_url: str) -> None:
    df = read_skyhook("dimuon", store=store_url)
    with pytest.raises(ListComparisonError, match=r"any\(Muon_pt > \.\.\.\)"):
        df[df.Muon_pt > 20].compute()
    with pytest.raises(ListComparisonError, match="'Muon_pt' holds a list per event"):
        df[df.Muon_pt > 20].optimize()
