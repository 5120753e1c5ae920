"""The Kubernetes documents of skyhook-dask as plain dicts: a client Pod, a DaskCluster and a
DaskJob (dask-kubernetes operator, ``kubernetes.dask.org/v1``), the PVC a job writes to, and the
ConfigMap + Secret holding ``ceph.conf`` and the ``client.skyhook`` keyring.

Pods run as the image's unprivileged user. Workers and job runners that use a ``rados://`` store
mount the Ceph configuration at ``/etc/ceph`` (one projected volume: the ConfigMap's
``ceph.conf`` beside the Secret's keyring) and get the store URL in ``$SKYHOOK_STORE``; workers
start with ``--preload skyhook_dask.k8s.preload``, which opens the store before their first task.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_IMAGE = "skyhook-dask:latest"
DEFAULT_POOL = "skyhook"
CEPH_DIR = "/etc/ceph"
CEPH_USER = "client.skyhook"
KEYRING_FILE = f"ceph.{CEPH_USER}.keyring"  # where librados looks for this user's keyring
DEFAULT_STORE = (
    f"rados://{DEFAULT_POOL}?conf={CEPH_DIR}/ceph.conf&name={CEPH_USER}"
    f"&keyring={CEPH_DIR}/{KEYRING_FILE}"
)
CEPH_CONFIGMAP = "skyhook-ceph-config"
CEPH_SECRET = "skyhook-ceph-keyring"
RESULTS_CLAIM = "skyhook-results"
RESULTS_DIR = "/results"
DEFAULT_QUERY = "select nMuon >= 2 and any(Muon_pt > 20), project event_id nMuon Muon_pt Muon_eta"
PRELOAD_MODULE = "skyhook_dask.k8s.preload"
IMAGE_UID = 1000  # the image's `skyhook` user
# Shown in the default ConfigMap/Secret: replace with the cluster's own (see k8s/README.md).
EXAMPLE_CEPH_CONF = (
    "[global]\n"
    "# the monitors: `ceph mon dump`, or Rook's rook-ceph-mon-endpoints ConfigMap\n"
    "mon_host = 10.0.0.11:6789,10.0.0.12:6789,10.0.0.13:6789\n"
)
EXAMPLE_KEYRING = f"[{CEPH_USER}]\n    key = REPLACE-WITH-THE-KEY-OF-{CEPH_USER}==\n"

_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": IMAGE_UID,
    "runAsGroup": IMAGE_UID,
    "fsGroup": IMAGE_UID,  # lets the user read the keyring, mounted 0440
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# --- building blocks ---------------------------------------------------------------------------


def _uses_ceph(store: str | None) -> bool:
    return bool(store) and str(store).startswith("rados://")


def _ceph_volume() -> dict[str, Any]:
    """ceph.conf (ConfigMap) and the keyring (Secret) side by side in one directory."""
    conf = {"name": CEPH_CONFIGMAP, "items": [{"key": "ceph.conf", "path": "ceph.conf"}]}
    keyring = {"name": CEPH_SECRET, "items": [{"key": "keyring", "path": KEYRING_FILE}]}
    return {
        "name": "ceph-config",
        "projected": {"defaultMode": 0o440, "sources": [{"configMap": conf}, {"secret": keyring}]},
    }


def _container(
    name: str,
    image: str,
    args: Sequence[str],
    *,
    store: str | None = None,
    mounts: Sequence[Mapping[str, Any]] = (),
    ports: Mapping[str, int] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": list(args),
    }
    if store:
        container["env"] = [{"name": "SKYHOOK_STORE", "value": store}]
    volume_mounts = [dict(m) for m in mounts]
    if _uses_ceph(store):
        volume_mounts.insert(0, {"name": "ceph-config", "mountPath": CEPH_DIR, "readOnly": True})
    if volume_mounts:
        container["volumeMounts"] = volume_mounts
    if ports:
        container["ports"] = [
            {"name": port_name, "containerPort": number, "protocol": "TCP"}
            for port_name, number in ports.items()
        ]
    if resources:
        container["resources"] = dict(resources)
    container["securityContext"] = copy.deepcopy(_CONTAINER_SECURITY)
    return container


def _pod_spec(
    containers: Sequence[dict[str, Any]],
    *,
    volumes: Sequence[Mapping[str, Any]] = (),
    restart_policy: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    spec["securityContext"] = copy.deepcopy(_POD_SECURITY)
    spec["containers"] = list(containers)
    all_volumes = [dict(v) for v in volumes]
    if any(_mounts(c, "ceph-config") for c in containers):
        all_volumes.insert(0, _ceph_volume())
    if all_volumes:
        spec["volumes"] = all_volumes
    return spec


def _beside_osds(cluster_name: str) -> dict[str, Any]:
    """Workers spread one per node, preferring nodes that run a Rook OSD."""
    workers = {"dask.org/cluster-name": cluster_name, "dask.org/component": "worker"}
    hostname = "kubernetes.io/hostname"
    osd_pods = {"labelSelector": {"matchLabels": {"app": "rook-ceph-osd"}},
                "topologyKey": hostname, "namespaces": ["rook-ceph"]}  # fmt: skip
    return {
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": hostname, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": workers},
        }],
        "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": osd_pods},
        ]}},
    }  # fmt: skip


def _mounts(container: Mapping[str, Any], volume: str) -> bool:
    return any(m["name"] == volume for m in container.get("volumeMounts", ()))


def _metadata(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/part-of": "skyhook-dask", **labels}
    return meta


def _worker_resources(threads: int, memory: str) -> dict[str, Any]:
    return {"requests": {"cpu": str(threads), "memory": memory}, "limits": {"memory": memory}}


# --- documents ---------------------------------------------------------------------------------


def make_pod_spec(
    name: str = "skyhook-client",
    image: str = DEFAULT_IMAGE,
    args: Sequence[str] = ("skyhook", "demo"),
    store: str | None = None,
) -> dict[str, Any]:
    """A Pod that runs ``args`` once in the image (a script path, ``skyhook ...``, ...).

    With a ``store`` it gets ``$SKYHOOK_STORE`` (and the Ceph configuration for ``rados://``);
    without one it uses the container's embedded store.
    """
    container = _container("skyhook-client", image, args, store=store)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(name),
        "spec": _pod_spec([container], restart_policy="Never"),
    }


def _cluster_body(
    cluster_name: str, image: str, store: str, workers: int, threads: int, memory: str
) -> dict[str, Any]:
    """``spec`` of a DaskCluster (also ``spec.cluster.spec`` of a DaskJob)."""
    worker_args = [
        "dask", "worker",
        "--name", "$(DASK_WORKER_NAME)",
        "--nthreads", str(threads),
        "--dashboard", "--dashboard-address", "8788",
        "--preload", PRELOAD_MODULE,
    ]  # fmt: skip
    worker = _container(
        "worker",
        image,
        worker_args,
        store=store,
        ports={"http-dashboard": 8788},
        resources=_worker_resources(threads, memory),
    )
    # The node's name is the CRUSH host of a Rook OSD on it: object tasks then run beside
    # their primary OSD (skyhook_dask.runtime.locality).
    node_name = {"fieldRef": {"fieldPath": "spec.nodeName"}}
    worker.setdefault("env", []).append({"name": "SKYHOOK_OSD_HOST", "valueFrom": node_name})
    scheduler = _container(
        "scheduler",
        image,
        ["dask", "scheduler", "--host", "0.0.0.0"],
        ports={"tcp-comm": 8786, "http-dashboard": 8787},
    )
    health = {"httpGet": {"port": "http-dashboard", "path": "/health"}}
    scheduler["readinessProbe"] = {**health, "initialDelaySeconds": 0, "periodSeconds": 1}
    scheduler["livenessProbe"] = {**health, "initialDelaySeconds": 15, "periodSeconds": 20}
    service_ports = [
        {"name": port_name, "protocol": "TCP", "port": number, "targetPort": port_name}
        for port_name, number in (("tcp-comm", 8786), ("http-dashboard", 8787))
    ]
    return {
        "worker": {
            "replicas": workers,
            "spec": {**_pod_spec([worker]), **_beside_osds(cluster_name)},
        },
        "scheduler": {
            "spec": _pod_spec([scheduler]),
            "service": {
                "type": "ClusterIP",
                "selector": {
                    "dask.org/cluster-name": cluster_name,
                    "dask.org/component": "scheduler",
                },
                "ports": service_ports,
            },
        },
    }


def make_cluster_spec(
    name: str = "skyhook",
    image: str = DEFAULT_IMAGE,
    store: str = DEFAULT_STORE,
    workers: int = 2,
    threads: int = 2,
    memory: str = "4Gi",
    idle_timeout: int = 0,
) -> dict[str, Any]:
    """A ``DaskCluster`` (dask-kubernetes operator) whose workers hold a connection to ``store``."""
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": _metadata(name),
        "spec": {
            "idleTimeout": idle_timeout,
            **_cluster_body(name, image, store, workers, threads, memory),
        },
    }


def make_results_claim(name: str = RESULTS_CLAIM, size: str = "1Gi") -> dict[str, Any]:
    """The PersistentVolumeClaim a batch job writes its results to."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(name),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def make_job_spec(
    name: str = "skyhook-analysis",
    image: str = DEFAULT_IMAGE,
    store: str = DEFAULT_STORE,
    inputs: Sequence[str] = (),
    dataset: str = "analysis",
    query: str = DEFAULT_QUERY,
    output: str = f"{RESULTS_DIR}/result.parquet",
    results_claim: str = RESULTS_CLAIM,
    workers: int = 2,
    threads: int = 2,
    memory: str = "4Gi",
) -> dict[str, Any]:
    """A ``DaskJob``: ingest ``inputs`` (default: a bundled sample) as ``dataset`` on its own
    Dask cluster, run ``query`` and write the result to ``output`` on the ``results_claim`` PVC."""
    args = ["skyhook", "k8s", "run-batch", "--dataset", dataset, "--query", query]
    args += ["--output", output, *inputs]
    results = {"name": "results", "mountPath": RESULTS_DIR}
    job = _container("job", image, args, store=store, mounts=[results])
    claim = {"name": "results", "persistentVolumeClaim": {"claimName": results_claim}}
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": _metadata(name),
        "spec": {
            "job": {"spec": _pod_spec([job], volumes=[claim], restart_policy="Never")},
            "cluster": {"spec": _cluster_body(name, image, store, workers, threads, memory)},
        },
    }


def make_ceph_config(
    conf_text: str = EXAMPLE_CEPH_CONF, keyring_text: str = EXAMPLE_KEYRING
) -> list[dict[str, Any]]:
    """The ConfigMap (``ceph.conf``) and Secret (``keyring``) the pods mount at /etc/ceph."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(CEPH_CONFIGMAP),
            "data": {"ceph.conf": conf_text},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(CEPH_SECRET),
            "type": "Opaque",
            "stringData": {"keyring": keyring_text},
        },
    ]
