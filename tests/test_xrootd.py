"""``root://`` sources through a real XRootD server (Debian's xrootd-server) on 127.0.0.1: ingest
through it equals uproot reading the same file locally; without the client the error names the
extra to install; a server that goes away mid-ingest is an error naming the URL, and nothing is
published. Skips without the server or the extra, except under CI (CI=true), where it fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import pytest
import uproot
from conftest import IN_CI
from xrootd_server import XRootDServer, missing_xrootd

from skyhook_dask import SkyhookDM
from skyhook_dask.catalog.model import list_datasets
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import BackendNotInstalledError, IngestError
from skyhook_dask.ingest.generate import generate_nanoaod
from skyhook_dask.storage import open_store

SAMPLE = sample_path("nano_dy.root")


@pytest.fixture(scope="module")
def server() -> Iterator[XRootDServer]:
    reason = missing_xrootd()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but the XRootD tests cannot run: {reason}")
        pytest.skip(reason)
    from XRootD.client import EnvPutInt

    # A server that is gone is reported in seconds, not after the client's default minutes.
    for key, value in (("ConnectionWindow", 2), ("ConnectionRetry", 1), ("RequestTimeout", 5)):
        EnvPutInt(key, value)
    served = XRootDServer()
    served.start()
    try:
        yield served
    finally:
        served.close()


def test_ingest_through_xrootd_equals_the_local_file(server: XRootDServer, tmp_path: Path) -> None:
    url = server.add(SAMPLE)
    sk = SkyhookDM().connect(store=(tmp_path / "store").as_uri(), dask=False)
    remote = sk.writeDataset([url], "remote", object_size=100_000).files[0]
    local = sk.writeDataset([SAMPLE], "local", object_size=100_000).files[0]
    assert (remote.name, remote.url, remote.size) == ("nano_dy.root", url, SAMPLE.stat().st_size)
    assert remote.getAttributes()["modification_time"] is not None  # from the server
    assert len(remote.tree("Events").objects) > 1
    # Every column as read through the server equals the local file's ingest...
    query = "select event_id >= 0"
    ours, theirs = (ak.from_arrow(sk.runQuery(f, query)) for f in (remote, local))
    assert ours.fields == theirs.fields and len(ours) == 40
    assert ak.array_equal(ours, theirs, equal_nan=True, dtype_exact=True)
    # ...and uproot's own values.
    branches = ["MET_pt", "Muon_pt", "Jet_eta", "nElectron"]
    events = uproot.open(SAMPLE)["Events"].arrays(branches)
    table = sk.runQuery(remote, "project " + " ".join(branches))
    for branch in branches:
        ours = ak.from_arrow(table.column(branch))
        assert ak.array_equal(ours, events[branch]), branch


def test_a_server_gone_mid_ingest_publishes_nothing(
    server: XRootDServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = generate_nanoaod(tmp_path / "big.root", 60_000, n_extra_branches=0)
    url = server.add(big, "big.root")
    store_url = (tmp_path / "store").as_uri()
    store = open_store(store_url)
    written: list[str] = []
    original = type(store).write

    def write(self: Any, name: str, data: bytes, **options: Any) -> Any:
        result = original(self, name, data, **options)
        written.append(name)
        if len(written) == 1:
            server.stop()  # after the first object: the rest of the file is not readable
        return result

    monkeypatch.setattr(type(store), "write", write)
    sk = SkyhookDM().connect(store=store_url, dask=False)
    with pytest.raises(IngestError, match=r"root://127\.0\.0\.1:\d+//big\.root"):
        sk.writeDataset([url], "gone", object_size=200_000)
    assert written and list_datasets(store_url) == []
    assert not [n for n in store.list("gone/") if n.startswith("gone/data/")]
    server.start()  # for the tests after this one


def test_without_the_client_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "XRootD" else real(name, *a)
    )
    sk = SkyhookDM().connect(store=(tmp_path / "store").as_uri(), dask=False)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'skyhook-dask\[xrootd\]'"):
        sk.writeDataset(["root://eospublic.cern.ch//eos/opendata/x.root"], "x")
