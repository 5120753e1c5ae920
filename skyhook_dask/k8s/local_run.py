"""``skyhook k8s run-local``: the containers of rendered manifests, run with podman or docker.

The plan (:mod:`skyhook_dask.k8s.local_plan`) is checked whole first; then ConfigMap and Secret
volumes are written as files with their modes (group: the pod's ``fsGroup``, as the kubelet
does) into a private folder, and a PersistentVolumeClaim is the folder
``VOLUMES_DIR/<claimName>``. The scheduler starts first and is waited for on its port, then
the workers, then the job (or pod), whose logs stream here; its exit status is the command's.
Every container started is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..exceptions import SkyhookError
from .local_plan import Container, LocalPlan, load_documents, plan_documents

__all__ = ["run_local"]

ENGINES = ("podman", "docker")
SCHEDULER_WAIT = 180.0  # seconds for the scheduler to listen (a first start may copy the image)


def run_local(
    paths: Sequence[str | os.PathLike[str]],
    *,
    engine: str | None = None,
    volumes_dir: str | os.PathLike[str] = "skyhook-volumes",
    err: TextIO = sys.stderr,
) -> int:
    """Run the documents in ``paths`` as the operator would; returns the job's exit status (a
    DaskCluster alone runs until interrupted: 130)."""
    plan = plan_documents(load_documents(paths))
    engine = _engine(engine)
    for line in plan.unhonoured:
        print(f"note: not honoured by run-local: {line}", file=err)
    if plan.scheduler_port is not None and _listening(plan.scheduler_port):
        raise SkyhookError(
            f"port {plan.scheduler_port} on this host is in use (another Dask scheduler?); "
            "the scheduler runs on the host network"
        )
    run = f"skyhook-local-{secrets.token_hex(3)}"
    started: list[str] = []
    private_dir = tempfile.TemporaryDirectory(prefix=f"{run}-", ignore_cleanup_errors=True)
    with _signals_interrupt(), private_dir as private:
        try:
            roots = _volumes(plan, Path(private), Path(volumes_dir), engine, err)
            return _start_all(plan, engine, run, roots, started, err)
        except KeyboardInterrupt:
            print("interrupted: removing the containers", file=err)
            return 130
        finally:
            if started:
                _remove(engine, started)


def _start_all(
    plan: LocalPlan, engine: str, run: str, roots: dict[str, Path], started: list[str], err: TextIO
) -> int:
    final = None
    for container in plan.containers:
        name = f"{run}-{container.name}"
        if container.role in ("job", "pod"):
            final = name  # started after the cluster is up
        started.append(name)  # removed at the end even if it fails to start
        _start(engine, container, name, roots)
        print(f"started {container.role} {name}", file=err)
        if container.role == "scheduler":
            assert plan.scheduler_port is not None
            _wait_for_scheduler(engine, name, plan.scheduler_port)
    if final is None:
        print(f"Dask scheduler at tcp://127.0.0.1:{plan.scheduler_port}; Ctrl-C stops it", file=err)
        while _running(engine, started[0]):
            time.sleep(1.0)
        raise SkyhookError(f"the scheduler {started[0]} stopped")
    logs = subprocess.Popen([engine, "logs", "-f", final])
    try:
        waited = subprocess.run([engine, "wait", final], capture_output=True, text=True)
        status = int(waited.stdout.strip().splitlines()[-1]) if waited.stdout.strip() else 1
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            logs.wait(timeout=30)
    if status != 0:
        for name in started[:-1]:  # what the cluster said, for the job's failure
            tail = subprocess.run([engine, "logs", "--tail", "20", name], capture_output=True,
                                  text=True, check=False)  # fmt: skip
            print(f"--- last lines of {name}:\n{tail.stdout}{tail.stderr}", file=err)
    print(f"{final} exited with status {status}", file=err)
    return status


def _start(engine: str, container: Container, name: str, roots: dict[str, Path]) -> None:
    command = [engine, "run", "-d", "--name", name, "--network", "host"]
    command += ["--pull", container.pull, *container.options]
    if container.user:
        command += ["--user", container.user]
    for group in container.groups:
        command += ["--group-add", str(group)]
    for key, value in container.env.items():
        command += ["-e", f"{key}={value}"]
    for key, sub_path, target, read_only in container.mounts:
        source = roots[key] / sub_path if sub_path else roots[key]
        command += ["-v", f"{source}:{target}" + (":ro" if read_only else "")]
    words = [*(container.command or []), *container.args]
    if container.command:
        command += ["--entrypoint", container.command[0]]
        words = words[1:]
    done = subprocess.run([*command, container.image, *words], capture_output=True, text=True)
    if done.returncode != 0:
        raise SkyhookError(f"{engine} could not start {name}: {done.stderr.strip()[-800:]}")


def _volumes(
    plan: LocalPlan, private: Path, volumes_dir: Path, engine: str, err: TextIO
) -> dict[str, Path]:
    """The folder of every volume key: projected files under ``private``, claims under
    ``volumes_dir``."""
    roots: dict[str, Path] = {}
    private.chmod(0o711)  # the containers' users pass through; only root lists it
    for file in plan.files:
        key = f"pods/{file.pod}/{file.volume}"
        folder = roots.setdefault(key, private / file.pod / file.volume)
        path = folder / file.path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        for parent in (private / file.pod, folder):
            parent.chmod(0o755)
        path.write_bytes(file.content)
        path.chmod(file.mode)
        _give_group(path, file.group, engine, err)
    for key in plan.empty_dirs:
        folder = roots.setdefault(key, private / key.replace("/", "_"))
        folder.mkdir(mode=0o777, exist_ok=True)
        folder.chmod(0o1777)
    for key in {m[0] for c in plan.containers for m in c.mounts} - set(roots):
        if key.startswith("pods/"):  # a volume whose optional sources are all absent
            roots[key] = private / key.replace("/", "_")
            roots[key].mkdir(mode=0o755)
    for claim, group in plan.claims.items():
        folder = volumes_dir.resolve() / claim
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o2775 if group is not None else 0o777)
        _give_group(folder, group, engine, err)
        roots[f"claims/{claim}"] = folder
    return roots


def _give_group(path: Path, group: int | None, engine: str, err: TextIO) -> None:
    """Make ``group`` the group of ``path``, as the kubelet does for an ``fsGroup``."""
    if group is None:
        return
    if os.geteuid() == 0:
        os.chown(path, 0, group)
    elif engine == "podman":  # rootless: the container's ids live in the user namespace
        subprocess.run(["podman", "unshare", "chown", f"0:{group}", str(path)], check=True)
    else:
        print(f"note: not honoured by run-local: fsGroup {group} of {path} (not root)", file=err)


def _wait_for_scheduler(engine: str, name: str, port: int) -> None:
    deadline = time.monotonic() + SCHEDULER_WAIT
    while not _listening(port):
        if not _running(engine, name):
            logs = subprocess.run([engine, "logs", name], capture_output=True, text=True)
            raise SkyhookError(
                f"the scheduler {name} exited:\n{(logs.stdout + logs.stderr)[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise SkyhookError(f"the scheduler {name} did not listen on port {port} in time")
        time.sleep(0.5)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _running(engine: str, name: str) -> bool:
    state = subprocess.run([engine, "inspect", "-f", "{{.State.Running}}", name],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return state.stdout.strip() == "true"


def _remove(engine: str, names: list[str]) -> None:
    # podman: kill at once (its default waits 10 s) and pass over containers never created
    extra = ["-t", "0", "--ignore"] if engine == "podman" else []
    subprocess.run([engine, "rm", "-f", *extra, *names], capture_output=True, check=False)


def _engine(engine: str | None) -> str:
    for candidate in (engine,) if engine else ENGINES:
        if candidate and shutil.which(candidate):
            return candidate
    wanted = engine or " or ".join(ENGINES)
    raise SkyhookError(f"run-local needs {wanted} on PATH (apt-get install podman)")


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM interrupts like Ctrl-C, so the containers are removed either way."""

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
