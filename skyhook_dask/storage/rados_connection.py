"""One librados handle per (config, user, keyring, timeout) in a process, shared by every
:class:`~skyhook_dask.storage.rados.RadosStore` with those credentials.

The handle connects on first use. After a failure that may have left it unusable (cluster
unreachable, session shut down) :meth:`Connection.reset` makes the next call open a fresh one;
a handle inherited through ``fork()`` is never used by the child.
"""

from __future__ import annotations

import errno
import math
import os
import threading
from typing import Any

from ..exceptions import (
    BackendNotInstalledError,
    StorePermissionError,
    StoreUnavailableError,
    StoreURLError,
)

INSTALL_HINT = (
    "the RADOS backend needs Debian's python3-rados: `apt-get install python3-rados` then "
    "`skyhook ceph link-rados` to make it importable in this environment"
)


def import_rados() -> Any:
    try:
        import rados
    except ImportError as exc:
        raise BackendNotInstalledError(f"cannot import rados ({exc}); {INSTALL_HINT}") from exc
    return rados


class Connection:
    """One librados handle, shared by every store with the same credentials in this process."""

    def __init__(self, conf: str | None, name: str, keyring: str | None, timeout: float) -> None:
        self.conf, self.name, self.keyring, self.timeout = conf, name, keyring, timeout
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._pid = 0
        self.generation = 0

    def describe(self) -> str:
        return f"{self.name} with config {self.conf or '$CEPH_CONF or /etc/ceph/ceph.conf'}"

    def cluster(self) -> tuple[Any, int]:
        """The connected handle and its generation (connecting on first use, or after reset)."""
        with self._lock:
            if self._cluster is not None and self._pid != os.getpid():
                # A handle inherited through fork() has no threads behind it: neither use it
                # nor let its destructor run (shutdown would wait on the parent's threads).
                inherited_handles.append(self._cluster)
                self._cluster = None
            if self._cluster is None:
                self._cluster, self._pid = self._connect(), os.getpid()
                self.generation += 1
            return self._cluster, self.generation

    def reset(self, generation: int) -> None:
        """Forget the handle that failed; in-flight users keep it alive until they finish."""
        with self._lock:
            if generation == self.generation:
                self._cluster = None

    def _connect(self) -> Any:
        rados = import_rados()
        if self.conf and not os.path.isfile(self.conf):
            raise StoreURLError(f"Ceph config file {self.conf!r} does not exist")
        options: dict[str, str] = {}
        if self.keyring:
            options["keyring"] = self.keyring
        if self.timeout > 0:
            seconds = str(math.ceil(self.timeout))  # librados wants whole seconds
            options.update(
                rados_osd_op_timeout=seconds,
                rados_mon_op_timeout=seconds,
                client_mount_timeout=seconds,
            )
        try:
            cluster = rados.Rados(conffile=self.conf or "", name=self.name, conf=options)
            cluster.connect()
        except rados.Error as exc:
            code = getattr(exc, "errno", None)
            if code in (errno.EACCES, errno.EPERM):
                raise StorePermissionError(
                    f"the cluster refused {self.describe()}: wrong key or unknown user "
                    f"(keyring {self.keyring or 'from the config file'})"
                ) from exc
            if code == errno.ENOENT:
                raise StorePermissionError(
                    f"no key found for {self.describe()}: give the URL a keyring= or name one "
                    f"in the config file's [{self.name}] section"
                ) from exc
            raise StoreUnavailableError(
                f"cannot connect to Ceph as {self.describe()} within {self.timeout:g} s: {exc}"
            ) from exc
        return cluster


inherited_handles: list[Any] = []  # librados objects from a parent process, kept from destruction
_connections: dict[tuple[str | None, str, str | None, float], Connection] = {}
_connections_lock = threading.Lock()


def shared_connection(
    conf: str | None, name: str, keyring: str | None, timeout: float
) -> Connection:
    key = (conf, name, keyring, timeout)
    with _connections_lock:
        if key not in _connections:
            _connections[key] = Connection(conf, name, keyring, timeout)
        return _connections[key]
