"""read_skyhook / read_awkward on a real two-process LocalCluster, against uproot's arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import uproot
from dask.delayed import Delayed
from distributed import Client, progress, wait

from skyhook_dask.catalog.model import load_dataset
from skyhook_dask.data import DATA_DIR
from skyhook_dask.dataframe.reader import collect_metrics, read_awkward, read_skyhook
from skyhook_dask.exceptions import (
    DatasetNotFoundError,
    QuerySyntaxError,
    UnknownColumnError,
    UnknownTreeError,
)
from skyhook_dask.ingest.pipeline import write_dataset

DATA = DATA_DIR
FILES = [DATA / "nano_dimuon.root", DATA / "nano_dy.root"]
BRANCHES = ["event", "nMuon", "Muon_pt", "Muon_charge", "MET_pt", "nJet"]
OPTIONS: dict[str, Any] = {"object_size": 60_000, "trees": ["Events"], "progress": False}


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = tmp_path_factory.mktemp("reader-store").as_uri()
    write_dataset(url, [str(f) for f in FILES], "two", **OPTIONS)
    write_dataset(url, [str(FILES[0])], "dimuon", **OPTIONS)
    return url


@pytest.fixture(scope="module")
def truth() -> ak.Array:
    """Both files' events, in dataset order, as uproot reads them."""
    return ak.concatenate([uproot.open(f)["Events"].arrays(BRANCHES) for f in FILES])


def _lists(series: pd.Series) -> list[Any]:
    return pa.array(series).to_pylist()  # type: ignore[no-any-return]


def _objects(store_url: str, name: str) -> int:
    ds = load_dataset(store_url, name)
    return sum(len(f.tree("Events").objects) for f in ds.files)


def test_projection_matches_uproot(client: Client, store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("two", ["nMuon", "Muon_pt", "MET_pt"], store=store_url)
    assert df.npartitions == _objects(store_url, "two") > 2
    result = df.compute()
    assert list(result.columns) == ["nMuon", "Muon_pt", "MET_pt"]
    muon_type = result.Muon_pt.dtype
    assert isinstance(muon_type, pd.ArrowDtype) and pa.types.is_list(muon_type.pyarrow_dtype)
    assert result.nMuon.tolist() == ak.to_list(truth.nMuon)
    assert _lists(result.Muon_pt) == ak.to_list(truth.Muon_pt)
    assert result.MET_pt.tolist() == ak.to_list(truth.MET_pt)
    assert df.head(3).nMuon.tolist() == ak.to_list(truth.nMuon[:3])


def test_meta_matches_the_partitions(client: Client, store_url: str) -> None:
    df = read_skyhook("two", store=store_url)
    part = df.partitions[0][["nMuon", "Muon_pt", "event_id"]].compute()
    assert dict(part.dtypes) == dict(df._meta[["nMuon", "Muon_pt", "event_id"]].dtypes)
    assert len(df.columns) > 1000 and isinstance(df._meta.Jet_pt.dtype, pd.ArrowDtype)


def test_objects_per_partition_and_divisions(client: Client, store_url: str) -> None:
    objects = _objects(store_url, "dimuon")
    one = read_skyhook("dimuon", ["nMuon"], store=store_url, index="event_id")
    assert one.npartitions == objects and one.known_divisions
    assert one.divisions[0] == 0 and one.divisions[-1] == 39
    grouped = read_skyhook(
        "dimuon", ["nMuon"], store=store_url, index="event_id", objects_per_partition=2
    )
    assert grouped.npartitions == (objects + 1) // 2
    assert set(grouped.divisions) <= set(one.divisions)
    assert grouped.compute().index.tolist() == list(range(40))
    # Event ids restart in every file: two files give unknown divisions.
    two = read_skyhook("two", ["nMuon"], store=store_url, index="event_id")
    assert not two.known_divisions
    assert two.compute().index.tolist() == list(range(40)) * 2


def test_dnf_filters(client: Client, store_url: str, truth: ak.Array) -> None:
    filters = [[("nMuon", ">=", 2), ("MET_pt", "<", 40.0)], [("nJet", "==", 0)]]
    result = read_skyhook("two", ["event", "nMuon"], filters, store=store_url).compute()
    mask = ((truth.nMuon >= 2) & (truth.MET_pt < 40.0)) | (truth.nJet == 0)
    assert result.event.tolist() == ak.to_list(truth.event[mask])
    assert 0 < len(result) < len(truth)


def test_arrow_expression_filter(client: Client, store_url: str, truth: ak.Array) -> None:
    expression = (pc.field("nMuon") >= 2) & ~(pc.field("MET_pt") > 20)
    result = read_skyhook("two", ["event"], expression, store=store_url).compute()
    mask = (truth.nMuon >= 2) & ~(truth.MET_pt > 20)
    assert result.event.tolist() == ak.to_list(truth.event[mask])


def test_jagged_query(client: Client, store_url: str, truth: ak.Array) -> None:
    query = "select any(Muon_pt > 20) and sum(Muon_charge) == 0, project event, Muon_pt"
    df = read_skyhook("two", store=store_url, query=query)
    assert list(df.columns) == ["event", "Muon_pt"]
    result = df.compute()
    mask = ak.any(truth.Muon_pt > np.float32(20), axis=1) & (ak.sum(truth.Muon_charge, axis=1) == 0)
    assert result.event.tolist() == ak.to_list(truth.event[mask])
    assert _lists(result.Muon_pt) == ak.to_list(truth.Muon_pt[mask])
    assert 0 < len(result) < len(truth)


def test_aggregations(client: Client, store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("two", store=store_url)
    assert int(df.nMuon.sum().compute()) == int(ak.sum(truth.nMuon))
    expected = (
        pd.DataFrame({"nMuon": ak.to_numpy(truth.nMuon), "MET_pt": ak.to_numpy(truth.MET_pt)})
        .groupby("nMuon")
        .MET_pt.agg(["count", "mean"])
    )
    got = df.groupby("nMuon").MET_pt.agg(["count", "mean"]).compute().sort_index()
    assert got.index.tolist() == expected.index.tolist()
    assert got["count"].tolist() == expected["count"].tolist()
    np.testing.assert_allclose(got["mean"].astype(float), expected["mean"], rtol=1e-6)
    selected = df[df.nMuon >= 2].MET_pt.mean().compute()
    assert selected == pytest.approx(float(np.mean(ak.to_numpy(truth.MET_pt[truth.nMuon >= 2]))))


def test_metrics_from_the_workers(client: Client, store_url: str, truth: ak.Array) -> None:
    df = read_skyhook("two", store=store_url)
    with collect_metrics(client) as everything:
        assert len(df.event.compute()) == len(truth)
    with collect_metrics(client) as selected:
        assert len(df[df.nMuon >= 3].event.compute()) == int(ak.sum(truth.nMuon >= 3))
    assert everything.metrics.rows_out == len(truth)
    assert selected.metrics.rows_out == int(ak.sum(truth.nMuon >= 3))
    assert selected.metrics.bytes_returned < everything.metrics.bytes_returned


def test_statistics_skip_objects_before_any_task(client: Client, store_url: str) -> None:
    objects = _objects(store_url, "dimuon")
    df = read_skyhook("dimuon", ["event_id"], [("event_id", ">=", 30)], store=store_url)
    assert 0 < df.npartitions < objects
    with collect_metrics(client) as m:
        assert df.compute().event_id.tolist() == list(range(30, 40))
    assert m.metrics.calls == df.npartitions
    nothing = read_skyhook("dimuon", ["nMuon"], [("nMuon", ">", 1000)], store=store_url)
    result = nothing.compute()
    assert nothing.npartitions == 1 and len(result) == 0
    assert list(result.columns) == ["nMuon"] and result.nMuon.dtype == nothing._meta.nMuon.dtype


def test_task_names_and_progress(
    client: Client, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    df = read_skyhook("two", ["nMuon"], store=store_url)
    assert df.expr._name.startswith("read-skyhook-two-")
    assert {key[0] for key in dict(df.dask)} == {df.expr._name}
    persisted = df.persist()
    progress(persisted, notebook=False)
    wait(persisted)
    assert "100%" in capsys.readouterr().out
    prefixes = client.run_on_scheduler(lambda dask_scheduler: set(dask_scheduler.task_prefixes))
    assert "read-skyhook-two" in prefixes


def test_read_awkward(client: Client, store_url: str, truth: ak.Array) -> None:
    parts = read_awkward("two", ["nMuon", "Muon_pt"], [("nMuon", ">=", 2)], store=store_url)
    assert len(parts) <= _objects(store_url, "two")
    assert all(isinstance(p, Delayed) for p in parts)
    assert {p.key[0] for p in parts} == {parts[0].key[0]}
    assert parts[0].key[0].startswith("read-skyhook-two-awkward-")
    arrays = ak.concatenate(dask.compute(*parts))
    mask = truth.nMuon >= 2
    assert ak.to_list(arrays.Muon_pt) == ak.to_list(truth.Muon_pt[mask])
    whole = read_awkward(
        "two", ["Muon_pt"], store=store_url, compute=True, query="select nMuon >= 2"
    )
    assert ak.to_list(whole.Muon_pt) == ak.to_list(truth.Muon_pt[mask])
    assert str(ak.type(whole.Muon_pt)).endswith("var * float32")


def test_errors_name_the_culprit(store_url: str) -> None:
    with pytest.raises(DatasetNotFoundError, match="'dimuon'"):
        read_skyhook("dimuons", store=store_url)
    with pytest.raises(UnknownColumnError, match="'MET_pt'"):
        read_skyhook("two", ["MET_ptt"], store=store_url)
    with pytest.raises(UnknownColumnError, match="nMuons"):
        read_skyhook("two", filters=[("nMuons", ">", 1)], store=store_url)
    with pytest.raises(UnknownTreeError, match="Tree"):
        read_skyhook("two", store=store_url, tree="Tree")
    with pytest.raises(QuerySyntaxError):
        read_skyhook("two", store=store_url, query="select nMuon >")
    with pytest.raises(ValueError, match="dtype_backend"):
        read_skyhook("two", store=store_url, dtype_backend="arrow")


@pytest.mark.ceph
def test_read_from_ceph(client: Client, ceph_cluster: Any, tmp_path: Path) -> None:
    url = ceph_cluster.url
    name = f"reader-{tmp_path.name[-12:].replace('_', '')}"
    write_dataset(url, [str(FILES[0])], name, **OPTIONS)
    events = uproot.open(FILES[0])["Events"].arrays(["event", "nMuon", "Muon_pt"])
    df = read_skyhook(name, store=url, strict=True)  # fails if the OSD lacks the class
    with collect_metrics(client) as m:
        result = df[df.nMuon >= 2][["event", "Muon_pt"]].compute()
    mask = events.nMuon >= 2
    assert result.event.tolist() == ak.to_list(events.event[mask])
    assert _lists(result.Muon_pt) == ak.to_list(events.Muon_pt[mask])
    assert m.metrics.rows_out == int(ak.sum(mask))
    query = "select any(Muon_pt > 20), project event"
    jagged = read_skyhook(name, store=url, query=query, strict=True).compute()
    any_mask = ak.any(events.Muon_pt > np.float32(20), axis=1)
    assert jagged.event.tolist() == ak.to_list(events.event[any_mask])
    # Aggregations over the pushed-down partitions.
    counts = read_skyhook(name, store=url, columns=["nMuon"], strict=True).nMuon
    assert int(counts.sum().compute()) == int(ak.sum(events.nMuon))
    assert int(counts.max().compute()) == int(ak.max(events.nMuon))
