"""The embedded backend: objects are files under a directory (``file:///abs/dir``).

Objects live in ``DIR/objects/<name>`` and their metadata in ``DIR/meta/<name>.json``. Writes go
to a temporary file that is renamed into place, so readers never see a partial object; an
exclusive create links the temporary file, which fails atomically if the name is taken.
``delete_if`` compares and unlinks while holding ``flock`` on the object's file, so that of its
callers one at most removes a given file; a plain (non-exclusive) write racing it may be
removed by it, which the lock protocol above never does.
``exec`` runs the Python reference object class on a memory map of the object file: the same
semantics as the C++ class inside a Ceph OSD, without a cluster.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..exceptions import ObjectExistsError, ObjectNotFoundError, StoreURLError
from ..formats.names import validate_name
from ..objclass.reference import run_reference_class
from .base import ObjectInfo, StoreBase


class LocalStore(StoreBase):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()
        self._objects = self.root / "objects"
        self._meta = self.root / "meta"

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StoreURLError(f"a local store URL is file:///absolute/dir, got {url!r}")
        return cls(unquote(parts.path))

    def _path(self, name: str) -> Path:
        return self._objects / validate_name(name)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(name), "rb") as fh:
                fh.seek(offset)
                return fh.read() if length is None else fh.read(length)
        except FileNotFoundError:
            raise ObjectNotFoundError(self.url, name) from None

    def write(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if exclusive:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise ObjectExistsError(self.url, name) from None
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = self._path(name).stat()
        except FileNotFoundError:
            raise ObjectNotFoundError(self.url, name) from None
        return ObjectInfo(name, st.st_size, st.st_mtime)

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the directory the prefix names, not the whole store.
        start = self._objects / prefix.rpartition("/")[0] if "/" in prefix else self._objects
        names = []
        for dirpath, _dirs, files in os.walk(start):
            rel = Path(dirpath).relative_to(self._objects).as_posix()
            for fn in files:
                if fn.startswith(".tmp-"):
                    continue
                name = fn if rel == "." else f"{rel}/{fn}"
                if name.startswith(prefix):
                    names.append(name)
        return iter(sorted(names))

    def delete(self, name: str) -> None:
        for path in (self._path(name), self._meta_path(name)):
            path.unlink(missing_ok=True)

    def delete_if(self, name: str, expected: bytes) -> bool:
        path = self._path(name)
        try:
            handle = open(path, "rb")  # noqa: SIM115 -- closed below, after the unlink
        except FileNotFoundError:
            return False
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # callers checking this file take turns
            if handle.read(len(expected) + 1) != expected:
                return False
            try:
                current = path.stat()
            except FileNotFoundError:
                return False  # an earlier caller removed it
            opened = os.fstat(handle.fileno())
            if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
                return False  # the name now holds a newer object
            path.unlink()
            self._meta_path(name).unlink(missing_ok=True)
            return True

    def _meta_path(self, name: str) -> Path:
        return self._meta / f"{validate_name(name)}.json"

    def get_meta(self, name: str) -> dict[str, bytes]:
        self.stat(name)
        try:
            raw = json.loads(self._meta_path(name).read_text())
        except FileNotFoundError:
            return {}
        return {k: bytes.fromhex(v) for k, v in raw.items()}

    def set_meta(self, name: str, key: str, value: bytes) -> None:
        meta = self.get_meta(name)
        meta[key] = value
        path = self._meta_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text(json.dumps({k: v.hex() for k, v in meta.items()}))
        os.replace(tmp, path)

    def exec(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        import pyarrow as pa

        size = self.stat(name).size
        with pa.memory_map(str(self._path(name)), "r") as source:
            return run_reference_class(cls, method, source, payload, size=size, name=name)
