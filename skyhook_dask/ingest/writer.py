"""Writing a dataset's objects: rows cut into objects of about one size, each written once.

Shared by ROOT ingestion (:mod:`skyhook_dask.ingest.pipeline`) and table writing
(:mod:`skyhook_dask.ingest.tables`); publishing the manifest that references them is
:mod:`skyhook_dask.ingest.commit`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..exceptions import ObjectExistsError
from ..formats import manifest as mf
from ..formats.objects import write_object
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


class ObjectWriter:
    """Accumulates row ranges of one tree and writes an object every ``rows_per_object`` rows."""

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
        self.stats: list[dict[str, dict[str, Any]]] = []  # per object, for write_stats
        self.schema: pa.Schema | None = None

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= self.rows_per_object:
            combined = pa.concat_tables(self.pending)
            self._emit(combined.slice(0, self.rows_per_object))
            rest = combined.slice(self.rows_per_object)
            self.pending = [rest] if rest.num_rows else []
            self.pending_rows = rest.num_rows

    def flush(self) -> None:
        if self.pending_rows:
            self._emit(pa.concat_tables(self.pending))
        self.pending, self.pending_rows = [], 0

    def _emit(self, table: pa.Table) -> None:
        # One record batch per object, copied so that no buffer starts mid-way (a slice's
        # offsets): then nbytes equals that of the table read back from the object.
        columns = [pa.concat_arrays(column.chunks) for column in table.columns]
        table = pa.Table.from_arrays(columns, schema=table.schema)
        data = write_object(table, self.compression)
        name = self.name_of(len(self.objects))
        self._write_once(name, data)
        self.schema = table.schema
        self.stats.append(mf.table_stats(table))
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
        if len(self.objects) < INLINE_STATS_BELOW or self.schema is None:
            for entry, stats in zip(self.objects, self.stats, strict=True):
                entry["stats"] = stats
            return None
        data = write_object(mf.stats_table(self.stats, self.schema), "lz4")
        self._write_once(name, data)
        return {"name": name, "bytes": len(data), "checksum": mf.checksum(data)}

    def _write_once(self, name: str, data: bytes) -> None:
        # exclusive: the ingest folder is fresh, so a name taken means two writers collide --
        # unless it is a re-run of this same task (its Dask worker died) meeting its own
        # earlier object: the same input gives the same bytes, which are then kept.
        try:
            self.store.write(name, data, exclusive=True)
        except ObjectExistsError:
            if self.store.read(name) != data:
                raise
