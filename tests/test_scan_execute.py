"""``scan.execute``, the object class entry point: every kind of source, the metrics it reports,
and errors naming the payload, method, column or object at fault."""

from __future__ import annotations

import awkward as ak
import pyarrow as pa
import pytest
from scan_support import call, col, events_table, lit, sample_events

from skyhook_dask.exceptions import ObjectFormatError, ProtocolError, UnknownColumnError
from skyhook_dask.formats.objects import RangeFile, write_object
from skyhook_dask.formats.protocol import Aggregate, ScanRequest, decode_result
from skyhook_dask.objclass import scan

events = pytest.fixture(scope="module")(sample_events)
table = pytest.fixture(scope="module")(events_table)


@pytest.fixture(scope="module")
def obj(table: pa.Table) -> bytes:
    return write_object(table, "lz4")


@pytest.fixture(params=["bytes", "buffer_reader", "memory_map", "range_file"], scope="module")
def sources(request: pytest.FixtureRequest, obj: bytes, tmp_path_factory: pytest.TempPathFactory):
    """A factory of fresh sources of one kind over the same object."""
    if request.param == "bytes":
        return lambda: obj
    if request.param == "buffer_reader":
        return lambda: pa.BufferReader(obj)
    if request.param == "memory_map":
        path = tmp_path_factory.mktemp("objects") / "object.arrow"
        path.write_bytes(obj)
        return lambda: pa.memory_map(str(path))
    return lambda: RangeFile(lambda offset, length: obj[offset : offset + length], len(obj))


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_execute_scan_round_trip(sources, obj: bytes, table: pa.Table, compression) -> None:
    predicate = call("any", call("greater", col("Muon_pt"), lit(20.0)))
    request = ScanRequest(("event_id", "Muon_pt", "MET_pt"), predicate, (), compression)
    source = sources()
    result, metrics = decode_result(scan.execute("scan", source, request.encode(), name="ds/0"))
    expected = scan.scan_table(table, request)
    assert result.equals(expected.replace_schema_metadata(None))
    assert (metrics.rows_in, metrics.rows_out) == (table.num_rows, expected.num_rows)
    assert metrics.object_size == len(obj)
    # 4 of 162 columns; with 40 events the footer and batch metadata are most of what is read.
    assert 0 < metrics.bytes_read < len(obj) / 2
    assert metrics.elapsed_ns > 0
    if isinstance(source, RangeFile):  # every byte counted came through the source
        assert metrics.bytes_read == source.bytes_read


def test_bytes_read_grows_with_columns(obj: bytes, table: pa.Table) -> None:
    def bytes_read(method: str, request: ScanRequest) -> int:
        return decode_result(scan.execute(method, obj, request.encode()))[1].bytes_read

    one = bytes_read("scan", ScanRequest(("MET_pt",)))
    three = bytes_read("scan", ScanRequest(("MET_pt", "Jet_pt", "Muon_pt")))
    everything = bytes_read("scan", ScanRequest())
    counting = bytes_read("aggregate", ScanRequest(aggregates=(Aggregate("count"),)))
    assert max(counting, one) < three < everything <= len(obj)


def test_execute_aggregate_and_stat(obj: bytes, table: pa.Table, events: ak.Array) -> None:
    request = ScanRequest(
        predicate=call("greater", col("MET_pt"), lit(30.0)),
        aggregates=(Aggregate("count"), Aggregate("max", col("Jet_pt"))),
        compression="zstd",
    )
    result, metrics = decode_result(scan.execute("aggregate", obj, request.encode()))
    assert result.equals(scan.aggregate_table(table, request))
    assert metrics.rows_out == result.column("0")[0].as_py() == int(ak.sum(events.MET_pt > 30))
    stats, metrics = decode_result(scan.execute("stat", obj, b"", object_size=123))
    assert (metrics.rows_in, metrics.object_size) == (table.num_rows, 123)
    assert stats.column("column").to_pylist() == table.column_names
    met = stats.to_pylist()[table.column_names.index("MET_pt")]
    assert (met["min"], met["max"]) == (float(ak.min(events.MET_pt)), float(ak.max(events.MET_pt)))


@pytest.mark.parametrize(
    "payload",
    [b"", b"XXXX\x01\x00\x00\x00", ScanRequest().encode()[:-1], ScanRequest().encode() + b"\x00"],
    ids=["empty", "bad magic", "truncated", "trailing"],
)
def test_malformed_payloads(obj: bytes, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        scan.execute("scan", obj, payload)


def test_unknown_method_and_empty_aggregate(obj: bytes) -> None:
    with pytest.raises(ProtocolError, match="unknown method 'delete'"):
        scan.execute("delete", obj, ScanRequest().encode())
    with pytest.raises(ProtocolError, match="at least one aggregate"):
        scan.execute("aggregate", obj, ScanRequest().encode())


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("scan", ScanRequest(("Muon_ptt",))),
        ("scan", ScanRequest(("MET_pt",), call("greater", col("Muon_ptt"), lit(1.0)))),
        ("scan", ScanRequest((), call("greater", col("Muon_ptt"), lit(1.0)))),
        ("aggregate", ScanRequest(aggregates=(Aggregate("sum", col("Muon_ptt")),))),
    ],
)
def test_unknown_column_names_column_and_object(obj: bytes, method: str, request_) -> None:
    with pytest.raises(UnknownColumnError, match=r"'Muon_ptt' in object ds/7.*'Muon_pt'"):
        scan.execute(method, obj, request_.encode(), name="ds/7")


def test_not_an_object(obj: bytes) -> None:
    with pytest.raises(ObjectFormatError, match="ds/9"):
        scan.execute("stat", b"not an arrow file at all", b"", name="ds/9")
    with pytest.raises(ObjectFormatError, match="ds/9"):
        scan.execute(
            "scan", obj[: len(obj) // 2] + obj[-4096:], ScanRequest().encode(), name="ds/9"
        )
