"""The single-node dev cluster: lifecycle, restarts that keep data, cephx and pool caps.

Lifecycle tests run on a cluster of their own (stopped and restarted here), created without
the object class so that its absence is tested too; the cephx tests use the session cluster.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from skyhook_dask.ceph import cluster as cluster_module
from skyhook_dask.ceph import link_rados
from skyhook_dask.ceph.cluster import APT_INSTALL_LINE, CLASS_LIBRARY, DevCluster
from skyhook_dask.ceph.daemons import DevClusterError
from skyhook_dask.exceptions import (
    BackendNotInstalledError,
    ClassNotAvailableError,
    StorePermissionError,
    StoreUnavailableError,
)
from skyhook_dask.storage.rados import RadosStore


@pytest.fixture(scope="module")
def own_cluster(ceph_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    DevCluster
]:  # fmt: skip
    """A second cluster beside the session one (which also makes the skip/CI decision)."""
    cluster = DevCluster(tmp_path_factory.mktemp("ceph-own"), install_class=False)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def _rados_cli(cluster: DevCluster, *args: str, stdin: bytes | None = None) -> bytes:
    """Ground truth independent of our backend: Ceph's own `rados` tool, as client.admin."""
    argv = ["rados", "-c", str(cluster.conf_path), "--name", "client.admin", "-p", cluster.pool]
    done = subprocess.run([*argv, *args], input=stdin, capture_output=True, timeout=30, check=True)
    return done.stdout


def _daemon_pids(cluster: DevCluster) -> tuple[int, int]:
    status = cluster.status()
    return status["mon"]["pid"], status["osd"]["pid"]


@pytest.mark.ceph
def test_status_and_config_of_a_running_cluster(own_cluster: DevCluster) -> None:
    status = own_cluster.status()
    assert status["running"] and status["created"]
    assert status["health"].startswith("HEALTH_OK"), status["health"]
    assert status["url"] == own_cluster.url
    assert own_cluster.url == (
        f"rados://skyhook?conf={own_cluster.dir}/ceph.conf&name=client.skyhook"
    )
    conf = own_cluster.conf_path.read_text()
    v2, v1 = status["mon"]["ports"]
    assert f"mon host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]" in conf
    assert "/etc/ceph" not in conf and "/var/lib/ceph" not in conf
    # Every file a daemon writes lives inside the cluster's directory.
    for pid in _daemon_pids(own_cluster):
        assert str(own_cluster.conf_path) in Path(f"/proc/{pid}/cmdline").read_text()
    for keyring in (own_cluster.keyring_path, own_cluster.admin_keyring_path):
        assert keyring.stat().st_mode & 0o077 == 0, f"{keyring} is readable by others"
    assert (own_cluster.dir / "log" / "osd.0.log").stat().st_size > 0
    assert (own_cluster.dir / "classes" / "libcls_hello.so").exists()


@pytest.mark.ceph
def test_two_clusters_run_side_by_side(own_cluster: DevCluster, ceph_cluster: DevCluster) -> None:
    ports = set(own_cluster.status()["mon"]["ports"])
    assert ports.isdisjoint(ceph_cluster.status()["mon"]["ports"])
    assert {3300, 6789}.isdisjoint(ports), "a fixed default port would clash with a user's"
    name = f"side-{os.getpid()}"
    RadosStore.from_url(own_cluster.url).write(name, b"own")
    RadosStore.from_url(ceph_cluster.url).write(name, b"session")
    assert _rados_cli(own_cluster, "get", name, "-") == b"own"
    assert _rados_cli(ceph_cluster, "get", name, "-") == b"session"


@pytest.mark.ceph
def test_up_on_a_running_cluster_changes_nothing(own_cluster: DevCluster) -> None:
    before = _daemon_pids(own_cluster)
    started = time.monotonic()
    assert own_cluster.up() == own_cluster.url
    assert time.monotonic() - started < 2
    assert _daemon_pids(own_cluster) == before


@pytest.mark.ceph
def test_down_then_up_keeps_data(own_cluster: DevCluster, ceph_cluster: DevCluster) -> None:
    payload = os.urandom(300_000)
    _rados_cli(own_cluster, "put", "kept", "-", stdin=payload)
    mon_pid, osd_pid = _daemon_pids(own_cluster)
    own_cluster.down()
    status = own_cluster.status()
    assert not status["running"] and not status["mon"]["alive"] and not status["osd"]["alive"]
    for pid in (mon_pid, osd_pid):
        stat = Path(f"/proc/{pid}/stat")
        state = stat.read_text().rsplit(")", 1)[-1].split()[0] if stat.exists() else "gone"
        assert state in ("Z", "X", "gone"), f"pid {pid} still running after down()"
    assert ceph_cluster.status()["running"], "down() stopped another cluster's daemons"
    own_cluster.down()  # stopping a stopped cluster is fine
    own_cluster.up()
    assert own_cluster.status()["running"]
    assert _daemon_pids(own_cluster)[1] != osd_pid
    assert RadosStore.from_url(own_cluster.url).read("kept") == payload


@pytest.mark.ceph
def test_restart_osd_keeps_data_and_clients_recover(own_cluster: DevCluster) -> None:
    store = RadosStore.from_url(own_cluster.url + "&timeout=10")
    store.write("before-restart", b"abc" * 1000)
    osd_pid = _daemon_pids(own_cluster)[1]
    own_cluster.restart_osd()
    assert _daemon_pids(own_cluster)[1] != osd_pid
    assert store.read("before-restart") == b"abc" * 1000


@pytest.mark.ceph
def test_client_fails_fast_while_down_then_reconnects(own_cluster: DevCluster) -> None:
    store = RadosStore.from_url(own_cluster.url + "&timeout=2")
    store.write("reconnect", b"1")
    own_cluster.down()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="skyhook"):
            store.read("reconnect")
        assert time.monotonic() - started < 10
    finally:
        own_cluster.up()
    assert store.read("reconnect") == b"1"


def test_queries_fall_back_to_the_client_without_the_class(own_cluster: DevCluster) -> None:
    """A Ceph without the skyhook class still answers queries (read + filter in the client)."""
    import awkward as ak
    import dask
    import uproot

    from skyhook_dask import SkyhookDM
    from skyhook_dask.data import sample_path
    from skyhook_dask.runtime import calls as execution

    path = sample_path("nano_dimuon.root")
    sk = SkyhookDM().connect(store=own_cluster.url, dask=False)
    ds = sk.writeDataset([str(path)], "fallback", object_size=100_000, overwrite=True)
    query = "select nMuon >= 2 and any(Muon_pt > 20), project Muon_pt"
    execution._fallback_warned.discard(own_cluster.url)
    with pytest.warns(execution.ClientSideFallbackWarning, match="no 'skyhook' object class"):
        table = sk.runQuery(ds.getFiles()[0], query)
    events = uproot.open(path)["Events"].arrays(["nMuon", "Muon_pt"])
    expected = events[(events.nMuon >= 2) & ak.any(events.Muon_pt > 20, axis=1)].Muon_pt
    assert table.column("Muon_pt").to_pylist() == ak.to_list(expected)
    with dask.config.set({"skyhook.strict": True}), pytest.raises(ClassNotAvailableError):
        sk.runQuery(ds.getFiles()[0], query)


@pytest.mark.ceph
def test_missing_class_then_reload_class(own_cluster: DevCluster) -> None:
    store = RadosStore.from_url(own_cluster.url)
    table = pa.table({"event_id": pa.array([0, 1, 2], pa.int64()), "x": [1.0, 2.0, 3.0]})
    from skyhook_dask.formats.objects import write_object
    from skyhook_dask.formats.protocol import decode_result

    store.write("obj", write_object(table))
    with pytest.raises(ClassNotAvailableError, match=r"skyhook\.stat on object 'obj'"):
        store.exec("obj", "skyhook", "stat", b"")
    pytest.importorskip("skyhook_dask.ceph.build_class")
    osd_pid = _daemon_pids(own_cluster)[1]
    installed = own_cluster.reload_class()
    assert installed == own_cluster.class_dir / CLASS_LIBRARY and installed.is_file()
    assert _daemon_pids(own_cluster)[1] != osd_pid
    assert own_cluster.status()["class_installed"]
    out, _metrics = decode_result(store.exec("obj", "skyhook", "stat", b""))
    assert out.column("max").to_pylist() == [2.0, 3.0]


def test_up_refuses_a_foreign_non_empty_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster_module, "require_ceph_packages", lambda: None)
    (tmp_path / "precious.txt").write_text("user data")
    with pytest.raises(DevClusterError, match="not empty"):
        DevCluster(tmp_path).up()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "precious.txt"]


def test_missing_packages_name_the_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ceph", "rados", "monmaptool", "ceph-authtool"):  # no ceph-mon, ceph-osd
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BackendNotInstalledError) as info:
        DevCluster(tmp_path / "c").up()
    message = str(info.value)
    assert "ceph-mon, ceph-osd" in message and APT_INSTALL_LINE in message
    assert not (tmp_path / "c").exists()


# --- cephx and capabilities (session cluster) ------------------------------------------------


@pytest.mark.ceph
def test_wrong_key_is_refused_at_connect(ceph_cluster: DevCluster, tmp_path: Path) -> None:
    secret = subprocess.run(
        ["ceph-authtool", "--gen-print-key"], capture_output=True, text=True, check=True
    ).stdout.strip()
    keyring = tmp_path / "wrong.keyring"
    keyring.write_text(f"[client.skyhook]\n\tkey = {secret}\n")
    store = RadosStore.from_url(f"{ceph_cluster.url}&keyring={keyring}&timeout=10")
    with pytest.raises(StorePermissionError, match=r"refused client\.skyhook.*wrong key"):
        store.write("never", b"x")


@pytest.mark.ceph
def test_unknown_user_is_refused(ceph_cluster: DevCluster) -> None:
    store = RadosStore.from_url(ceph_cluster.url.replace("client.skyhook", "client.nobody"))
    with pytest.raises(StorePermissionError, match=r"client\.nobody"):
        store.stat("anything")


@pytest.mark.ceph
def test_client_may_not_touch_another_pool(ceph_cluster: DevCluster) -> None:
    pool = f"foreign{os.getpid()}"
    ceph_cluster.ceph("osd", "pool", "create", pool, "8", "8")
    try:
        url = ceph_cluster.url.replace("rados://skyhook", f"rados://{pool}")
        limited = RadosStore.from_url(url)
        with pytest.raises(StorePermissionError, match=f"client.skyhook may not write .*{pool}"):
            limited.write("x", b"1")
        with pytest.raises(StorePermissionError, match=pool):
            limited.exec("x", "hello", "say_hello", b"")
        # The pool itself works: the admin may write where client.skyhook may not.
        admin = RadosStore.from_url(url.replace("client.skyhook", "client.admin"))
        admin.write("x", b"1")
        assert admin.read("x") == b"1"
        with pytest.raises(StorePermissionError, match=pool):
            limited.read("x")
    finally:
        ceph_cluster.ceph("osd", "pool", "delete", pool, pool, "--yes-i-really-really-mean-it")


@pytest.mark.ceph
def test_caps_of_the_pool_user(ceph_cluster: DevCluster) -> None:
    caps = ceph_cluster.ceph("auth", "get", "client.skyhook")
    assert 'caps mon = "allow r"' in caps
    assert 'caps osd = "allow rwx pool=skyhook"' in caps


# --- linking Debian's binding into a venv ----------------------------------------------------


@pytest.fixture
def fake_python_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A fake Debian dist-packages and a fake venv site-packages; `rados` not importable."""
    dist, site = tmp_path / "dist-packages", tmp_path / "site-packages"
    dist.mkdir()
    site.mkdir()
    monkeypatch.setattr(link_rados, "DIST_PACKAGES", (dist,))
    monkeypatch.setattr(link_rados.sysconfig, "get_paths", lambda: {"platlib": str(site)})
    monkeypatch.setattr(link_rados, "rados_importable", lambda: False)
    return dist, site


def test_link_rados_links_the_matching_binding(
    fake_python_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    dist, site = fake_python_dirs
    suffix = link_rados.sysconfig.get_config_var("EXT_SUFFIX")
    (dist / "rados.cpython-39-x86_64-linux-gnu.so").write_bytes(b"")
    (dist / f"rados{suffix}").write_bytes(b"")
    answers = iter([False, True])  # not importable before the link, importable after
    monkeypatch.setattr(link_rados, "rados_importable", lambda: next(answers))
    linked = link_rados.link_rados()
    assert linked == site / f"rados{suffix}"
    assert linked.is_symlink() and linked.resolve() == (dist / f"rados{suffix}").resolve()


def test_link_rados_explains_a_python_mismatch(
    fake_python_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dist, site = fake_python_dirs
    (dist / "rados.cpython-39-x86_64-linux-gnu.so").write_bytes(b"")
    with pytest.raises(link_rados.LinkError, match="built for another Python"):
        link_rados.link_rados()
    assert link_rados.run(quiet=False) == 1
    assert "python3 -m venv" in capsys.readouterr().err
    assert link_rados.run(quiet=True) == 0  # bootstrap goes on, with a warning
    assert "warning" in capsys.readouterr().err
    assert list(site.iterdir()) == []


def test_link_rados_without_the_binding(
    fake_python_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(link_rados.LinkError, match="apt-get install -y python3-rados"):
        link_rados.link_rados()
    assert link_rados.main(["--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert link_rados.main([]) == 1
