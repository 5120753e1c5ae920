"""Shared fixtures: sample data, stores of every backend, and the real Ceph dev cluster.

The Ceph fixtures skip when the Debian Ceph packages are absent, except under CI (CI=true),
where a missing cluster is a failure: CI must run the Ceph tests, never skip them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyhook_dask.data import DATA_DIR

DATA = DATA_DIR
SAMPLES = sorted(DATA.glob("*.root"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["memory", "file", "rados"]


def _missing_ceph() -> str | None:
    for tool in ("ceph-mon", "ceph-osd", "monmaptool", "ceph-authtool"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    try:
        import rados  # noqa: F401
    except ImportError:
        return "python binding 'rados' not importable (run: skyhook ceph link-rados)"
    return None


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A single-node Ceph cluster with cephx and the skyhook class, up for the whole session.

    Set SKYHOOK_TEST_CEPH_DIR to reuse a cluster directory across runs (it is left running).
    """
    reason = _missing_ceph()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but the Ceph cluster cannot run: {reason}")
        pytest.skip(f"Ceph not available: {reason}")
    from skyhook_dask.ceph.cluster import DevCluster

    keep = os.environ.get("SKYHOOK_TEST_CEPH_DIR")
    cluster = DevCluster(Path(keep) if keep else tmp_path_factory.mktemp("ceph"))
    cluster.up()
    try:
        yield cluster
    finally:
        if not keep:
            cluster.down()


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[object]:
    """One two-process LocalCluster shared by the modules that only run tasks on it.

    Modules that kill or restart workers start their own.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    """Podman with the tests' private configuration (skips without podman, fails in CI)."""
    from container_support import make_podman_env

    return make_podman_env()


@pytest.fixture(scope="session")
def client_image(podman_env: dict[str, str]) -> Iterator[str]:
    """The skyhook-dask image, built offline once per session and removed afterwards."""
    from container_support import build_client_image

    yield from build_client_image(podman_env)


@pytest.fixture(scope="module")
def client(dask_cluster: object) -> Iterator[object]:
    """A client of the shared cluster, one per module (modules with their own cluster define
    their own ``client``)."""
    from distributed import Client

    with Client(dask_cluster) as c:
        yield c


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store of each backend kind."""
    kind = request.param
    if kind == "memory":
        yield f"memory://test-{uuid.uuid4().hex}"
    elif kind == "file":
        yield (tmp_path / "store").as_uri()
    else:
        cluster = request.getfixturevalue("ceph_cluster")
        # A unique prefix per test keeps tests apart inside the shared pool.
        yield cluster.url  # type: ignore[attr-defined]


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    from skyhook_dask.storage import close_stores, open_store

    s = open_store(store_url)
    yield s
    if not store_url.startswith("rados"):
        close_stores(store_url)


@pytest.fixture
def prefix() -> str:
    """A unique name prefix, so tests sharing one Ceph pool never see each other's objects."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def dimuon_file(store_url: str, prefix: str) -> tuple[object, object]:
    """The bundled nano_dimuon.root ingested into a fresh dataset of ``store_url`` (several
    objects), and an in-process SkyhookDM on that store: (client, File)."""
    from skyhook_dask import SkyhookDM

    sk = SkyhookDM().connect(store=store_url, dask=False)
    options = {"trees": ["Events"], "object_size": 60_000}
    dataset = sk.writeDataset([str(DATA / "nano_dimuon.root")], f"{prefix}-dimuon", **options)
    return sk, dataset.files[0]
