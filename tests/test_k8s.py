"""The Kubernetes manifests: schema validation (built-in kinds, dask-kubernetes CRDs, Rook), the
committed files, the ``skyhook k8s`` commands, the worker preload and the batch job."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot
import yaml

from skyhook_dask.cli import build_parser
from skyhook_dask.data import sample_path
from skyhook_dask.k8s import FILES, KINDS, documents, write_manifests
from skyhook_dask.k8s.manifests import DEFAULT_QUERY, DEFAULT_STORE

try:
    import jsonschema
    import kubernetes_validate.utils as kv
except ImportError as exc:  # CI installs the test extra: there a missing validator is a failure
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip(f"{exc.name} is missing: pip install kubernetes-validate", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
K8S_DIR = REPO / "k8s"
# The oldest Kubernetes release the manifests target, and the newest the validator knows.
K8S_VERSIONS = ("1.30", kv.latest_version())
BUILTIN_KINDS = {"Pod", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service", "Job"}


def _all_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in KINDS:
        for doc in documents(kind):
            yield kind, doc


def _validate_builtin(doc: dict[str, Any], version: str) -> None:
    kv.validate(doc, version, strict=True)


def _as_pod(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "embedded"}, "spec": pod_spec}


def _embedded_pod_specs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pod specs inside a DaskCluster or DaskJob, by their path."""
    if doc["kind"] == "DaskCluster":
        cluster, prefix, found = doc["spec"], "spec", {}
    else:
        cluster, prefix = doc["spec"]["cluster"]["spec"], "spec.cluster.spec"
        found = {"spec.job.spec": doc["spec"]["job"]["spec"]}
    found[f"{prefix}.worker.spec"] = cluster["worker"]["spec"]
    found[f"{prefix}.scheduler.spec"] = cluster["scheduler"]["spec"]
    return found


# --- the dask-kubernetes CRDs, as a JSON-schema validator ------------------------------------


def _int_or_string(schema: dict[str, Any]) -> bool:
    return schema.get("format") == "int-or-string" or bool(schema.get("x-kubernetes-int-or-string"))


def _type_allowing_int_or_string(validator, types, instance, schema):
    # OpenAPI marks int-or-string fields `type: string`; Kubernetes takes an integer there too.
    if _int_or_string(schema) and isinstance(instance, int) and not isinstance(instance, bool):
        return
    yield from jsonschema.Draft202012Validator.VALIDATORS["type"](
        validator, types, instance, schema
    )


CRDValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"type": _type_allowing_int_or_string}
)


def _closed(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever it lists the known ones, as the API
    server's strict field validation does (the CRDs themselves leave objects open)."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


@pytest.fixture(scope="module")
def crd_validators() -> dict[str, Any]:
    dask_kubernetes = pytest.importorskip("dask_kubernetes", reason="pip install dask-kubernetes")
    crd_dir = (
        Path(dask_kubernetes.__file__).parent
        / "operator/deployment/helm/dask-kubernetes-operator/crds"
    )
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group = crd["spec"]["group"]
        for version in crd["spec"]["versions"]:
            root = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # Every object has these; the API server checks them, the CRD does not list them.
            root["properties"] |= {
                "apiVersion": {"type": "string"},
                "kind": {"const": crd["spec"]["names"]["kind"]},
                "metadata": {"type": "object"},
            }
            schema = _closed(root)
            key = (f"{group}/{version['name']}", crd["spec"]["names"]["kind"])
            validators[key] = CRDValidator(schema)
    assert ("kubernetes.dask.org/v1", "DaskCluster") in validators, f"no CRDs in {crd_dir}"
    return validators


@pytest.fixture(scope="module")
def rook_schema() -> dict[str, Any]:
    return json.loads((K8S_DIR / "schemas" / "rook-ceph.schema.json").read_text())


def _rook_validator(schema: dict[str, Any], kind: str) -> Any:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind}", "$defs": schema["$defs"]})


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_kinds_validate_strictly(version: str) -> None:
    seen = set()
    for _, doc in _all_documents():
        if doc["apiVersion"] in ("v1", "batch/v1"):
            _validate_builtin(doc, version)
            seen.add(doc["kind"])
    assert seen == {"Pod", "ConfigMap", "Secret", "PersistentVolumeClaim"}


def test_dask_resources_validate_against_the_operator_crds(crd_validators: dict) -> None:
    checked = []
    for _, doc in _all_documents():
        key = (doc["apiVersion"], doc["kind"])
        if doc["apiVersion"].startswith("kubernetes.dask.org/"):
            crd_validators[key].validate(doc)
            for path, pod_spec in _embedded_pod_specs(doc).items():
                try:
                    _validate_builtin(_as_pod(pod_spec), K8S_VERSIONS[-1])
                except kv.ValidationError as exc:
                    pytest.fail(f"{doc['kind']} {path}: {exc.message}")
            checked.append(doc["kind"])
    assert sorted(checked) == ["DaskCluster", "DaskJob"]


def test_scheduler_service_validates_as_a_service() -> None:
    for _, doc in _all_documents():
        if doc["kind"] in ("DaskCluster", "DaskJob"):
            cluster = (
                doc["spec"] if doc["kind"] == "DaskCluster" else doc["spec"]["cluster"]["spec"]
            )
            service = cluster["scheduler"]["service"]
            name = doc["metadata"]["name"]
            assert service["selector"]["dask.org/cluster-name"] == name
            wrapped = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}}
            _validate_builtin({**wrapped, "spec": service}, K8S_VERSIONS[-1])


def test_rook_documents_validate(rook_schema: dict) -> None:
    kinds = []
    for doc in documents("rook"):
        if doc["apiVersion"] == "ceph.rook.io/v1":
            _rook_validator(rook_schema, doc["kind"]).validate(doc)
        else:
            _validate_builtin(doc, K8S_VERSIONS[-1])
        kinds.append(doc["kind"])
    assert kinds == ["ConfigMap", "CephCluster", "CephBlockPool", "CephClient"]


def test_misspelled_fields_are_rejected(crd_validators: dict, rook_schema: dict) -> None:
    pod = documents("pod")[0]
    bad_pod = copy.deepcopy(pod)
    bad_pod["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kv.ValidationError, match="imagePulPolicy"):
        _validate_builtin(bad_pod, K8S_VERSIONS[-1])

    cluster = documents("cluster")[0]
    bad_cluster = copy.deepcopy(cluster)
    bad_cluster["spec"]["worker"]["replica"] = bad_cluster["spec"]["worker"].pop("replicas")
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        crd_validators[("kubernetes.dask.org/v1", "DaskCluster")].validate(bad_cluster)

    # The CRD does not describe the worker's containers in depth: the Pod schema does.
    bad_worker = copy.deepcopy(cluster["spec"]["worker"]["spec"])
    bad_worker["containers"][0]["volumeMount"] = bad_worker["containers"][0].pop("volumeMounts")
    with pytest.raises(kv.ValidationError, match="volumeMount"):
        _validate_builtin(_as_pod(bad_worker), K8S_VERSIONS[-1])

    ceph_cluster = next(d for d in documents("rook") if d["kind"] == "CephCluster")
    bad_ceph = copy.deepcopy(ceph_cluster)
    bad_ceph["spec"]["cephVersion"]["imge"] = bad_ceph["spec"]["cephVersion"].pop("image")
    with pytest.raises(jsonschema.ValidationError):
        _rook_validator(rook_schema, "CephCluster").validate(bad_ceph)


def test_int_or_string_fields_take_integers_only_there(crd_validators: dict) -> None:
    validator = crd_validators[("kubernetes.dask.org/v1", "DaskCluster")]
    cluster = documents("cluster")[0]
    port = cluster["spec"]["scheduler"]["service"]["ports"][0]
    port["targetPort"] = 8786
    validator.validate(cluster)
    port["targetPort"] = [8786]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(cluster)
    port["targetPort"] = "tcp-comm"
    cluster["spec"]["worker"]["replicas"] = "2"  # a plain integer field stays an integer
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(cluster)


# --- content ----------------------------------------------------------------------------------


def test_committed_manifests_are_the_rendered_defaults(tmp_path: Path) -> None:
    written = {path.name: path.read_text() for path in write_manifests(tmp_path)}
    assert set(written) == set(FILES.values())
    for name, text in written.items():
        committed = K8S_DIR / name
        assert committed.is_file(), f"k8s/{name} is missing"
        assert committed.read_text() == text, (
            f"k8s/{name} differs from what the code renders; regenerate with: python -c "
            "\"from skyhook_dask.k8s import write_manifests; write_manifests('k8s')\""
        )
        assert list(yaml.safe_load_all(text)) == documents(
            next(k for k, f in FILES.items() if f == name)
        )


def test_workers_and_job_get_the_store_and_ceph_config() -> None:
    job = documents("job")[1]
    cluster = job["spec"]["cluster"]["spec"]
    for path, pod_spec in {**_embedded_pod_specs(job)}.items():
        container = pod_spec["containers"][0]
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        if path.endswith("worker.spec"):  # workers say which storage node they sit on
            assert env["SKYHOOK_OSD_HOST"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
            spread = pod_spec["topologySpreadConstraints"][0]
            assert spread["topologyKey"] == "kubernetes.io/hostname"
            beside = pod_spec["affinity"]["podAffinity"]
            term = beside["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            assert term["labelSelector"]["matchLabels"] == {"app": "rook-ceph-osd"}
        if path.endswith("scheduler.spec"):
            assert "SKYHOOK_STORE" not in env and not mounts  # the scheduler never opens it
            continue
        assert env["SKYHOOK_STORE"] == DEFAULT_STORE
        assert mounts["/etc/ceph"] == "ceph-config"
        volume = next(v for v in pod_spec["volumes"] if v["name"] == "ceph-config")
        sources = {next(iter(s)): s[next(iter(s))]["name"] for s in volume["projected"]["sources"]}
        assert sources == {"configMap": "skyhook-ceph-config", "secret": "skyhook-ceph-keyring"}
        assert pod_spec["securityContext"]["runAsNonRoot"] is True
    worker_args = cluster["worker"]["spec"]["containers"][0]["args"]
    assert worker_args[worker_args.index("--preload") + 1] == "skyhook_dask.k8s.preload"
    job_args = job["spec"]["job"]["spec"]["containers"][0]["args"]
    assert job_args[:3] == ["skyhook", "k8s", "run-batch"]
    assert job_args[job_args.index("--query") + 1] == DEFAULT_QUERY
    claim = documents("job")[0]
    assert (
        job["spec"]["job"]["spec"]["volumes"][-1]["persistentVolumeClaim"]["claimName"]
        == (claim["metadata"]["name"])
    )
    rook = {d["kind"]: d for d in documents("rook")}
    config = rook["ConfigMap"]["data"]["config"]
    assert rook["ConfigMap"]["metadata"] == {
        **rook["ConfigMap"]["metadata"],
        "name": "rook-config-override",
        "namespace": "rook-ceph",
    }
    assert "osd class load list = *" in config and "osd class default list = *" in config
    assert rook["CephClient"]["spec"]["caps"]["osd"] == "allow rwx pool=skyhook"


def test_pod_without_store_uses_the_embedded_store() -> None:
    pod = documents("pod")[0]
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["skyhook", "demo"] and "env" not in container
    assert "volumes" not in pod["spec"]
    with_ceph = documents("pod", store=DEFAULT_STORE, args=["/ws/script.py"])[0]
    assert with_ceph["spec"]["volumes"][0]["name"] == "ceph-config"


# --- the command line ---------------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_render_command_applies_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        ["k8s", "render", "cluster", "--image", "registry.example/skyhook:1", "--workers", "5",
         "--store", "rados://data?conf=/etc/ceph/ceph.conf&name=client.skyhook"],
        capsys,
    )  # fmt: skip
    assert code == 0
    (cluster,) = [d for d in yaml.safe_load_all(out) if d]
    assert cluster["spec"]["worker"]["replicas"] == 5
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert worker["image"] == "registry.example/skyhook:1"
    assert worker["env"][0] == {
        "name": "SKYHOOK_STORE",
        "value": "rados://data?conf=/etc/ceph/ceph.conf&name=client.skyhook",
    }
    _validate_builtin(_as_pod(cluster["spec"]["worker"]["spec"]), K8S_VERSIONS[-1])

    conf, keyring = tmp_path / "ceph.conf", tmp_path / "keyring"
    conf.write_text("[global]\nmon_host = 192.0.2.7\n")
    keyring.write_text("[client.skyhook]\n    key = QUJD\n")
    out_file = tmp_path / "ceph-config.yaml"
    code, _, _ = _run(
        ["k8s", "render", "ceph-config", "--conf", str(conf), "--keyring", str(keyring),
         "-o", str(out_file)],
        capsys,
    )  # fmt: skip
    assert code == 0
    config_map, secret = yaml.safe_load_all(out_file.read_text())
    assert config_map["data"]["ceph.conf"] == conf.read_text()
    assert secret["stringData"]["keyring"] == keyring.read_text()


def test_render_command_rejects_options_of_other_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["k8s", "render", "rook", "--workers", "3"], capsys)
    assert code == 2 and out == ""
    assert "--workers does not apply to `render rook`" in err


# --- the preload and the batch job, on a real Dask cluster ------------------------------------


def _expected_selection() -> dict[str, Any]:
    """What DEFAULT_QUERY selects from the bundled sample, computed with uproot + awkward."""
    events = uproot.open(sample_path())["Events"].arrays(["nMuon", "Muon_pt"])
    mask = (events.nMuon >= 2) & ak.any(events.Muon_pt > 20, axis=1)
    return {
        "event_id": np.flatnonzero(ak.to_numpy(mask)).tolist(),
        "nMuon": ak.to_list(events.nMuon[mask]),
        "Muon_pt": ak.to_list(events.Muon_pt[mask]),
    }


def _check_result(path: Path) -> None:
    table = pq.read_table(path)
    expected = _expected_selection()
    assert table.column_names == ["event_id", "nMuon", "Muon_pt", "Muon_eta"]
    assert table.column("event_id").to_pylist() == expected["event_id"]
    assert table.column("nMuon").to_pylist() == expected["nMuon"]
    assert table.column("Muon_pt").to_pylist() == expected["Muon_pt"]  # float32, stored exactly


def test_run_batch_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "result.parquet"
    code, stdout, _ = _run(
        ["k8s", "run-batch", "--dataset", "batch", "--query", DEFAULT_QUERY,
         "--output", str(out), "--store", f"file://{tmp_path / 'store'}"],
        capsys,
    )  # fmt: skip
    assert code == 0
    _check_result(out)
    assert f"{len(_expected_selection()['event_id'])} rows written" in stdout


def test_preload_and_run_batch_on_a_dask_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client, LocalCluster

    from skyhook_dask.k8s.batch import run_batch
    from skyhook_dask.runtime.plugin import PLUGIN_NAME

    store = f"file://{tmp_path / 'store'}"
    monkeypatch.setenv("SKYHOOK_STORE", store)
    with (
        LocalCluster(
            n_workers=1, processes=False, threads_per_worker=2, protocol="tcp",
            dashboard_address=":0", preload=["skyhook_dask.k8s.preload"],
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        # Before any client registered it, the worker already holds the store from its preload.
        urls = client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].store_urls)
        assert list(urls.values()) == [(store,)]
        result = run_batch(
            [],
            "batch",
            DEFAULT_QUERY,
            tmp_path / "result.parquet",
            scheduler=cluster.scheduler_address,
        )
    assert result.files == 1
    _check_result(result.output)
