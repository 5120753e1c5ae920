"""One pod spec of a rendered manifest as the containers ``skyhook k8s run-local`` starts:
image, command, args (``$(VAR)`` expanded as Kubernetes does), env, user and groups, the
security context as engine options, and the files of its ConfigMap and Secret volumes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import SkyhookError

__all__ = ["Container", "LocalPlan", "ManifestError", "PodPlanner", "ProjectedFile"]

HONOURED_POD = {"containers", "volumes", "securityContext", "restartPolicy"}
HONOURED_CONTAINER = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "volumeMounts",
    "securityContext", "resources", "ports", "workingDir",
}  # fmt: skip
HONOURED_SECURITY = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups",
    "seccompProfile", "allowPrivilegeEscalation", "capabilities", "readOnlyRootFilesystem",
}  # fmt: skip
PULL = {"IfNotPresent": "missing", "Never": "never", "Always": "always"}


class ManifestError(SkyhookError, ValueError):
    """A manifest run-local cannot run; the message names the document and the field."""


@dataclass(frozen=True)
class ProjectedFile:
    """A file of a ConfigMap/Secret volume: written under the pod's volume folder."""

    pod: str
    volume: str
    path: str
    content: bytes
    mode: int
    group: int | None  # the pod's fsGroup: the file's group, as the kubelet sets it


@dataclass
class Container:
    """One container to run: what the operator's pod would run, on the host network."""

    name: str  # the pod's name (workers numbered)
    role: str  # "scheduler", "worker", "job" or "pod"
    image: str
    command: list[str] | None  # replaces the image's entry point
    args: list[str]
    env: dict[str, str]
    user: str | None  # "uid:gid"
    groups: list[int]
    mounts: list[tuple[str, str, str, bool]]  # (volume key, subPath, container path, read-only)
    options: list[str]  # engine options from the security context and limits
    pull: str


@dataclass
class LocalPlan:
    """Containers in start order, the files of their volumes, and what is not honoured."""

    containers: list[Container] = field(default_factory=list)
    files: list[ProjectedFile] = field(default_factory=list)
    claims: dict[str, int | None] = field(default_factory=dict)  # claim name -> fsGroup
    empty_dirs: set[str] = field(default_factory=set)  # "pod/volume" keys
    unhonoured: list[str] = field(default_factory=list)
    scheduler_port: int | None = None
    runs_to_completion: bool = False  # a job or a pod: its exit status is the run's


class PodPlanner:
    """Adds pods to a plan, with the documents' ConfigMaps, Secrets and claims at hand."""

    def __init__(
        self, plan: LocalPlan, sources: dict[tuple[str, str], dict[str, bytes]], claims: set[str]
    ) -> None:
        self.plan, self.sources, self.claims = plan, sources, claims

    def note(self, where: str, spec: Mapping[str, Any], honoured: set[str], path: str) -> None:
        """Report the keys of ``spec`` (at ``where``.``path``) that run-local does not honour."""
        for key in sorted(set(spec) - honoured):
            self.report(f"{where}.{path}.{key}" if path else f"{where}.{key}")

    def report(self, line: str) -> None:
        if line not in self.plan.unhonoured:  # once, not once per worker
            self.plan.unhonoured.append(line)

    def add_pod(
        self, spec: Mapping[str, Any], pod: str, role: str, where: str, operator_env: dict[str, str]
    ) -> Container:
        self.note(where, spec, HONOURED_POD, "")
        pod_security = spec.get("securityContext") or {}
        self.note(where, pod_security, HONOURED_SECURITY, "securityContext")
        volumes = {v["name"]: self._volume(v, pod, pod_security, f"{where}.volumes[{v['name']}]")
                   for v in spec.get("volumes") or []}  # fmt: skip
        containers = spec.get("containers") or []
        if not containers:
            raise ManifestError(f"{where}: no containers")
        added = []
        for item in containers:
            cname = item.get("name", "")
            at = f"{where}.containers[{cname}]"
            if not item.get("image"):
                raise ManifestError(f"{at}: no image")
            self.note(at, item, HONOURED_CONTAINER, "")
            env = {**self._env(item.get("env") or [], pod, at), **operator_env}
            name = pod if len(containers) == 1 else f"{pod}-{cname}"
            container = Container(
                name=name,
                role=role,
                image=str(item["image"]),
                command=[_expand(str(a), env) for a in item["command"]]
                if "command" in item
                else None,
                args=[_expand(str(a), env) for a in item.get("args") or []],
                env=env,
                user=None,
                groups=[],
                mounts=[],
                options=["--workdir", str(item["workingDir"])] if "workingDir" in item else [],
                pull=PULL.get(
                    item.get("imagePullPolicy") or _default_pull(str(item["image"])), "missing"
                ),
            )
            self._security(container, pod_security, item.get("securityContext") or {}, at)
            self._resources(container, item.get("resources") or {}, at)
            for mount in item.get("volumeMounts") or []:
                if mount.get("name") not in volumes:
                    raise ManifestError(f"{at}.volumeMounts: no volume named {mount.get('name')!r}")
                self.note(
                    at,
                    mount,
                    {"name", "mountPath", "readOnly", "subPath"},
                    f"volumeMounts[{mount['name']}]",
                )
                key, read_only = volumes[mount["name"]]
                read_only = read_only or bool(mount.get("readOnly"))
                sub_path = str(mount.get("subPath") or "")
                container.mounts.append((key, sub_path, str(mount["mountPath"]), read_only))
            self.plan.containers.append(container)
            added.append(container)
        return added[0]

    def _security(
        self, container: Container, pod: Mapping[str, Any], own: Mapping[str, Any], where: str
    ) -> None:
        self.note(
            where, own, HONOURED_SECURITY - {"fsGroup", "supplementalGroups"}, "securityContext"
        )
        merged = {**pod, **own}
        uid, gid = merged.get("runAsUser"), merged.get("runAsGroup")
        if merged.get("runAsNonRoot"):
            if uid == 0:
                raise ManifestError(f"{where}: runAsNonRoot with runAsUser 0 would not start")
            if uid is None:
                self.report(f"{where}: runAsNonRoot without runAsUser is not checked")
        if uid is not None:
            container.user = f"{uid}:{gid}" if gid is not None else str(uid)
        container.groups = [
            int(g)
            for g in [pod.get("fsGroup"), *(pod.get("supplementalGroups") or [])]
            if g is not None
        ]
        profile = (merged.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if profile == "Unconfined":
            container.options += ["--security-opt", "seccomp=unconfined"]
        elif profile != "RuntimeDefault":
            self.report(f"{where}: seccompProfile {profile}")
        if merged.get("allowPrivilegeEscalation") is False:
            container.options += ["--security-opt", "no-new-privileges"]
        capabilities = merged.get("capabilities") or {}
        container.options += [
            o for c in capabilities.get("drop") or [] for o in ("--cap-drop", str(c))
        ]
        container.options += [
            o for c in capabilities.get("add") or [] for o in ("--cap-add", str(c))
        ]
        if merged.get("readOnlyRootFilesystem"):
            container.options.append("--read-only")

    def _resources(self, container: Container, resources: Mapping[str, Any], where: str) -> None:
        limits = resources.get("limits") or {}
        if "memory" in limits:
            container.options += ["--memory", str(_bytes(str(limits["memory"]), where))]
        if "cpu" in limits:
            cpu = str(limits["cpu"])
            container.options += [
                "--cpus",
                str(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)),
            ]
        self.note(where, resources, {"limits"}, "resources")
        self.note(where, limits, {"memory", "cpu"}, "resources.limits")

    def _env(self, entries: list[Mapping[str, Any]], pod: str, where: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in entries:
            name = str(entry["name"])
            if "valueFrom" not in entry:
                env[name] = _expand(str(entry.get("value", "")), env)
                continue
            source = entry["valueFrom"]
            field_path = (source.get("fieldRef") or {}).get("fieldPath")
            if field_path in ("metadata.name", "metadata.namespace"):
                env[name] = pod if field_path == "metadata.name" else "default"
            elif field_path == "spec.nodeName":  # every container runs on this one machine
                env[name] = socket.gethostname().split(".")[0]
            elif "configMapKeyRef" in source or "secretKeyRef" in source:
                kind = "ConfigMap" if "configMapKeyRef" in source else "Secret"
                ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
                env[name] = self._data(kind, ref["name"], f"{where}.env[{name}]")[
                    ref["key"]
                ].decode()
            else:
                self.report(f"{where}.env[{name}].valueFrom")
        return env

    def _data(self, kind: str, name: str, where: str) -> dict[str, bytes]:
        if (kind, name) not in self.sources:
            raise ManifestError(f"{where}: {kind} {name!r} is not among the documents given")
        return self.sources[kind, name]

    def _volume(
        self, volume: Mapping[str, Any], pod: str, security: Mapping[str, Any], where: str
    ) -> tuple[str, bool]:
        """(the volume's key, read-only) after planning its files."""
        name, group = str(volume["name"]), security.get("fsGroup")
        key = f"pods/{pod}/{name}"
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            if claim.get("claimName") not in self.claims:
                missing = claim.get("claimName")
                raise ManifestError(
                    f"{where}: PersistentVolumeClaim {missing!r} is not among the documents given"
                )
            self.plan.claims[claim["claimName"]] = group
            return f"claims/{claim['claimName']}", bool(claim.get("readOnly"))
        if "emptyDir" in volume:
            self.plan.empty_dirs.add(key)
            return key, False
        if "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            parts = volume["projected"].get("sources") or []
        elif "configMap" in volume or "secret" in volume:
            source = dict(volume.get("configMap") or volume.get("secret") or {})
            if "secretName" in source:
                source["name"] = source.pop("secretName")
            mode = source.get("defaultMode", 0o644)
            parts = [{"configMap" if "configMap" in volume else "secret": source}]
        else:
            kinds = ", ".join(k for k in volume if k != "name")
            raise ManifestError(f"{where}: run-local cannot make a {kinds} volume")
        for part in parts:
            for kind_key, source in part.items():
                kind = {"configMap": "ConfigMap", "secret": "Secret"}.get(kind_key)
                if kind is None:
                    raise ManifestError(f"{where}: run-local cannot project {kind_key}")
                if source.get("optional") and (kind, source["name"]) not in self.sources:
                    continue
                data = self._data(kind, source["name"], where)
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        raise ManifestError(
                            f"{where}: {kind} {source['name']!r} has no key {item['key']!r}"
                        )
                    self.plan.files.append(
                        ProjectedFile(
                            pod,
                            name,
                            str(item["path"]),
                            data[item["key"]],
                            int(item.get("mode", source.get("defaultMode", mode))),
                            group,
                        )
                    )
        return key, True  # the kubelet mounts ConfigMap and Secret volumes read-only


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)``: a defined variable's value; ``$$`` is ``$``; else unchanged."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, text)


def _default_pull(image: str) -> str:
    tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    return "IfNotPresent" if tagged or "@" in image else "Always"


_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
          "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}  # fmt: skip


def _bytes(quantity: str, where: str) -> int:
    for suffix, factor in _UNITS.items():
        if quantity.endswith(suffix) and quantity[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(quantity[: -len(suffix)]) * factor)
    if quantity.isdigit():
        return int(quantity)
    raise ManifestError(f"{where}: memory {quantity!r} is not a Kubernetes quantity")
