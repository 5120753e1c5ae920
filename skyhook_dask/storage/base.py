"""The storage protocol every backend implements, and the name rules they all enforce.

A backend is addressed by a small picklable *store URL* (``file:///dir``, ``memory://name``,
``rados://pool?conf=...``). Task graphs carry the URL, never a live connection; each process
opens the backend once (see :func:`skyhook_dask.storage.open_store`) and reuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    mtime: float


@runtime_checkable
class ObjectStore(Protocol):
    """What the layers above need from storage. All names pass :func:`validate_name`.

    Writes are atomic: a reader sees the old bytes or the new, never a mix.
    """

    url: str

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes ``[offset, offset+length)`` of an object (to its end when length is None)."""
        ...

    def write(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        """Create or atomically replace an object; ``exclusive`` fails if it exists."""
        ...

    def stat(self, name: str) -> ObjectInfo: ...

    def exists(self, name: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Names starting with ``prefix``, sorted."""
        ...

    def delete(self, name: str) -> None:
        """Remove an object; a missing object is not an error."""
        ...

    def delete_if(self, name: str, expected: bytes) -> bool:
        """Remove the object only if its bytes still equal ``expected``, as one atomic step.

        Returns whether it was removed. Of several callers that saw the same bytes, at most
        one removes them, and nobody removes an object written after they looked: this is
        what makes taking over a dead writer's lock safe.
        """
        ...

    def get_meta(self, name: str) -> dict[str, bytes]:
        """Small key/value metadata of an object (xattrs on Ceph)."""
        ...

    def set_meta(self, name: str, key: str, value: bytes) -> None: ...

    def exec(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        """Run ``cls.method`` *inside the storage* on object ``name`` and return its output.

        The local and memory backends run the Python reference class; RADOS runs the C++
        object class in the OSD. Raises ClassNotAvailableError when the method is missing.
        """
        ...

    def close(self) -> None: ...


class StoreBase:
    """Shared conveniences for concrete backends."""

    url: str

    def exists(self, name: str) -> bool:
        from ..exceptions import ObjectNotFoundError

        try:
            self.stat(name)  # type: ignore[attr-defined]
        except ObjectNotFoundError:
            return False
        return True

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
