"""The bytes inside one Skyhook object.

An object holds one event range of one tree as an Arrow IPC *file* (the random-access format):
column 0 is ``event_id`` (int64, the entry number in its ROOT file), then one column per branch;
jagged branches are ``list<...>`` columns. The IPC footer records where every record batch
starts and each batch's metadata records where every column buffer lies, so a reader can fetch
only the byte ranges of the columns it needs -- in the OSD (C++ class) and in Python alike.
Buffers may be LZ4- or ZSTD-compressed per buffer (Arrow IPC body compression), which keeps
column access selective.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pyarrow as pa

from ..exceptions import ObjectFormatError, UnknownColumnError

EVENT_ID = "event_id"
COMPRESSIONS = (None, "lz4", "zstd")


def write_object(table: pa.Table, compression: str | None = "lz4") -> bytes:
    """Serialize a table as one object (an Arrow IPC file)."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    sink = pa.BufferOutputStream()
    # Compressing the buffers on Arrow's thread pool was 4x slower than on this thread, for
    # 90 KB and 8 MB tables alike: ingest already runs objects in parallel.
    options = pa.ipc.IpcWriteOptions(compression=compression, use_threads=False)
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over ``read_range(offset, length)``; counts bytes read.

    Wrapped in ``pa.PythonFile`` it lets Arrow's IPC reader pull only the ranges it needs
    from any backend (e.g. RADOS reads when the object class is unavailable).
    """

    def __init__(self, read_range: Callable[[int, int], bytes], size: int) -> None:
        super().__init__()
        self._read_range, self._size, self._pos = read_range, size, 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        size = max(0, min(size, self._size - self._pos))
        if size == 0:
            return b""
        data = self._read_range(self._pos, size)
        self._pos += len(data)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _native(source: pa.NativeFile | bytes | RangeFile) -> pa.NativeFile:
    if isinstance(source, bytes | bytearray | memoryview):
        return pa.BufferReader(source)
    if isinstance(source, RangeFile):
        return pa.PythonFile(source, mode="r")
    return source


def open_object(
    source: pa.NativeFile | bytes | RangeFile,
    name: str = "",
    options: pa.ipc.IpcReadOptions | None = None,
) -> pa.ipc.RecordBatchFileReader:
    """Open an object for reading; raises ObjectFormatError naming ``name`` if it is not one."""
    try:
        reader = pa.ipc.open_file(_native(source), options=options)
        reader.schema.names  # noqa: B018 -- corrupt name bytes fail here, not in the caller
        return reader
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise ObjectFormatError(
            f"object {name or '<bytes>'} is not a readable object: {exc}"
        ) from exc


def read_columns(
    source: pa.NativeFile | bytes | RangeFile, columns: Sequence[str] | None = None, name: str = ""
) -> pa.Table:
    """Read the named columns (all when None) of an object, fetching only their bytes."""
    reader = open_object(source, name)
    if columns is not None:
        names = reader.schema.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise UnknownColumnError(missing[0], names, where=f"object {name or '<bytes>'}")
        wanted = sorted({names.index(c) for c in columns})
        if wanted != list(range(len(names))):
            # Reopen with the field subset: Arrow then reads only those columns' buffers.
            options = pa.ipc.IpcReadOptions(included_fields=wanted)
            reader = open_object(source, name, options)
    try:
        table = reader.read_all()
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise ObjectFormatError(
            f"object {name or '<bytes>'} is truncated or corrupt: {exc}"
        ) from exc
    return table if columns is None else table.select(list(columns))
