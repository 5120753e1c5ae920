"""Low-level pieces of the dev cluster: its config file, commands under timeouts, processes.

Kept apart from :mod:`skyhook_dask.ceph.cluster` so that the lifecycle logic there reads as a
sequence of steps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..exceptions import BackendNotInstalledError, SkyhookError

log = logging.getLogger(__name__)

APT_INSTALL_LINE = (
    "apt-get install -y ceph-mon ceph-osd ceph-common python3-rados librados-dev "
    "rados-objclass-dev libradospp-dev g++"
)
REQUIRED_BINARIES = ("ceph-mon", "ceph-osd", "ceph", "rados", "monmaptool", "ceph-authtool")


READY_TIMEOUT = 90.0  # seconds for the pool to accept writes, an OSD to be marked up or down
STOP_TIMEOUT = 20.0  # seconds between SIGTERM and SIGKILL


class DevClusterError(SkyhookError):
    """The development cluster could not be created, started, stopped or queried."""


CONF_TEMPLATE = """\
# A development cluster on one machine (skyhook_dask.ceph.cluster).
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
osd pool default size = {size}
osd pool default min size = {min_size}
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
# One monitor needs no batching of map updates: 0.2 s instead of 1 s makes the OSD boot,
# pool creation and restarts several seconds faster.
paxos propose interval = 0.2
# A killed OSD is marked down within seconds (its peers report it, one report suffices), so
# that its placement groups move on to their other copies while a query waits.
osd heartbeat interval = 1
osd heartbeat grace = 5
mon osd min down reporters = 1

# Daemon-only settings: clients reading this file must not need write access to {dir}.
[mon]
mon data = {dir}/mon/ceph-$id
{daemon_files}
[osd]
osd data = {dir}/osd/ceph-$id
keyring = {dir}/osd/ceph-$id/keyring
osd objectstore = bluestore
bluestore block path = {dir}/osd-$id.block
bluestore block create = true
bluestore block size = {block_size}
osd class dir = {dir}/classes
osd class load list = *
osd class default list = *
# bluestore keeps its data across a fast shutdown, and the OSD stops in well under a second.
osd fast shutdown = true
# Closing a block device waits one aio poll period (250 ms by default), ~10 times per start.
bdev aio poll ms = 20
{crush_location}{daemon_files}
[client.admin]
keyring = {dir}/keyring.admin

[client.{user}]
keyring = {dir}/keyring.{user}
"""

# Several OSDs on one machine: each on a CRUSH host of its own, and a cache target of 1 GiB
# (Ceph's default is 4 GiB each, too much for three beside the client on 24 GiB).
_MANY_OSDS = """\
crush location = root=default host=node-$id
osd memory target = 1073741824
"""

_DAEMON_FILES = """\
run dir = {dir}/run
admin socket = {admin_socket}
pid file = {dir}/run/$name.pid
log file = {dir}/log/$name.log
"""


def render_conf(
    directory: Path,
    *,
    fsid: str,
    mon_ports: list[int],
    user: str,
    block_size: int,
    size: int = 1,
    min_size: int = 1,
    osd_hosts: bool = False,
) -> str:
    """``ceph.conf`` of a dev cluster; ``osd_hosts`` puts each OSD in a CRUSH host of its own
    (``node-<id>``), as if every OSD had a storage node to itself, and caps its cache."""
    admin_socket = f"{directory}/run/$cluster-$name.asok"
    if len(admin_socket) > 100:  # a UNIX socket path is limited to 107 bytes: go without
        admin_socket = ""
    daemon_files = _DAEMON_FILES.format(dir=directory, admin_socket=admin_socket)
    mon_v2, mon_v1 = mon_ports
    return CONF_TEMPLATE.format(
        fsid=fsid, mon_v2=mon_v2, mon_v1=mon_v1, dir=directory, user=user,
        block_size=block_size, daemon_files=daemon_files, size=size, min_size=min_size,
        crush_location=_MANY_OSDS if osd_hosts else "",
    )  # fmt: skip


def require_ceph_packages() -> None:
    """Raise with the one install line when Debian's Ceph binaries are missing."""
    missing = [name for name in REQUIRED_BINARIES if shutil.which(name) is None]
    if missing:
        raise BackendNotInstalledError(
            f"the Ceph dev cluster needs {', '.join(missing)} (not found on PATH); install "
            f"Debian's Ceph packages with:\n  {APT_INSTALL_LINE}"
        )


def system_class_dirs() -> list[Path]:
    """Where Debian installs Ceph's own object classes (libcls_hello.so, ...)."""
    found = [*sorted(Path("/usr/lib").glob("*/rados-classes")), Path("/usr/lib/rados-classes")]
    return [path for path in found if path.is_dir()]


def run_command(
    argv: list[str], *, what: str, stdin: str | None = None, timeout: float = 30.0
) -> str:
    """Run one command under a timeout; raise naming ``what`` with its stderr on failure."""
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DevClusterError(
            f"{what} did not finish within {timeout:.0f} s: {' '.join(argv)}"
        ) from exc
    except OSError as exc:
        raise DevClusterError(f"{what} could not run: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-2000:]
        raise DevClusterError(f"{what} failed (exit {done.returncode}): {detail}")
    return done.stdout


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that nothing listens on now (held together, so all distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def process_alive(pid: int | None, program: str, conf: Path) -> bool:
    """True when ``pid`` is a live ``program`` started with ``conf`` (not a reused pid)."""
    if not pid:
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        # A daemon's leader may stay a zombie (nobody reaps it) while its other threads still
        # tear down and hold the pid-file lock: the process is gone only when every thread is.
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    states = []
    for task in tasks:
        with contextlib.suppress(OSError):  # a thread that ends while we look is no sign of death
            states.append(task.joinpath("stat").read_text().rsplit(")", 1)[-1].split()[0])
    if not states:  # the threads vanished while we looked: the leader's state decides
        with contextlib.suppress(OSError):
            states.append(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0])
    if all(state in ("Z", "X") for state in states):
        return False
    args = [arg.decode(errors="replace") for arg in cmdline if arg]
    # A zombie leader has an empty cmdline; its name still tells a reused pid apart.
    return comm == program[:15] and (not args or str(conf) in args)


def _exiting(pid: int, program: str) -> bool:
    """``program`` still runs as ``pid`` (not a zombie), whatever its other /proc files say
    while it tears down."""
    try:
        name, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
        state = rest.split()[0]
    except (OSError, IndexError):
        return False
    return name.partition("(")[2] == program[:15] and state not in ("Z", "X")


def stop_process(pid: int, alive: Callable[[], bool], timeout: float, program: str) -> None:
    """SIGTERM, wait up to ``timeout``; then SIGKILL and wait again. Done when the process no
    longer runs at all: mid-exit, /proc may already stop naming it while its threads finish."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while (alive() or _exiting(pid, program)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive() and not _exiting(pid, program):
            return
        if sig == signal.SIGTERM:
            log.warning("process %d ignored SIGTERM for %.0f s; killing it", pid, timeout)
    raise DevClusterError(f"process {pid} did not exit after SIGKILL")
