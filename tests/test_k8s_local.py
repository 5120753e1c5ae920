"""``skyhook k8s run-local``: rendered manifests planned as the dask-kubernetes operator would run
them (fast, everywhere), and (marked ``container``) run for real with podman against the Ceph
dev cluster: the DaskJob's Parquet equals the same query run here and uproot, also when a
worker container is killed mid-job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot
import yaml
from container_support import podman

from skyhook_dask import SkyhookDM
from skyhook_dask.data import sample_path
from skyhook_dask.k8s import render
from skyhook_dask.k8s.local_plan import ManifestError, load_documents, plan_documents
from skyhook_dask.k8s.manifests import DEFAULT_QUERY

REPO = Path(__file__).resolve().parent.parent
CEPH_CONFIG, JOB = REPO / "k8s" / "ceph-config.yaml", REPO / "k8s" / "daskjob.yaml"


def _plan(*documents: Any) -> Any:
    return plan_documents([d for group in documents for d in group])


def _docs(path: Path) -> list[dict[str, Any]]:
    return load_documents([path])


def test_a_daskjob_is_planned_as_the_operator_runs_it() -> None:
    plan = _plan(_docs(CEPH_CONFIG), _docs(JOB))
    roles = [(c.role, c.name) for c in plan.containers]
    assert roles == [
        ("scheduler", "skyhook-analysis-scheduler"),
        ("worker", "skyhook-analysis-default-worker-0"),
        ("worker", "skyhook-analysis-default-worker-1"),
        ("job", "skyhook-analysis-runner"),
    ]
    scheduler, worker, _, job = plan.containers
    assert plan.scheduler_port == 8786 and plan.runs_to_completion
    assert worker.args[:3] == ["dask", "worker", "--name"]
    assert worker.args[3] == "skyhook-analysis-default-worker-0"  # $(DASK_WORKER_NAME) expanded
    assert worker.env["DASK_SCHEDULER_ADDRESS"] == job.env["DASK_SCHEDULER_ADDRESS"]
    assert job.env["DASK_SCHEDULER_ADDRESS"] == "tcp://127.0.0.1:8786"
    assert job.env["SKYHOOK_STORE"].startswith("rados://")
    assert "DASK_SCHEDULER_ADDRESS" not in scheduler.env
    for container in plan.containers:
        assert container.user == "1000:1000" and container.groups == [1000]
        assert container.pull == "missing"  # IfNotPresent
        assert container.options[2:4] == ["--cap-drop", "ALL"]
        assert container.options[:2] == ["--security-opt", "no-new-privileges"]
    assert worker.options[-2:] == ["--memory", str(4 << 30)]
    keyrings = [f for f in plan.files if f.path == "ceph.client.skyhook.keyring"]
    assert len(keyrings) == 3 and {(f.mode, f.group) for f in keyrings} == {(0o440, 1000)}
    assert keyrings[0].content.startswith(b"[client.skyhook]")
    assert ("claims/skyhook-results", "", "/results", False) in job.mounts
    assert (f"pods/{job.name}/ceph-config", "", "/etc/ceph", True) in job.mounts
    assert plan.claims == {"skyhook-results": 1000}
    # reported, once each, not silently ignored
    assert any(u.endswith("scheduler.spec.containers[scheduler].livenessProbe")
               for u in plan.unhonoured)  # fmt: skip
    assert sum(u.endswith("containers[worker].resources.requests") for u in plan.unhonoured) == 1
    assert any("scheduler.service" in u for u in plan.unhonoured)


def test_env_references_secrets_and_pod_fields() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{
                "name": "c", "image": "img:1", "command": ["sh", "-c"],
                "args": ["echo $(A) $$(A) $(MISSING) $(NAME)"],
                "env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-b"},
                        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        {"name": "R", "valueFrom": {"resourceFieldRef": {"resource": "cpu"}}}],
                "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
            }],
            "initContainers": [],
        },
    }  # fmt: skip
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}
    plan = plan_documents([secret, pod])
    (container,) = plan.containers
    assert container.command == ["sh", "-c"] and container.pull == "missing"
    assert container.args == ["echo x $(A) $(MISSING) p"]
    assert container.env == {"A": "x", "B": "x-b", "NAME": "p", "K": "secret"}
    assert container.options == ["--memory", str(512 << 20), "--cpus", "0.5"]
    assert "Pod/p: spec.containers[c].env[R].valueFrom" in plan.unhonoured
    assert "Pod/p: spec.initContainers" in plan.unhonoured
    latest = plan_documents([{**pod, "spec": {"containers": [{"name": "c", "image": "i"}]}}])
    assert latest.containers[0].pull == "always"  # untagged: Kubernetes' default is Always


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.append({"kind": "Deployment", "metadata": {"name": "d"}}),
         "Deployment 'd': run-local runs ConfigMap"),
        (lambda d: d.pop(0), "ConfigMap 'skyhook-ceph-config' is not among the documents"),
        (lambda d: d.pop(1), "Secret 'skyhook-ceph-keyring' is not among the documents"),
        (lambda d: d.pop(2), "PersistentVolumeClaim 'skyhook-results' is not among"),
        (lambda d: d[0]["data"].clear(), "ConfigMap 'skyhook-ceph-config' has no key 'ceph.conf'"),
        (lambda d: d[3]["spec"]["job"]["spec"]["volumes"].append(
            {"name": "h", "hostPath": {"path": "/"}}), "cannot make a hostPath volume"),
        (lambda d: d[3]["spec"]["job"]["spec"]["securityContext"].update(runAsUser=0),
         "runAsNonRoot with runAsUser 0"),
        (lambda d: d[3]["spec"]["job"]["spec"]["containers"][0]["volumeMounts"].append(
            {"name": "nope", "mountPath": "/x"}), "no volume named 'nope'"),
        (lambda d: d.__delitem__(3), "no DaskCluster, DaskJob or Pod"),
    ],
)  # fmt: skip
def test_a_manifest_that_cannot_run_is_refused_whole(change: Any, message: str) -> None:
    documents = _docs(CEPH_CONFIG) + _docs(JOB)
    change(documents)
    with pytest.raises(ManifestError, match=message):
        plan_documents(documents)


def test_the_command_refuses_a_bad_manifest_before_any_container(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skyhook_dask.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Deployment\nmetadata: {name: web}\n")
    assert main(["k8s", "run-local", str(bad), "--engine", "podman"]) == 1
    err = capsys.readouterr().err
    assert err == "error: Deployment 'web': run-local runs ConfigMap, Secret, " \
        "PersistentVolumeClaim, DaskCluster, DaskJob, Pod\n"  # fmt: skip
    assert main(["k8s", "run-local", str(JOB)]) == 1
    assert "ConfigMap 'skyhook-ceph-config'" in capsys.readouterr().err


# --- for real, with podman and the Ceph dev cluster ---------------------------------------------


def _containers(env: dict[str, str]) -> list[str]:
    listed = podman(env, "ps", "-a", "--filter", "name=skyhook-local-", "--format", "{{.Names}}")
    return listed.stdout.split()


def _render(tmp_path: Path, cluster: Any, image: str, dataset: str) -> list[Path]:
    pool = cluster.url.split("://", 1)[1].split("?", 1)[0]
    store = (f"rados://{pool}?conf=/etc/ceph/ceph.conf&name=client.{cluster.user}"
             f"&keyring=/etc/ceph/ceph.client.skyhook.keyring")  # fmt: skip
    config = tmp_path / "ceph-config.yaml"
    config.write_text(render("ceph-config", conf_text=cluster.conf_path.read_text(),
                             keyring_text=cluster.keyring_path.read_text()))  # fmt: skip
    job = tmp_path / "job.yaml"
    job.write_text(render("job", image=image, store=store, dataset=dataset, workers=2,
                          output="/results/result.parquet", memory="2Gi"))  # fmt: skip
    return [config, job]


@pytest.mark.container
def test_a_daskjob_runs_locally_and_survives_a_killed_worker(
    ceph_cluster: Any, client_image: str, podman_env: dict[str, str], tmp_path: Path, prefix: str
) -> None:
    files = _render(tmp_path, ceph_cluster, client_image, f"{prefix}-k8s")
    volumes = tmp_path / "volumes"
    before = _containers(podman_env)
    command = [sys.executable, "-m", "skyhook_dask.cli", "k8s", "run-local", *map(str, files),
               "--engine", "podman", "--volumes-dir", str(volumes)]  # fmt: skip
    run = subprocess.Popen(command, env=podman_env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)  # fmt: skip
    killed = None
    deadline = time.monotonic() + 400
    while run.poll() is None and time.monotonic() < deadline and killed is None:
        names = _containers(podman_env)
        if any(n.endswith("-runner") for n in names):  # the job has started: kill a worker
            killed = next(n for n in names if n.endswith("-default-worker-1"))
            podman(podman_env, "kill", killed)
        time.sleep(0.5)
    try:
        output, _ = run.communicate(timeout=max(30.0, deadline - time.monotonic()))
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output[-6000:]
    assert killed is not None, output[-3000:]
    assert "not honoured by run-local" in output and "exited with status 0" in output
    assert _containers(podman_env) == before  # every container removed

    result = pq.read_table(volumes / "skyhook-results" / "result.parquet")
    sk = SkyhookDM().connect(store=ceph_cluster.url, dask=False)
    here = sk.runQuery(sk.getDataset(f"{prefix}-k8s"), DEFAULT_QUERY)
    assert result.equals(here[0])
    events = uproot.open(sample_path())["Events"].arrays(["nMuon", "Muon_pt"])
    mask = (events.nMuon >= 2) & ak.any(events.Muon_pt > 20, axis=1)
    assert result.column("event_id").to_pylist() == np.flatnonzero(ak.to_numpy(mask)).tolist()
    assert result.column("Muon_pt").to_pylist() == ak.to_list(events.Muon_pt[mask])
    assert (volumes / "skyhook-results").stat().st_gid == 1000  # the pod's fsGroup
    assert os.stat(volumes / "skyhook-results" / "result.parquet").st_uid == 1000


@pytest.mark.container
def test_the_projected_keyring_is_readable_by_the_pod_user_only(
    client_image: str, podman_env: dict[str, str], tmp_path: Path
) -> None:
    script = "id -u; stat -c '%a %g' /etc/ceph/keyring; cat /etc/ceph/keyring"
    rendered = yaml.safe_load_all(render("pod", image=client_image, args=["sh", "-c", script]))
    pod = next(d for d in rendered if d and d["kind"] == "Pod")
    pod["spec"]["volumes"] = [{"name": "k", "secret": {"secretName": "s", "defaultMode": 0o440}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "k", "mountPath": "/etc/ceph"}]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"keyring": "[client.x]\n"}}  # fmt: skip
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump_all([secret, pod]))
    done = subprocess.run(
        [sys.executable, "-m", "skyhook_dask.cli", "k8s", "run-local", str(path)],
        env=podman_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:3] == ["1000", "440 1000", "[client.x]"]


@pytest.mark.container
def test_interrupting_the_run_removes_its_containers(
    client_image: str, podman_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(render("pod", image=client_image, args=["sleep", "300"]))
    before = _containers(podman_env)
    run = subprocess.Popen(
        [sys.executable, "-m", "skyhook_dask.cli", "k8s", "run-local", str(path)],
        env=podman_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while len(_containers(podman_env)) == len(before) and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()[0]
        time.sleep(0.5)
    started = set(_containers(podman_env)) - set(before)
    assert started and all(n.endswith("-skyhook-client") for n in started)
    time.sleep(1.0)  # its logs are being streamed
    run.send_signal(signal.SIGINT)  # Ctrl-C
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 130, output[-3000:]
    assert "interrupted: removing the containers" in output
    assert _containers(podman_env) == before
