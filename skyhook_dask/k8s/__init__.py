"""Run skyhook-dask on Kubernetes: manifests rendered from Python, a worker preload, a batch job,
and the rendered documents run on this machine first.

``render(kind, **params)`` returns the YAML of one of :data:`KINDS` (``skyhook k8s render KIND``
on the command line); the committed ``k8s/*.yaml`` files are ``render(kind)`` with the default
parameters. The ``make_*`` functions return the documents as dicts. ``skyhook k8s run-local``
(:mod:`.local_plan`, :mod:`.local_pods`, :mod:`.local_run`) runs a rendered DaskJob's
containers with podman or docker, as the dask-kubernetes operator would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .commands import add_k8s_commands
from .manifests import (
    DEFAULT_IMAGE,
    DEFAULT_STORE,
    RESULTS_CLAIM,
    make_ceph_config,
    make_cluster_spec,
    make_job_spec,
    make_pod_spec,
    make_results_claim,
)
from .rook import make_rook_documents

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_STORE",
    "FILES",
    "KINDS",
    "add_k8s_commands",
    "documents",
    "make_ceph_config",
    "make_cluster_spec",
    "make_job_spec",
    "make_pod_spec",
    "make_results_claim",
    "make_rook_documents",
    "render",
    "write_manifests",
]


# kind -> (what its file holds, the function building its document or documents)
KINDS: dict[str, tuple[str, Callable[..., Any]]] = {
    "pod": ("a Pod running one command in the image", make_pod_spec),
    "ceph-config": ("ConfigMap + Secret: ceph.conf and the client keyring", make_ceph_config),
    "cluster": ("a DaskCluster whose workers hold the store", make_cluster_spec),
    "job": ("a PVC and a DaskJob running ingest + query", make_job_spec),
    "rook": ("Rook-Ceph: class config, CephCluster, pool, client", make_rook_documents),
}
# kind -> its file in the repository's k8s/ directory
FILES = {
    "pod": "pod.yaml",
    "ceph-config": "ceph-config.yaml",
    "cluster": "daskcluster.yaml",
    "job": "daskjob.yaml",
    "rook": "rook-ceph.yaml",
}


def documents(kind: str, **params: Any) -> list[dict[str, Any]]:
    """The documents of ``kind`` (one of :data:`KINDS`) built with ``params``."""
    try:
        _, make = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown manifest kind {kind!r}; kinds: {', '.join(KINDS)}") from None
    built = make(**params)
    docs = list(built) if isinstance(built, list) else [built]
    if kind == "job":  # the claim the job writes to comes first
        docs.insert(0, make_results_claim(params.get("results_claim", RESULTS_CLAIM)))
    return docs


def render(kind: str, **params: Any) -> str:
    """The documents of ``kind`` as multi-document YAML, keys in the order they were built."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # repeated parts written out in full, no &anchors

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # Multi-line strings (ceph.conf, keyrings) as literal blocks, readable in the file.
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    docs = documents(kind, **params)
    header = f"# Rendered by `skyhook k8s render {kind}`: {KINDS[kind][0]}.\n"
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=100)
    return header + body


def write_manifests(directory: str | Path) -> list[Path]:
    """Write every kind, with default parameters, to its file in ``directory`` (k8s/)."""
    written = []
    for kind, name in FILES.items():
        path = Path(directory) / name
        path.write_text(render(kind))
        written.append(path)
    return written
