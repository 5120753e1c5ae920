"""Writing a dataset's objects: rows cut into objects of about one size, each written once.

Shared by ROOT ingestion (:mod:`skyhook_dask.ingest.pipeline`) and table writing
(:mod:`skyhook_dask.ingest.tables`); publishing the manifest that references them is
:mod:`skyhook_dask.ingest.commit`'s.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from ..exceptions import ObjectExistsError
from ..formats import manifest as mf
from ..formats.objects import write_object
from ..formats.segment_stats import stats_of_objects
from ..storage import ObjectStore


def rows_per_object(total_rows: int, bytes_per_row: float, object_size: int) -> int:
    """Rows per object that cut ``total_rows`` into equal objects of at most ~``object_size``."""
    if total_rows <= 0:
        return 1
    parts = max(1, math.ceil(total_rows * bytes_per_row / object_size))
    return math.ceil(total_rows / parts)


# A statistics object costs about eight times one object's statistics in JSON, whatever the
# number of objects (Arrow's schema and batch metadata, ~600 bytes per column): below this many
# objects the manifest keeps them inline.
INLINE_STATS_BELOW = 10


# Object writes under way at once while the next objects are cut: a write to an OSD is a round
# trip (2 ms for a small object on one local OSD) that need not hold up the cutting. Bounded by
# count and by bytes, so that memory stays bounded too.
WRITES_IN_FLIGHT = 4
WRITE_BYTES_IN_FLIGHT = 128 * 2**20


class ObjectWriter:
    """Accumulates row ranges of one tree and writes an object every ``rows_per_object`` rows.

    Use it as a context manager: leaving waits for the writes still under way, also when an
    error leaves, so that nothing is written after an ingest has been discarded.
    """

    def __init__(
        self,
        store: ObjectStore,
        name_of: Callable[[int], str],
        rows_per_object: int,
        compression: str | None,
    ) -> None:
        self.store, self.name_of = store, name_of
        self.rows_per_object, self.compression = max(1, rows_per_object), compression
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.next_event = 0
        self.objects: list[dict[str, Any]] = []
        self.stats: list[pa.Table] = []  # the objects' statistics, a table per step
        self.schema: pa.Schema | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: deque[tuple[Future[None], int]] = deque()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._wait(keep=0, raise_errors=exc_info[0] is None)
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows < self.rows_per_object:
            return
        # one copy per step into single-chunk columns: each object is a slice of it, written
        # as one record batch
        combined = pa.concat_tables(self.pending).combine_chunks()
        full = self.pending_rows // self.rows_per_object * self.rows_per_object
        self._emit_objects(combined.slice(0, full))
        rest = combined.slice(full)
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def flush(self) -> None:
        if self.pending_rows:
            self._emit_objects(pa.concat_tables(self.pending).combine_chunks())
        self.pending, self.pending_rows = [], 0
        self._wait(keep=0)

    def _emit_objects(self, table: pa.Table) -> None:
        """Write ``table`` as objects of ``rows_per_object`` rows (the last may be shorter)."""
        bounds = [*range(0, table.num_rows, self.rows_per_object), table.num_rows]
        self.stats.append(stats_of_objects(table, bounds))  # all objects' at once: cheaper
        self.schema = table.schema
        for start, stop in itertools.pairwise(bounds):
            self._emit(table.slice(start, stop - start))

    def _emit(self, table: pa.Table) -> None:
        # A fresh copy of the slice: Arrow's IPC writer copies a bitmap that starts mid-byte
        # without clearing the bits past its end, so a slice's bytes would differ from run to
        # run (and a re-run task must meet its own earlier object byte for byte).
        columns = [pa.concat_arrays(column.chunks) for column in table.columns]
        table = pa.Table.from_arrays(columns, schema=table.schema)
        data = write_object(table, self.compression)
        name = self.name_of(len(self.objects))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WRITES_IN_FLIGHT, thread_name_prefix="skyhook-write")
        self._in_flight.append((self._pool.submit(self._write_once, name, data), len(data)))
        self._wait(keep=WRITES_IN_FLIGHT)
        self.objects.append(
            {
                "name": name,
                "first_event": self.next_event,
                "stop_event": self.next_event + table.num_rows,
                "rows": table.num_rows,
                "bytes": len(data),
                "uncompressed_bytes": table.nbytes,
                "checksum": mf.checksum(data),
            }
        )
        self.next_event += table.num_rows

    def write_stats(self, name: str) -> dict[str, Any] | None:
        """Write the objects' statistics as object ``name`` and return its manifest reference;
        or, for fewer than INLINE_STATS_BELOW objects, put them in the objects' entries and
        return None."""
        if self.schema is None:
            return None
        table = pa.concat_tables(self.stats)
        if len(self.objects) < INLINE_STATS_BELOW:
            rows = mf.stats_rows(table, self.schema.names)
            for entry, stats in zip(self.objects, rows, strict=True):
                entry["stats"] = stats
            return None
        data = write_object(table, "lz4")
        self._write_once(name, data)
        return {"name": name, "bytes": len(data), "checksum": mf.checksum(data)}

    def _wait(self, keep: int, raise_errors: bool = True) -> None:
        """Wait for the oldest writes until at most ``keep`` (and WRITE_BYTES_IN_FLIGHT) are
        under way; the first failed write raises, after the others are waited for."""
        error: BaseException | None = None
        while self._in_flight and (
            len(self._in_flight) > keep
            or sum(size for _, size in self._in_flight) > WRITE_BYTES_IN_FLIGHT
        ):
            future, _ = self._in_flight.popleft()
            failure = future.exception()
            error = error or failure
            if error is not None:
                keep = 0  # a write failed: the ingest stops, so wait for all of them
        if error is not None and raise_errors:
            raise error

    def _write_once(self, name: str, data: bytes) -> None:
        # exclusive: the ingest folder is fresh, so a name taken means two writers collide --
        # unless it is a re-run of this same task (its Dask worker died) meeting its own
        # earlier object: the same input gives the same bytes, which are then kept.
        try:
            self.store.write(name, data, exclusive=True)
        except ObjectExistsError:
            if self.store.read(name) != data:
                raise
