"""A single-node Ceph cluster (one monitor, one bluestore OSD) living entirely in one directory.

Everything the cluster needs sits under ``dir``: ``ceph.conf``, keyrings, monitor and OSD data,
the OSD's sparse block file, pid files, admin sockets, logs and the object-class directory.
Nothing is written to ``/etc/ceph``; clients point ``CEPH_CONF`` (or a store URL) at
``dir/ceph.conf``. The monitor listens on free ports chosen at creation, so a test cluster can
run beside a user's. There is no manager daemon: commands that need one would hang, so every
``ceph`` CLI call runs under a timeout and readiness is probed with a small ``rados put``.

``up()`` on a stopped cluster restarts it with its data (bluestore keeps it); ``down()`` stops
exactly the daemons whose pid files the directory holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .daemons import (
    APT_INSTALL_LINE,
    DevClusterError,
    free_ports,
    port_in_use,
    process_alive,
    read_pid,
    render_conf,
    require_ceph_packages,
    run_command,
    stop_process,
    system_class_dirs,
)

__all__ = ["APT_INSTALL_LINE", "CLASS_LIBRARY", "DevCluster", "DevClusterError"]

log = logging.getLogger(__name__)

CLASS_LIBRARY = "libcls_skyhook.so"
MON = "mon.a"
CLI_TIMEOUT = 30.0  # seconds for one `ceph` CLI call (mgr-only commands would hang forever)
READY_TIMEOUT = 90.0  # seconds for the pool to accept a write after the daemons start
STOP_TIMEOUT = 20.0  # seconds between SIGTERM and SIGKILL
PROBE_OBJECT = "skyhook-dev-cluster-ready-probe"


def default_class_build_dir() -> Path:
    """A per-user build cache: the builder skips work when sources and pyarrow are unchanged.

    One directory per Python environment, since the library links that environment's pyarrow.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    env = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return Path(cache, "skyhook", "cls-build", env)


class DevCluster:
    """One monitor and one bluestore OSD on 127.0.0.1, with cephx, all inside ``directory``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        pool: str = "skyhook",
        user: str = "skyhook",
        block_size_gib: int = 4,
        install_class: bool = True,
        class_build_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.dir = Path(directory).expanduser().absolute()
        self.pool, self.user = pool, user
        self.block_size = block_size_gib * 1024**3
        self.install_class = install_class
        self._class_build_dir = Path(class_build_dir) if class_build_dir else None

    def __repr__(self) -> str:
        return f"DevCluster({str(self.dir)!r})"

    # --- paths and identity ------------------------------------------------------------------

    @property
    def class_build_dir(self) -> Path:
        """Where the class is built: the user's cache if writable, else inside the cluster."""
        if self._class_build_dir is None:
            cache = default_class_build_dir()
            try:
                cache.mkdir(parents=True, exist_ok=True)
                writable = os.access(cache, os.W_OK)
            except OSError:
                writable = False
            self._class_build_dir = cache if writable else self.dir / "cls-build"
        return self._class_build_dir

    @property
    def conf_path(self) -> Path:
        return self.dir / "ceph.conf"

    @property
    def state_path(self) -> Path:
        return self.dir / "cluster.json"

    @property
    def class_dir(self) -> Path:
        return self.dir / "classes"

    @property
    def keyring_path(self) -> Path:
        """Keyring of the least-privilege client ``client.<user>``."""
        return self.dir / f"keyring.{self.user}"

    @property
    def admin_keyring_path(self) -> Path:
        return self.dir / "keyring.admin"

    @property
    def url(self) -> str:
        conf = quote(str(self.conf_path), safe="/:._-+@")
        return f"rados://{self.pool}?conf={conf}&name=client.{self.user}"

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise DevClusterError(f"{self.state_path} is corrupt: {exc}") from exc

    @property
    def _osd(self) -> str:
        return f"osd.{self._state().get('osd_id', 0)}"

    def _pid(self, daemon: str) -> int | None:
        return read_pid(self.dir / "run" / f"{daemon}.pid")

    def _alive(self, daemon: str) -> bool:
        return process_alive(self._pid(daemon), _program(daemon), self.conf_path)

    # --- public operations -------------------------------------------------------------------

    def ceph(self, *args: str, stdin: str | None = None, timeout: float = CLI_TIMEOUT) -> str:
        """Run a ``ceph`` CLI command as client.admin against this cluster, under a timeout."""
        argv = ["ceph", "-c", str(self.conf_path), "--name", "client.admin"]
        argv += ["--connect-timeout", str(max(1, int(timeout))), *args]
        return run_command(argv, what=f"`ceph {' '.join(args)}`", stdin=stdin, timeout=timeout)

    def up(self, rebuild_class: bool = False) -> str:
        """Start the cluster (creating it on first use) and return its store URL."""
        require_ceph_packages()
        with self._locked():
            state = self._state()
            if not state:
                self._create()
            elif not state.get("complete"):
                raise DevClusterError(
                    f"{self.dir} holds a cluster whose creation did not finish; remove the "
                    "directory and run `up` again"
                )
            elif self._alive(MON) and self._alive(self._osd):
                log.info("the Ceph dev cluster in %s is already running", self.dir)
                if rebuild_class:
                    self._install_class(required=True)
                    self._restart_osd()
            else:
                self._start_existing(rebuild_class)
        return self.url

    def down(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the daemons this directory's pid files name (OSD first), waiting for each."""
        if not self.dir.is_dir():
            return
        with self._locked():
            self._stop(self._osd, timeout)
            self._stop(MON, timeout)

    def restart_osd(self) -> None:
        """Stop and start the OSD, then wait until the pool accepts writes again."""
        with self._locked():
            self._restart_osd()

    def reload_class(self) -> Path:
        """Rebuild the object class, replace it atomically and restart the OSD to load it."""
        with self._locked():
            installed = self._install_class(required=True)
            self._restart_osd()
        assert installed is not None
        return installed

    def status(self) -> dict[str, Any]:
        state, osd = self._state(), self._osd
        mon_alive, osd_alive = self._alive(MON), self._alive(osd)
        health = None
        if mon_alive:
            with contextlib.suppress(DevClusterError):
                health = self.ceph("health", timeout=10).strip()
        return {
            "dir": str(self.dir),
            "created": bool(state.get("complete")),
            "running": mon_alive and osd_alive,
            "mon": {"pid": self._pid(MON), "alive": mon_alive, "ports": state.get("mon_ports")},
            "osd": {"name": osd, "pid": self._pid(osd), "alive": osd_alive},
            "health": health,
            "class_installed": (self.class_dir / CLASS_LIBRARY).exists(),
            "conf": str(self.conf_path),
            "url": self.url,
        }

    # --- creation ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize up/down of one directory across processes (e.g. parallel test workers)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _create(self) -> None:
        if any(p.name != ".lock" for p in self.dir.iterdir()):
            raise DevClusterError(
                f"{self.dir} is not empty and holds no dev cluster; choose an empty directory"
            )
        started = time.monotonic()
        for sub in ("run", "log", "mon", "osd", "classes"):
            (self.dir / sub).mkdir()
        state = {"fsid": str(uuid.uuid4()), "mon_ports": free_ports(2), "osd_id": 0,
                 "osd_uuid": str(uuid.uuid4()), "pool": self.pool, "user": self.user,
                 "complete": False}  # fmt: skip
        self.state_path.write_text(json.dumps(state, indent=2))
        self._write_conf(state)
        # The class builds while the daemons come up: the OSD loads it on its first call.
        with ThreadPoolExecutor(1, thread_name_prefix="skyhook-class-build") as builder:
            build = builder.submit(self._build_class, False) if self.install_class else None
            try:
                self._bootstrap(state)
                log.info("pool %s ready after %.1f s", self.pool, time.monotonic() - started)
                self._link_system_classes()
                self._finish_class_build(build)
            except BaseException:
                self._stop(self._osd, STOP_TIMEOUT)
                self._stop(MON, STOP_TIMEOUT)
                raise
        state["complete"] = True
        self.state_path.write_text(json.dumps(state, indent=2))

    def _bootstrap(self, state: dict[str, Any]) -> None:
        conf, monmap = str(self.conf_path), str(self.dir / "monmap")
        self._make_keyrings()
        mon_v2, mon_v1 = state["mon_ports"]
        addr = f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]"
        run_command(["monmaptool", "--create", "--clobber", "--addv", MON.split(".")[1], addr,
                     "--fsid", state["fsid"], monmap], what="monmaptool")  # fmt: skip
        run_command(["ceph-mon", "--mkfs", "-i", MON.split(".")[1], "--monmap", monmap,
                     "--keyring", str(self.dir / "keyring.mon"), "-c", conf],
                    what="ceph-mon --mkfs")  # fmt: skip
        self._start_daemon(MON)
        self._create_osd(state, monmap)
        self._start_daemon(self._osd)
        self.ceph("osd", "pool", "create", self.pool, "8", "8")
        self.ceph("osd", "pool", "application", "enable", self.pool, "skyhook")
        self.ceph("health", "mute", "MGR_DOWN", "--sticky")  # there is no manager, by design
        self._wait_ready()

    def _write_conf(self, state: dict[str, Any]) -> None:
        text = render_conf(self.dir, fsid=state["fsid"], mon_ports=state["mon_ports"],
                           user=self.user, block_size=self.block_size)  # fmt: skip
        self.conf_path.write_text(text)

    def _authtool(self, *args: str) -> str:
        return run_command(["ceph-authtool", *args], what="ceph-authtool")

    def _make_keyrings(self) -> None:
        mon_keyring = str(self.dir / "keyring.mon")
        self._authtool("--create-keyring", mon_keyring, "--gen-key", "-n", "mon.",
                       "--cap", "mon", "allow *")  # fmt: skip
        admin_caps = [
            arg for svc in ("mon", "osd", "mgr", "mds") for arg in ("--cap", svc, "allow *")
        ]
        self._authtool("--create-keyring", str(self.admin_keyring_path), "--gen-key",
                       "-n", "client.admin", *admin_caps)  # fmt: skip
        # Least privilege: read the cluster maps; read, write and call classes in one pool.
        self._authtool("--create-keyring", str(self.keyring_path), "--gen-key",
                       "-n", f"client.{self.user}", "--cap", "mon", "allow r",
                       "--cap", "osd", f"allow rwx pool={self.pool}")  # fmt: skip
        for keyring in (self.admin_keyring_path, self.keyring_path):
            self._authtool(mon_keyring, "--import-keyring", str(keyring))
            keyring.chmod(0o600)

    def _create_osd(self, state: dict[str, Any], monmap: str) -> None:
        osd_id, osd_uuid = str(state["osd_id"]), state["osd_uuid"]
        secret = self._authtool("--gen-print-key").strip()
        self.ceph("osd", "new", osd_uuid, osd_id, "-i", "-",
                  stdin=json.dumps({"cephx_secret": secret}))  # fmt: skip
        data = self.dir / "osd" / f"ceph-{osd_id}"
        data.mkdir(parents=True, exist_ok=True)
        self._authtool("--create-keyring", str(data / "keyring"), "--name", f"osd.{osd_id}",
                       "--add-key", secret)  # fmt: skip
        run_command(["ceph-osd", "--mkfs", "-i", osd_id, "--osd-uuid", osd_uuid,
                     "--monmap", monmap, "-c", str(self.conf_path)],
                    what="ceph-osd --mkfs", timeout=120)  # fmt: skip

    # --- start, stop, readiness --------------------------------------------------------------

    def _start_existing(self, rebuild_class: bool) -> None:
        state = self._state()
        self._write_conf(state)  # the directory may have moved: keep its paths current
        if not self._alive(MON):
            busy = [str(port) for port in state["mon_ports"] if port_in_use(port)]
            if busy:
                raise DevClusterError(
                    f"cannot restart the cluster in {self.dir}: its monitor port(s) "
                    f"{', '.join(busy)} are taken by another process"
                )
            self._start_daemon(MON)
        self._link_system_classes()
        if rebuild_class or not (self.class_dir / CLASS_LIBRARY).exists():
            self._install_class(required=rebuild_class)
        if rebuild_class:
            self._stop(self._osd, STOP_TIMEOUT)
        if not self._alive(self._osd):
            self._start_daemon(self._osd)
        self._wait_ready()

    def _start_daemon(self, name: str) -> None:
        kind, ident = name.split(".", 1)
        # The daemon forks; the parent exits once the child has initialised (or failed).
        run_command([f"ceph-{kind}", "-i", ident, "-c", str(self.conf_path)],
                    what=f"starting {name} (log: {self.dir / 'log' / name}.log)",
                    timeout=120)  # fmt: skip
        deadline = time.monotonic() + 10
        while not self._alive(name):
            if time.monotonic() > deadline:
                raise DevClusterError(f"{name} exited right after start; see {self.dir}/log")
            time.sleep(0.05)

    def _stop(self, name: str, timeout: float) -> None:
        pid = self._pid(name)
        if pid is None or not self._alive(name):
            return
        stop_process(pid, lambda: self._alive(name), timeout, _program(name))
        log.info("stopped %s (pid %d)", name, pid)

    def _restart_osd(self) -> None:
        if not self._alive(MON):
            raise DevClusterError(f"the cluster in {self.dir} is not running; start it with up()")
        self._stop(self._osd, STOP_TIMEOUT)
        self._start_daemon(self._osd)
        self._wait_ready()

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until client.<user> can write to the pool (PGs active, caps and keys right)."""
        base = ["rados", "-c", str(self.conf_path), "--name", f"client.{self.user}"]
        base += ["-p", self.pool]
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                put = [*base, "put", PROBE_OBJECT, "/dev/null"]
                done = subprocess.run(put, capture_output=True, text=True, timeout=5, check=False)
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0:
                subprocess.run([*base, "rm", PROBE_OBJECT], capture_output=True, timeout=10)
                return
            last = done.stderr.strip()
            time.sleep(0.2)
        raise DevClusterError(
            f"pool {self.pool!r} did not accept writes within {timeout:.0f} s ({last}); "
            f"see the logs in {self.dir / 'log'}"
        )

    # --- object class ------------------------------------------------------------------------

    def _link_system_classes(self) -> None:
        """Expose Ceph's own classes (hello, lock, ...) in our class dir through symlinks."""
        self.class_dir.mkdir(exist_ok=True)
        for system_dir in system_class_dirs():
            for library in system_dir.glob("libcls_*.so*"):
                link = self.class_dir / library.name
                if not library.name.startswith("libcls_skyhook") and not link.exists():
                    link.symlink_to(library)

    def _finish_class_build(self, build: Future[Path | None] | None) -> None:
        built = build.result() if build is not None else None
        if built is not None:
            self._place_class(built)

    def _build_class(self, required: bool) -> Path | None:
        """The freshly built library, or None (with a warning) when it cannot be built."""
        try:
            from .build_class import build_class
        except ImportError as exc:
            if required:
                raise DevClusterError(f"cannot build the object class: {exc}") from exc
            log.warning("%s not installed: its builder is unavailable (%s)", CLASS_LIBRARY, exc)
            return None
        try:
            return Path(build_class(self.class_build_dir))
        except Exception as exc:
            if required:
                raise
            log.warning("%s not installed: building it failed: %s", CLASS_LIBRARY, exc)
            return None

    def _install_class(self, required: bool) -> Path | None:
        if not self.install_class and not required:
            return None
        built = self._build_class(required)
        return self._place_class(built) if built else None

    def _place_class(self, built: Path) -> Path:
        """Copy, then rename over the old library: an OSD that mapped it keeps its inode."""
        target = self.class_dir / CLASS_LIBRARY
        staging = self.class_dir / f".{CLASS_LIBRARY}.{os.getpid()}.tmp"
        shutil.copy2(built, staging)
        os.replace(staging, target)
        log.info("installed %s (built in %s)", target, built.parent)
        return target


def _program(daemon: str) -> str:
    return "ceph-mon" if daemon.startswith("mon.") else "ceph-osd"
