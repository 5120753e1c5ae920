"""Installing the skyhook object class into a dev cluster's class directory.

A mixin of :class:`skyhook_dask.ceph.cluster.DevCluster`: it builds the class (against this
environment's pyarrow) and places it where the OSDs load classes from, beside links to Ceph's
own classes.
"""

from __future__ import annotations

import logging
import os
import shutil
from concurrent.futures import Future
from pathlib import Path

from .daemons import DevClusterError, system_class_dirs

log = logging.getLogger(__name__)

CLASS_LIBRARY = "libcls_skyhook.so"


class ClassInstaller:
    """The object-class half of a dev cluster (``class_dir``, ``class_build_dir`` and
    ``install_class`` come from the cluster)."""

    class_dir: Path
    class_build_dir: Path
    install_class: bool

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
