"""Rook-Ceph documents for a cluster whose OSDs run the ``skyhook`` object class.

* ``rook-config-override`` (ConfigMap): ``osd class load list = *`` and
  ``osd class default list = *``, so the OSDs load classes beyond Ceph's own list.
* ``CephCluster``: every Ceph daemon runs ``ceph_image``, a Rook Ceph image with
  ``libcls_skyhook.so`` added in ``/usr/lib64/rados-classes`` (the class directory Rook pins for
  its CentOS-based images); docker/Dockerfile.osd builds it.
* ``CephBlockPool``: the replicated pool the datasets live in.
* ``CephClient``: ``client.skyhook``, allowed to read, write and call classes (``x``) in that
  pool only; Rook stores its key in the Secret ``rook-ceph-client-skyhook``.
"""

from __future__ import annotations

from typing import Any

ROOK_NAMESPACE = "rook-ceph"
# A Squid image on CentOS Stream 9 (glibc 2.34, the oldest the class and pyarrow's Arrow run on).
ROOK_BASE_IMAGE = "quay.io/ceph/ceph:v19.2.3"
DEFAULT_CEPH_IMAGE = "skyhook-ceph:v19.2.3"
OSD_CLASS_CONFIG = """\
[osd]
# Load every class found in osd class dir (/usr/lib64/rados-classes in Rook's images),
# the skyhook class included, and let clients call them.
osd class load list = *
osd class default list = *
"""


def _metadata(name: str, namespace: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "skyhook-dask"},
    }


def make_rook_documents(
    ceph_image: str = DEFAULT_CEPH_IMAGE,
    pool: str = "skyhook",
    client: str = "skyhook",
    replicas: int = 3,
    mons: int = 3,
    namespace: str = ROOK_NAMESPACE,
    data_dir_host_path: str = "/var/lib/rook",
) -> list[dict[str, Any]]:
    """The override ConfigMap, CephCluster, CephBlockPool and CephClient, in apply order."""
    override = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata("rook-config-override", namespace),
        "data": {"config": OSD_CLASS_CONFIG},
    }
    cluster = {
        "apiVersion": "ceph.rook.io/v1",
        "kind": "CephCluster",
        "metadata": _metadata(namespace, namespace),
        "spec": {
            "cephVersion": {"image": ceph_image, "allowUnsupported": False},
            "dataDirHostPath": data_dir_host_path,
            "mon": {"count": mons, "allowMultiplePerNode": False},
            "mgr": {"count": 2, "allowMultiplePerNode": False},
            "dashboard": {"enabled": True},
            "storage": {"useAllNodes": True, "useAllDevices": True},
        },
    }
    block_pool = {
        "apiVersion": "ceph.rook.io/v1",
        "kind": "CephBlockPool",
        "metadata": _metadata(pool, namespace),
        "spec": {
            "failureDomain": "host",
            "replicated": {"size": replicas, "requireSafeReplicaSize": replicas > 1},
            # Tags the pool as librados data, not RBD images.
            "application": "skyhook",
        },
    }
    ceph_client = {
        "apiVersion": "ceph.rook.io/v1",
        "kind": "CephClient",
        "metadata": _metadata(client, namespace),
        "spec": {"caps": {"mon": "allow r", "osd": f"allow rwx pool={pool}"}},
    }
    return [override, cluster, block_pool, ceph_client]
