"""What ``skyhook k8s run-local`` runs: rendered manifests turned into container runs.

The dask-kubernetes operator makes, for a ``DaskCluster``, one scheduler pod and
``worker.replicas`` worker pods, and for a ``DaskJob`` that cluster plus the job's pod. It gives
each worker ``DASK_WORKER_NAME`` and ``DASK_SCHEDULER_ADDRESS`` (the scheduler's service, here
``tcp://127.0.0.1:PORT`` on the host network) and the job ``DASK_SCHEDULER_ADDRESS``. This
module reads the documents (ConfigMap, Secret, PersistentVolumeClaim, DaskCluster, DaskJob,
Pod) and plans those containers: image, command, args (``$(VAR)`` expanded as Kubernetes
does), env, user and groups, security context and volumes. Every field it cannot honour is
listed in :attr:`LocalPlan.unhonoured`; a document it cannot run (unknown kind, a volume of an
unknown type, a missing ConfigMap, Secret or key) is a :class:`ManifestError` -- all before any
container starts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .local_pods import Container, LocalPlan, ManifestError, PodPlanner, ProjectedFile

__all__ = [
    "Container",
    "LocalPlan",
    "ManifestError",
    "ProjectedFile",
    "load_documents",
    "plan_documents",
]

KINDS = ("ConfigMap", "Secret", "PersistentVolumeClaim", "DaskCluster", "DaskJob", "Pod")
SCHEDULER_PORT = 8786  # dask scheduler's default; ``--port N`` in its args changes it


def load_documents(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    documents = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
        try:
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path} is not YAML: {exc}") from None
        for number, document in enumerate(loaded, 1):
            if not isinstance(document, dict) or "kind" not in document:
                raise ManifestError(f"{path}: document {number} has no kind")
            documents.append(document)
    return documents


def plan_documents(documents: list[dict[str, Any]]) -> LocalPlan:
    """The containers and volumes that run ``documents``, checked whole."""
    sources: dict[tuple[str, str], dict[str, bytes]] = {}
    claims: set[str] = set()
    workloads = []
    for document in documents:
        kind, name = document["kind"], _name(document)
        if kind not in KINDS:
            raise ManifestError(f"{kind} {name!r}: run-local runs {', '.join(KINDS)}")
        if kind == "ConfigMap":
            sources[kind, name] = {
                k: str(v).encode() for k, v in (document.get("data") or {}).items()
            }
        elif kind == "Secret":
            sources[kind, name] = _secret_data(document, name)
        elif kind == "PersistentVolumeClaim":
            claims.add(name)
        else:
            workloads.append(document)
    if not workloads:
        raise ManifestError("no DaskCluster, DaskJob or Pod to run")
    if sum(d["kind"] in ("DaskCluster", "DaskJob") for d in workloads) > 1:
        raise ManifestError("run-local runs one DaskCluster or DaskJob at a time")
    plan = LocalPlan()
    context = PodPlanner(plan, sources, claims)
    for document in workloads:
        kind, name, spec = document["kind"], _name(document), document.get("spec") or {}
        where = f"{kind}/{name}"
        if kind == "Pod":
            plan.runs_to_completion = True
            context.add_pod(spec, name, "pod", f"{where}: spec", {})
            continue
        cluster = spec if kind == "DaskCluster" else _at(spec, "cluster", "spec", where=where)
        _cluster(
            context,
            cluster,
            name,
            f"{where}: " + ("spec" if kind == "DaskCluster" else "cluster.spec"),
        )
        if kind == "DaskJob":
            plan.runs_to_completion = True
            job = _at(spec, "job", "spec", where=where)
            address = {"DASK_SCHEDULER_ADDRESS": f"tcp://127.0.0.1:{plan.scheduler_port}"}
            context.add_pod(job, f"{name}-runner", "job", f"{where}: job.spec", address)
    return plan


def _cluster(context: PodPlanner, spec: Mapping[str, Any], name: str, where: str) -> None:
    scheduler = _at(spec, "scheduler", "spec", where=where)
    context.note(where, spec.get("scheduler", {}), {"spec", "service"}, "scheduler")
    if "service" in spec.get("scheduler", {}):
        context.report(
            f"{where}.scheduler.service: the scheduler listens on the host network instead"
        )
    container = context.add_pod(
        scheduler, f"{name}-scheduler", "scheduler", f"{where}.scheduler.spec", {}
    )
    port = _option(container.command or [], container.args, "--port")
    context.plan.scheduler_port = int(port) if port else SCHEDULER_PORT
    worker = spec.get("worker") or {}
    context.note(where, worker, {"spec", "replicas"}, "worker")
    replicas = int(worker.get("replicas", 1))
    worker_spec = _at(spec, "worker", "spec", where=where)
    for number in range(replicas):
        worker_name = f"{name}-default-worker-{number}"
        env = {
            "DASK_WORKER_NAME": worker_name,
            "DASK_SCHEDULER_ADDRESS": f"tcp://127.0.0.1:{context.plan.scheduler_port}",
        }
        context.add_pod(worker_spec, worker_name, "worker", f"{where}.worker.spec", env)


def _name(document: Mapping[str, Any]) -> str:
    return str((document.get("metadata") or {}).get("name") or "unnamed")


def _at(spec: Mapping[str, Any], *keys: str, where: str) -> Mapping[str, Any]:
    value: Any = spec
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            raise ManifestError(f"{where}: {'.'.join(keys)} is missing")
    return value


def _secret_data(document: Mapping[str, Any], name: str) -> dict[str, bytes]:
    data = {}
    for key, value in (document.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(str(value), validate=True)
        except ValueError:
            raise ManifestError(f"Secret {name!r}: data.{key} is not base64") from None
    data.update({k: str(v).encode() for k, v in (document.get("stringData") or {}).items()})
    return data


def _option(command: list[str], args: list[str], flag: str) -> str | None:
    words = [*command, *args]
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None
