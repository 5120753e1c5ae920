"""An in-process backend for tests: ``memory://name`` (shared by every user of that name)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..exceptions import ObjectExistsError, ObjectNotFoundError
from ..formats.names import validate_name
from ..objclass.reference import run_reference_class
from .base import ObjectInfo, StoreBase

_SPACES: dict[str, dict[str, tuple[bytes, float, dict[str, bytes]]]] = {}
_LOCK = threading.Lock()


class MemoryStore(StoreBase):
    def __init__(self, space: str) -> None:
        self.url = f"memory://{space}"
        with _LOCK:
            self._objects = _SPACES.setdefault(space, {})

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        parts = urlsplit(url)
        return cls(parts.netloc + parts.path)

    def _get(self, name: str) -> tuple[bytes, float, dict[str, bytes]]:
        try:
            return self._objects[validate_name(name)]
        except KeyError:
            raise ObjectNotFoundError(self.url, name) from None

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self._get(name)[0]
        return data[offset:] if length is None else data[offset : offset + length]

    def write(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        validate_name(name)
        with _LOCK:
            if exclusive and name in self._objects:
                raise ObjectExistsError(self.url, name)
            meta = self._objects[name][2] if name in self._objects else {}
            self._objects[name] = (bytes(data), time.time(), meta)

    def stat(self, name: str) -> ObjectInfo:
        data, mtime, _ = self._get(name)
        return ObjectInfo(name, len(data), mtime)

    def list(self, prefix: str = "") -> Iterator[str]:
        with _LOCK:
            return iter(sorted(n for n in self._objects if n.startswith(prefix)))

    def delete(self, name: str) -> None:
        with _LOCK:
            self._objects.pop(validate_name(name), None)

    def delete_if(self, name: str, expected: bytes) -> bool:
        validate_name(name)
        with _LOCK:
            held = self._objects.get(name)
            if held is None or held[0] != expected:
                return False
            del self._objects[name]
            return True

    def get_meta(self, name: str) -> dict[str, bytes]:
        return dict(self._get(name)[2])

    def set_meta(self, name: str, key: str, value: bytes) -> None:
        self._get(name)[2][key] = bytes(value)

    def exec(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        data = self._get(name)[0]
        return run_reference_class(cls, method, data, payload, size=len(data), name=name)
