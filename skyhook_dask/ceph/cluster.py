"""A Ceph cluster on this machine (one monitor, N bluestore OSDs) living entirely in one directory.

Everything the cluster needs sits under ``dir``: ``ceph.conf``, keyrings, monitor and OSD data,
each OSD's sparse block file, pid files, admin sockets, logs and the object-class directory.
With several OSDs the pool keeps ``size`` copies of every object, one per OSD, and serves while
``min_size`` of them are up.
Nothing is written to ``/etc/ceph``; clients point ``CEPH_CONF`` (or a store URL) at
``dir/ceph.conf``. The monitor listens on free ports chosen at creation, so a test cluster can
run beside a user's. There is no manager daemon: commands that need one would hang, so every
``ceph`` CLI call runs under a timeout and readiness is probed with a small ``rados put``.

``up()`` on a stopped cluster restarts it with its data (bluestore keeps it); ``down()`` stops
exactly the daemons whose pid files the directory holds. ``stop_osd``/``start_osd`` stop (or
kill) and start one OSD, for fault tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .bootstrap import MON, bootstrap
from .class_install import CLASS_LIBRARY, ClassInstaller
from .daemons import (
    APT_INSTALL_LINE,
    READY_TIMEOUT,
    STOP_TIMEOUT,
    DevClusterError,
    free_ports,
    port_in_use,
    process_alive,
    read_pid,
    render_conf,
    require_ceph_packages,
    run_command,
    stop_process,
)
from .osd_control import OsdControl

__all__ = ["APT_INSTALL_LINE", "CLASS_LIBRARY", "DevCluster", "DevClusterError"]

log = logging.getLogger(__name__)

CLI_TIMEOUT = 30.0  # seconds for one `ceph` CLI call (mgr-only commands would hang forever)
PROBE_OBJECT = "skyhook-dev-cluster-ready-probe"


def default_class_build_dir() -> Path:
    """A per-user build cache: the builder skips work when sources and pyarrow are unchanged.

    One directory per Python environment, since the library links that environment's pyarrow.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    env = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return Path(cache, "skyhook", "cls-build", env)


def default_min_size(size: int) -> int:
    """Ceph's own rule: a majority of the copies (1 of 1 or 2, 2 of 3, 3 of 4 or 5)."""
    return size - size // 2


class DevCluster(ClassInstaller, OsdControl):
    """One monitor and ``osds`` bluestore OSDs on 127.0.0.1, with cephx, inside ``directory``.

    ``osds`` and ``size`` (copies of each object) apply when the cluster is created; an
    existing cluster keeps its own.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        pool: str = "skyhook",
        user: str = "skyhook",
        block_size_gib: int = 4,
        install_class: bool = True,
        class_build_dir: str | os.PathLike[str] | None = None,
        osds: int = 1,
        size: int = 1,
    ) -> None:
        if osds < 1 or not 1 <= size <= osds:
            raise DevClusterError(
                f"a cluster of {osds} OSD(s) cannot keep {size} copies: need 1 <= size <= osds"
            )
        self.dir = Path(directory).expanduser().absolute()
        self.osds, self.size = osds, size
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
    def osd_ids(self) -> list[int]:
        state = self._state()
        return list(state.get("osd_ids", [state.get("osd_id", 0)]))

    @property
    def osd_names(self) -> list[str]:
        return [f"osd.{i}" for i in self.osd_ids]

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
            elif self._alive(MON) and all(self._alive(osd) for osd in self.osd_names):
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
            self._stop_all(timeout)

    def restart_osd(self) -> None:
        """Stop and start the OSDs, then wait until the pool accepts writes again."""
        with self._locked():
            self._restart_osd()

    def reload_class(self) -> Path:
        """Rebuild the object class, replace it atomically and restart the OSD to load it."""
        with self._locked():
            installed = self._install_class(required=True)
            self._restart_osd()
        assert installed is not None
        return installed

    def status(self, details: bool = False) -> dict[str, Any]:
        """Daemons, health, pool; with ``details``, each running OSD's placement groups (and
        their states), bytes stored and object copies held."""
        state = self._state()
        mon_alive = self._alive(MON)
        osds = [{"name": n, "pid": self._pid(n), "alive": self._alive(n)} for n in self.osd_names]
        health = None
        if mon_alive:
            with contextlib.suppress(DevClusterError):
                health = self.ceph("health", timeout=10).strip()
                seen = {f"osd.{o['id']}": o for o in self.osd_tree()}
                for osd in osds:
                    known = seen.get(str(osd["name"]), {})
                    osd.update(up=known.get("up", False), **{"in": known.get("in", False)})
        if details and mon_alive:
            self._add_details(osds)
        return {
            "dir": str(self.dir),
            "created": bool(state.get("complete")),
            "running": mon_alive and all(o["alive"] for o in osds),
            "mon": {"pid": self._pid(MON), "alive": mon_alive, "ports": state.get("mon_ports")},
            "osd": osds[0],
            "osds": osds,
            "pool": {
                "name": self.pool,
                "size": state.get("size", 1),
                "min_size": state.get("min_size", 1),
                "pg_num": state.get("pg_num", 8),
            },
            "health": health,
            "class_installed": (self.class_dir / CLASS_LIBRARY).exists(),
            "conf": str(self.conf_path),
            "url": self.url,
        }

    def _add_details(self, osds: list[dict[str, Any]]) -> None:
        from .osd_report import object_copies, osd_reports

        alive = {str(o["name"]): self.dir / "run" / f"ceph-{o['name']}.asok" for o in osds
                 if o["alive"]}  # fmt: skip
        reports = osd_reports(alive)
        try:
            copies: dict[int, int] | None = object_copies(self.conf_path, self.pool)
        except Exception as exc:  # the listing needs the pool's groups up: report, go on
            log.warning("cannot count object copies: %s", exc)
            copies = None
        for osd in osds:
            osd.update(reports.get(str(osd["name"]), {}))
            if copies is not None:
                osd["object_copies"] = copies.get(int(str(osd["name"]).split(".")[1]), 0)

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
        ids = list(range(self.osds))
        state = {"fsid": str(uuid.uuid4()), "mon_ports": free_ports(2), "osd_ids": ids,
                 "osd_uuids": [str(uuid.uuid4()) for _ in ids], "pool": self.pool,
                 "user": self.user, "size": self.size, "min_size": default_min_size(self.size),
                 "pg_num": _pg_count(self.osds), "complete": False}  # fmt: skip
        self.state_path.write_text(json.dumps(state, indent=2))
        self._write_conf(state)
        # The class builds while the daemons come up: the OSD loads it on its first call.
        with ThreadPoolExecutor(1, thread_name_prefix="skyhook-class-build") as builder:
            build = builder.submit(self._build_class, False) if self.install_class else None
            try:
                bootstrap(self, state)
                log.info("pool %s ready after %.1f s", self.pool, time.monotonic() - started)
                self._link_system_classes()
                self._finish_class_build(build)
            except BaseException:
                self._stop_all(STOP_TIMEOUT)
                raise
        state["complete"] = True
        self.state_path.write_text(json.dumps(state, indent=2))

    def _write_conf(self, state: dict[str, Any]) -> None:
        text = render_conf(
            self.dir, fsid=state["fsid"], mon_ports=state["mon_ports"], user=self.user,
            block_size=self.block_size, size=state.get("size", 1),
            min_size=state.get("min_size", 1), osd_hosts=len(self.osd_ids) > 1,
        )  # fmt: skip
        self.conf_path.write_text(text)

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
            self.start_daemon(MON)
        self._link_system_classes()
        if rebuild_class or not (self.class_dir / CLASS_LIBRARY).exists():
            self._install_class(required=rebuild_class)
        for name in self.osd_names:
            if rebuild_class:
                self._stop(name, STOP_TIMEOUT)
            if not self._alive(name):
                self.start_daemon(name)
        self.wait_ready()

    def start_daemon(self, name: str) -> None:
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

    def _stop_all(self, timeout: float) -> None:
        for name in self.osd_names:
            self._stop(name, timeout)
        self._stop(MON, timeout)

    def _restart_osd(self) -> None:
        if not self._alive(MON):
            raise DevClusterError(f"the cluster in {self.dir} is not running; start it with up()")
        for name in self.osd_names:
            self._stop(name, STOP_TIMEOUT)
        for name in self.osd_names:
            self.start_daemon(name)
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
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


def _pg_count(osds: int) -> int:
    """Placement groups of the pool, a power of two (so they split evenly): 8 on one OSD; else
    32 or more per OSD, enough for CRUSH to spread them (3 OSDs: 128 groups; each OSD holds
    82-92 of their 256 copies and is primary of 36-46)."""
    count = 8
    while osds > 1 and count < 32 * osds:
        count *= 2
    return count


def _program(daemon: str) -> str:
    return "ceph-mon" if daemon.startswith("mon.") else "ceph-osd"
