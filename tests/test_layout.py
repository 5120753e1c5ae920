"""Branch shapes beyond flat and jagged numbers keep their structure through ingest and queries:
fixed-size arrays (``float[3]``), jagged records and booleans, as uproot + awkward read them."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot

from skyhook_dask import SkyhookDM


@pytest.fixture(scope="module")
def shaped_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    n = 500
    counts = rng.poisson(1.5, n)
    path = tmp_path_factory.mktemp("shapes") / "shapes.root"
    data = {
        "vertex": rng.normal(size=(n, 3)).astype(np.float32),  # fixed-size float[3]
        "Trk": ak.zip(
            {
                "pt": ak.unflatten(rng.exponential(10, counts.sum()).astype(np.float32), counts),
                "q": ak.unflatten(rng.choice([-1, 1], counts.sum()).astype(np.int8), counts),
                "good": ak.unflatten(rng.random(counts.sum()) > 0.3, counts),
            }
        ),
    }
    with uproot.recreate(path) as f:
        # mktree writes a TTree (assigning a dict would write an RNTuple); the record becomes
        # the branches Trk_pt, Trk_q, Trk_good with the counter nTrk, as in NanoAOD.
        f.mktree("Events", {"vertex": np.dtype(("f4", (3,))), "Trk": data["Trk"].type})
        f["Events"].extend(data)
    return path


def test_fixed_size_and_record_branches_round_trip(shaped_file: Path, tmp_path: Path) -> None:
    sk = SkyhookDM().connect(store=tmp_path.as_uri(), dask=False)
    ds = sk.writeDataset([str(shaped_file)], "shapes", object_size=8_000)
    f = ds.getFiles()[0]
    tree = f.trees["Events;1"]
    assert len(tree.objects) > 1
    assert pa.types.is_fixed_size_list(tree.schema.field("vertex").type)
    events = uproot.open(shaped_file)["Events"].arrays(library="ak")

    table = sk.runQuery(f, "project vertex Trk_pt Trk_q Trk_good")
    assert table.column("vertex").to_pylist() == ak.to_list(events.vertex)
    for name in ("Trk_pt", "Trk_q", "Trk_good"):
        assert table.column(name).to_pylist() == ak.to_list(events[name]), name

    query = "select count(Trk_good and Trk_pt > 5) >= 2 and sum(Trk_q) == 0, project event_id"
    selected = sk.runQuery(f, query).column("event_id").to_pylist()
    mask = (ak.sum(events.Trk_good & (events.Trk_pt > 5), axis=1) >= 2) & (
        ak.sum(events.Trk_q, axis=1) == 0
    )
    assert selected == np.flatnonzero(ak.to_numpy(mask)).tolist()
    assert 0 < len(selected) < len(events)
