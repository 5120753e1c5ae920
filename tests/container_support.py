"""Podman for the tests that build and run the image (test_container, test_k8s_local): a
private configuration (vfs storage, the runc runtime, lower ulimits) in
``$SKYHOOK_CONTAINER_CACHE`` (default ``~/.cache/skyhook/podman``), and the image built once
per session (the fixtures live in conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CONTAINER_TOOLS = ("podman", "mmdebstrap", "runc")
APT_PACKAGES = "podman buildah mmdebstrap runc"
BUILD_TIMEOUT = 900  # seconds; about 2 minutes with the base cached, 5 without


def missing(what: str, hint: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {what} is missing: {hint}")
    pytest.skip(f"{what} is missing: {hint}")


def _container_env(cache: Path) -> dict[str, str]:
    """Podman settings that work in an unprivileged-cgroup, overlay-less environment."""
    cache.mkdir(parents=True, exist_ok=True)
    conf = cache / "containers.conf"
    conf.write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    storage = cache / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{cache}/run"\ngraphroot = "{cache}/storage"\n'
    )
    return {
        **os.environ,
        "CONTAINERS_CONF": str(conf),
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINER_ENGINE": "podman",
        "PYTHON": sys.executable,
    }


def make_podman_env() -> dict[str, str]:
    """The podman settings, or skip (fail under CI) when the tools are missing."""
    absent = [tool for tool in CONTAINER_TOOLS if shutil.which(tool) is None]
    if absent:
        missing(", ".join(absent), f"apt-get install -y {APT_PACKAGES}")
    default = Path.home() / ".cache" / "skyhook" / "podman"
    return _container_env(Path(os.environ.get("SKYHOOK_CONTAINER_CACHE", default)))


def podman(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def build_client_image(podman_env: dict[str, str]) -> Iterator[str]:
    """Build the client image offline, yield its tag, remove it afterwards."""
    tag = f"localhost/skyhook-dask:test-{os.getpid()}"
    build = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh"), "--local-base", "--no-layers",
         "--tag", tag],
        cwd=REPO, env=podman_env, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
        check=False,
    )  # fmt: skip
    try:
        assert build.returncode == 0, f"image build failed:\n{build.stdout[-4000:]}{build.stderr}"
        yield tag
    finally:
        podman(podman_env, "rmi", "--force", tag, *built_tags(build.stdout))
        podman(podman_env, "image", "prune", "--force")


def built_tags(build_output: str) -> list[str]:
    """The tags scripts/build-image.sh reports: `built TAG (and OTHER-TAG)`."""
    found = re.search(r"^built (\S+) \(and (\S+)\)", build_output, re.MULTILINE)
    return list(found.groups()) if found else []
