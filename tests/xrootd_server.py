"""A real XRootD server (Debian's ``xrootd-server``) on 127.0.0.1, serving a directory, for the
``root://`` ingest tests. xrootd refuses to run as root, so as root it runs as ``nobody``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def missing_xrootd() -> str | None:
    if shutil.which("xrootd") is None:
        return "xrootd not installed (apt-get install -y xrootd-server)"
    try:
        import fsspec_xrootd  # noqa: F401
        import XRootD  # noqa: F401
    except ImportError:
        return "the xrootd extra is not installed (pip install 'skyhook-dask[xrootd]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class XRootDServer:
    """``start()`` serves ``data`` (files copied in with :meth:`add`) at :attr:`url`."""

    def __init__(self) -> None:
        # Under /tmp and world-traversable: the server's user must read what it serves.
        self.root = Path(tempfile.mkdtemp(prefix="skyhook-xrootd-"))
        self.data = self.root / "data"
        self.data.mkdir()
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"root://127.0.0.1:{self.port}/"

    def add(self, path: Path, name: str | None = None) -> str:
        """Copy ``path`` into the served directory; returns its ``root://`` URL."""
        target = self.data / (name or path.name)
        shutil.copyfile(path, target)
        target.chmod(0o644)
        return f"{self.url}/{target.name}"

    def start(self, timeout: float = 20) -> None:
        admin = self.root / "admin"
        admin.mkdir(exist_ok=True)
        config = self.root / "xrootd.cfg"
        config.write_text(
            f"all.export /\noss.localroot {self.data}\nxrd.port {self.port}\n"
            f"xrd.network nodnr\nall.adminpath {admin}\nall.pidpath {admin}\n"
        )
        for path in (self.root, self.data):
            path.chmod(0o755)
        command = ["xrootd", "-c", str(config), "-n", "skyhook-test"]
        if os.geteuid() == 0:
            shutil.chown(admin, "nobody", "nogroup")
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        log = open(self.root / "xrootd.log", "wb")  # noqa: SIM115 - the server's, kept open
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"xrootd exited: {(self.root / 'xrootd.log').read_text()[-2000:]}"
                )
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"xrootd did not listen on port {self.port} in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
