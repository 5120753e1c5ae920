"""Reading ahead in a run whose chunks are processed one after another in this process: while
the processor works on a chunk, the next chunk's scan -- of the columns earlier chunks touched --
is already running on a background thread, so storage and processor overlap."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .mapping import Ahead, ChunkColumns

__all__ = ["ReadAhead"]

_Key = tuple[Any, ...]


def chunk_key(item: Any) -> _Key:
    """What tells a run's chunks apart (a work item's usermeta makes it unhashable)."""
    return (item.dataset, item.filename, item.treename, item.entrystart, item.entrystop)


class ReadAhead:
    """The chunks of a run in their processing order, and the one scan started ahead."""

    def __init__(self, items: Sequence[Any]) -> None:
        keys = [chunk_key(item) for item in items]
        self._next = dict(zip(keys, items[1:], strict=False))
        self._pool: ThreadPoolExecutor | None = None
        self._started: dict[_Key, Ahead] = {}

    def next_item(self, item: Any) -> Any:
        return self._next.get(chunk_key(item))

    def take(self, item: Any) -> Ahead | None:
        """The scan started for ``item``, if any (each is taken once)."""
        return self._started.pop(chunk_key(item), None)

    def start(self, item: Any, columns: ChunkColumns, names: Iterable[str]) -> None:
        """Start ``item``'s scan of ``names``; ``columns`` is that chunk's (empty) columns."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="skyhook-readahead")
        ahead = columns.fetch_ahead(names, self._pool)
        if ahead is not None:
            self._started[chunk_key(item)] = ahead

    def close(self) -> None:
        """Drop what was started and not taken (a failed run), and stop the thread."""
        for ahead in self._started.values():
            ahead.future.cancel()
        self._started.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
