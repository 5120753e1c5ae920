"""Creating a dev cluster: keyrings, the monitor's map and store, each OSD's bluestore, the pool.

The steps :meth:`skyhook_dask.ceph.cluster.DevCluster.up` runs once, on an empty directory.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .daemons import run_command

if TYPE_CHECKING:
    from .cluster import DevCluster

MON = "mon.a"


def bootstrap(cluster: DevCluster, state: dict[str, Any]) -> None:
    """Keyrings, the monitor, every OSD and the pool of a new cluster, until it accepts writes."""
    conf, monmap = str(cluster.conf_path), str(cluster.dir / "monmap")
    _make_keyrings(cluster)
    mon_v2, mon_v1 = state["mon_ports"]
    addr = f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]"
    run_command(["monmaptool", "--create", "--clobber", "--addv", MON.split(".")[1], addr,
                 "--fsid", state["fsid"], monmap], what="monmaptool")  # fmt: skip
    run_command(["ceph-mon", "--mkfs", "-i", MON.split(".")[1], "--monmap", monmap,
                 "--keyring", str(cluster.dir / "keyring.mon"), "-c", conf],
                what="ceph-mon --mkfs")  # fmt: skip
    cluster.start_daemon(MON)
    # every OSD's mkfs at once: each takes seconds, mostly waiting
    with ThreadPoolExecutor(len(cluster.osd_names), thread_name_prefix="skyhook-mkfs") as pool:
        made = [pool.submit(create_osd, cluster, i, u, monmap)
                for i, u in zip(state["osd_ids"], state["osd_uuids"], strict=True)]  # fmt: skip
        for future in made:
            future.result()
    for name in cluster.osd_names:
        cluster.start_daemon(name)
    pgs = str(state["pg_num"])
    cluster.ceph("osd", "pool", "create", cluster.pool, pgs, pgs)  # size, min_size: ceph.conf
    cluster.ceph("osd", "pool", "application", "enable", cluster.pool, "skyhook")
    cluster.ceph("health", "mute", "MGR_DOWN", "--sticky")  # there is no manager, by design
    cluster.wait_ready()


def _authtool(*args: str) -> str:
    return run_command(["ceph-authtool", *args], what="ceph-authtool")


def _make_keyrings(cluster: DevCluster) -> None:
    mon_keyring = str(cluster.dir / "keyring.mon")
    _authtool("--create-keyring", mon_keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
    admin_caps = [arg for svc in ("mon", "osd", "mgr", "mds") for arg in ("--cap", svc, "allow *")]
    admin = str(cluster.admin_keyring_path)
    _authtool("--create-keyring", admin, "--gen-key", "-n", "client.admin", *admin_caps)
    # Least privilege: read the cluster maps; read, write and call classes in one pool.
    _authtool("--create-keyring", str(cluster.keyring_path), "--gen-key",
              "-n", f"client.{cluster.user}", "--cap", "mon", "allow r",
              "--cap", "osd", f"allow rwx pool={cluster.pool}")  # fmt: skip
    for keyring in (cluster.admin_keyring_path, cluster.keyring_path):
        _authtool(mon_keyring, "--import-keyring", str(keyring))
        keyring.chmod(0o600)


def create_osd(cluster: DevCluster, number: int, osd_uuid: str, monmap: str) -> None:
    """A new OSD ``number`` (or a destroyed one's id again): its key, entry and bluestore."""
    osd_id = str(number)
    secret = _authtool("--gen-print-key").strip()
    cluster.ceph("osd", "new", osd_uuid, osd_id, "-i", "-",
                 stdin=json.dumps({"cephx_secret": secret}))  # fmt: skip
    data = cluster.dir / "osd" / f"ceph-{osd_id}"
    data.mkdir(parents=True, exist_ok=True)
    keyring = str(data / "keyring")
    _authtool("--create-keyring", keyring, "--name", f"osd.{osd_id}", "--add-key", secret)
    run_command(["ceph-osd", "--mkfs", "-i", osd_id, "--osd-uuid", osd_uuid,
                 "--monmap", monmap, "-c", str(cluster.conf_path)],
                what="ceph-osd --mkfs", timeout=120)  # fmt: skip
