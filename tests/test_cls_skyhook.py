"""The C++ object class ``skyhook`` inside a real OSD, against the Python reference class.

Every result the class returns must equal what :func:`skyhook_dask.objclass.scan.execute`
returns for the same object bytes and request (schema, types and values; NaN equals NaN), and
every error must be the reference's error class: ProtocolError <-> EINVAL, UnknownColumnError
<-> ENODATA, QueryTypeError <-> EDOM, ObjectFormatError <-> EIO. The reference itself is
checked against uproot + awkward in test_scan.py; a few queries here are checked against awkward
directly too.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import uproot
from cls_cases import (
    CRAFTED,
    NANO_QUERIES,
    aggregate_requests,
    assert_alive,
    assert_same_result,
    call_class,
    call_reference,
    check,
    col,
    corrupted,
    fn,
    fuzzed_payload,
    hist_requests,
    lit,
    many_nodes,
    nested_predicate,
    outcome,
    put,
    random_table,
    raw_request,
    scan_requests,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skyhook_dask.ceph import build_class as builder
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import ClassNotAvailableError
from skyhook_dask.formats.histogram import Axis, Histogram
from skyhook_dask.formats.objects import write_object
from skyhook_dask.formats.protocol import Aggregate, ScanRequest, decode_result
from skyhook_dask.objclass import scan

try:
    import rados
except ImportError:  # the ceph_cluster fixture skips (or fails under CI) without it
    rados = None

CEPH = pytest.mark.ceph

DATA = sample_path("nano_dy.root")
BRANCHES = "/^(Muon|Jet|MET|Electron)_|^n(Muon|Jet|Electron)$/"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ioctx(ceph_cluster: object) -> Iterator[object]:
    cluster = rados.Rados(
        conffile=str(ceph_cluster.conf_path),  # type: ignore[attr-defined]
        name=f"client.{ceph_cluster.user}",  # type: ignore[attr-defined]
        conf={"keyring": str(ceph_cluster.keyring_path)},  # type: ignore[attr-defined]
    )
    cluster.connect()
    io = cluster.open_ioctx(ceph_cluster.pool)  # type: ignore[attr-defined]
    yield io
    io.close()
    cluster.shutdown()


@pytest.fixture(scope="module")
def osd_pid(ceph_cluster: object) -> int:
    pid_files = sorted((Path(ceph_cluster.dir) / "run").glob("osd.*.pid"))  # type: ignore[attr-defined]
    assert pid_files, "the dev cluster has no OSD pid file"
    return int(pid_files[0].read_text().strip())


# --- real NanoAOD data, against the reference and awkward --------------------------------------


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(DATA)["Events"].arrays(filter_name=BRANCHES, library="ak")


@pytest.fixture(scope="module")
def nano(events: ak.Array) -> bytes:
    table = ak.to_arrow_table(events, extensionarray=False)
    table = table.add_column(0, "event_id", pa.array(np.arange(len(events)), pa.int64()))
    return write_object(table, "lz4")


@CEPH
@pytest.mark.parametrize("query", NANO_QUERIES)
def test_scan_on_nanoaod_matches_reference_and_awkward(
    ioctx: object, nano: bytes, events: ak.Array, query: str
) -> None:
    predicate, truth = NANO_QUERIES[query]
    request = ScanRequest(("event_id", "Muon_pt", "MET_pt"), predicate, compression="zstd")
    table = check(ioctx, nano, "scan", request)
    assert table is not None
    mask = ak.fill_none(truth(events), False)
    assert table.column("event_id").to_pylist() == np.flatnonzero(ak.to_numpy(mask)).tolist()
    assert table.column("Muon_pt").to_pylist() == ak.to_list(events.Muon_pt[mask])


@CEPH
def test_aggregate_on_nanoaod(ioctx: object, nano: bytes, events: ak.Array) -> None:
    request = ScanRequest(
        predicate=fn("greater_equal", col("nMuon"), lit(1, "uint32")),
        aggregates=(
            Aggregate("count"),
            Aggregate("sum", col("Muon_pt")),
            Aggregate("min", col("MET_pt")),
            Aggregate("max", fn("len", col("Jet_pt"))),
            Aggregate("mean", col("Jet_eta")),
        ),
    )
    table = check(ioctx, nano, "aggregate", request)
    assert table is not None
    row = table.to_pylist()[0]
    sel = events[events.nMuon >= 1]
    assert row["0"] == len(sel)
    assert row["1"] == pytest.approx(float(ak.sum(sel.Muon_pt)), rel=1e-6)
    assert row["1.n"] == int(ak.count(sel.Muon_pt))
    assert row["2"] == pytest.approx(float(ak.min(sel.MET_pt)))
    assert row["3"] == int(ak.max(ak.num(sel.Jet_pt)))
    assert row["4"] / row["4.n"] == pytest.approx(float(ak.mean(ak.flatten(sel.Jet_eta))))


@CEPH
def test_stat_on_nanoaod(ioctx: object, nano: bytes, events: ak.Array) -> None:
    table = check(ioctx, nano, "stat", None)
    assert table is not None
    rows = {r["column"]: r for r in table.to_pylist()}
    muon_pt = ak.to_arrow(events.Muon_pt, extensionarray=False)
    assert rows["Muon_pt"]["type"] == str(muon_pt.type)  # large_list<item: float not null>
    assert rows["Muon_pt"]["nulls"] == 0
    assert rows["Muon_pt"]["min"] == pytest.approx(float(ak.min(events.Muon_pt)))
    assert rows["nMuon"]["max"] == float(ak.max(events.nMuon))


def _half_floats() -> pa.Table:
    halves = np.array([1.5, -2.0, np.nan, 65504.0], dtype=np.float16)
    return pa.table(
        {
            "event_id": pa.array(np.arange(4), pa.int64()),
            "h": pa.array(halves),
            "hs": pa.array([[h] for h in halves], pa.large_list(pa.float16())),
        }
    )


@CEPH
def test_stat_of_half_floats_has_no_bounds(ioctx: object) -> None:
    """Arrow compute has no half-float min_max: both classes report the column without bounds."""
    table = check(ioctx, write_object(_half_floats(), None), "stat", None)
    assert table is not None
    rows = {r["column"]: r for r in table.to_pylist()}
    assert rows["h"]["min"] is rows["hs"]["max"] is None
    assert rows["h"]["nulls"] == 0 and rows["event_id"]["max"] == 3.0


@CEPH
def test_every_column_and_no_predicate(ioctx: object, nano: bytes) -> None:
    table = check(ioctx, nano, "scan", ScanRequest(compression="lz4"))
    assert table is not None and table.num_rows == 40


# --- differential testing on random data -------------------------------------------------------

SETTINGS = settings(
    max_examples=int(os.environ.get("SKYHOOK_CLS_EXAMPLES", "120")),  # raise it for a soak run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@CEPH
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40), request=scan_requests())
def test_random_scans_match_reference(ioctx: object, seed: int, rows: int, request: object) -> None:
    compression = random.Random(seed).choice([None, "lz4", "zstd"])
    table = check(ioctx, write_object(random_table(seed, rows), compression), "scan", request)
    event(outcome(table) + (", derived columns" if request.derived else ""))  # type: ignore[attr-defined]


@CEPH
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40), request=aggregate_requests())
def test_random_aggregates_match_reference(
    ioctx: object, seed: int, rows: int, request: object
) -> None:
    table = check(ioctx, write_object(random_table(seed, rows), "lz4"), "aggregate", request)
    event(outcome(table))


@CEPH
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40), request=hist_requests())
def test_random_histograms_match_reference(
    ioctx: object, seed: int, rows: int, request: ScanRequest
) -> None:
    table = check(ioctx, write_object(random_table(seed, rows), "lz4"), "hist", request)
    filled = table is not None and pc.sum(table.column(0)).as_py() > 0
    event("error" if table is None else "filled" if filled else "empty")


@CEPH
def test_histograms_of_values_without_nulls(ioctx: object) -> None:
    """Values with no null anywhere take the class's copying path: still equal to the reference,
    flat values repeated per element, lists of two lengths refused."""
    rng = np.random.default_rng(11)
    lengths = rng.integers(0, 6, 500)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int64())
    table = pa.table(
        {
            "event_id": pa.array(np.arange(500), pa.int64()),
            "met": pa.array(rng.exponential(30, 500).astype(np.float32)),
            "pt": pa.LargeListArray.from_arrays(offsets, rng.exponential(40, lengths.sum())),
            "eta": pa.LargeListArray.from_arrays(offsets, rng.normal(0, 2, lengths.sum())),
            "other": pa.array([[1.0]] * 500, pa.large_list(pa.float64())),
            "n": pa.array(lengths.astype(np.int32)),
            "edge": pa.array(  # NaN, infinities, bin edges, -0.0 and far values, no null
                np.resize([np.nan, np.inf, -np.inf, -1.0, 1.0, -0.0, 0.5, 1e300, -1e300], 500)
            ),
        }
    )
    data = write_object(table, "lz4")
    regular = Axis(col("pt"), 20, 0, 100)
    cases = [
        Histogram((regular,)),
        Histogram((Axis(col("met"), 10, 0, 100), Axis(col("eta"), edges=(-2.5, 0, 2.5)))),
        Histogram((regular,), col("met")),
        Histogram(
            (Axis(fn("list_filter", col("pt"), fn("greater", col("eta"), lit(0))), 5, 0, 50),)
        ),
        Histogram((Axis(col("n"), 4, 0, 4),)),
        Histogram((Axis(col("edge"), 8, -1, 1),)),
        Histogram((regular, Axis(col("other"), 2, 0, 2))),
    ]
    results = [check(ioctx, data, "hist", ScanRequest(histogram=h)) for h in cases]
    assert all(t is not None and pc.sum(t.column(0)).as_py() > 0 for t in results[:6])
    assert results[6] is None  # the lists differ in length: EDOM from both classes
    # An event-level where on list reductions without nulls, filling a flat value.
    for reduction in ("count", "any", "all"):
        hard = fn(reduction, fn("greater", col("pt"), lit(20.0)))
        where = fn("greater_equal", hard, lit(2)) if reduction == "count" else hard
        request = ScanRequest(predicate=where, histogram=Histogram((Axis(col("met"), 10, 0, 100),)))
        table = check(ioctx, data, "hist", request)
        assert table is not None and 0 < pc.sum(table.column(0)).as_py() < 500, reduction


@CEPH
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 40))
def test_random_stats_match_reference(ioctx: object, seed: int, rows: int) -> None:
    check(ioctx, write_object(random_table(seed, rows), None), "stat", None)


@CEPH
def test_multi_batch_object(ioctx: object) -> None:
    table = pa.concat_tables([random_table(1, 30), random_table(2, 25), random_table(3, 0)])
    table = table.set_column(0, "event_id", pa.array(np.arange(table.num_rows), pa.int64()))
    predicate = fn("any", fn("greater", col("lf"), col("f64")))
    result = check(ioctx, write_object(table, "zstd"), "scan", ScanRequest((), predicate))
    assert result is not None and result.num_rows > 0


@CEPH
def test_float_list_sums_equal_numpy_bit_for_bit(ioctx: object) -> None:
    """Long float lists: sum() adds as numpy's add.reduceat does (pairwise), to the last bit."""
    rng = np.random.default_rng(8)
    lengths = rng.integers(0, 400, 60)
    values = rng.standard_normal(int(lengths.sum())) * 10.0 ** rng.uniform(-5, 8, lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    spans = list(itertools.pairwise(offsets))
    expected = [float(np.add.reduceat(values[a:b], [0])[0]) if b > a else 0.0 for a, b in spans]
    exact = [math.fsum(values[a:b]) for a, b in spans]
    table = pa.table(
        {
            "event_id": pa.array(np.arange(60), pa.int64()),
            "x": pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values)),
            "numpy_sum": pa.array(expected),
        }
    )
    request = ScanRequest(("event_id",), fn("equal", fn("sum", col("x")), col("numpy_sum")))
    result = check(ioctx, write_object(table, "lz4"), "scan", request)
    assert result is not None and result.num_rows == 60
    assert expected != exact  # the data does tell summation orders apart


# --- errors, malformed input, robustness -------------------------------------------------------


@pytest.fixture(scope="module")
def small(ioctx: object) -> Iterator[tuple[str, bytes]]:
    data = write_object(random_table(7, 20), "lz4")
    name = put(ioctx, data)
    yield name, data
    ioctx.remove_object(name)  # type: ignore[attr-defined]


@CEPH
@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (ScanRequest(("no_such_column",)), errno.ENODATA),
        (ScanRequest((), fn("greater", col("missing"), lit(1.0))), errno.ENODATA),
        (ScanRequest((), fn("invert", col("f64"))), errno.EDOM),
        (ScanRequest((), fn("greater", col("lf"), lit(1.0))), errno.EDOM),  # not reduced
        (ScanRequest((), fn("any", col("b"))), errno.EDOM),  # reduction of a flat column
        (ScanRequest((), fn("any", fn("greater", col("li"), col("lf")))), errno.EDOM),
        (ScanRequest((), fn("equal", col("i8"), lit(300, "int8"))), errno.EDOM),
        (ScanRequest((), fn("abs", col("f64"), col("f32"))), errno.EDOM),  # arity
        (ScanRequest((), fn("less", fn("divide", col("s"), col("f64")), lit(1.0))), errno.EDOM),
    ],
)
def test_query_errors(
    ioctx: object, small: tuple[str, bytes], request_: ScanRequest, code: int
) -> None:
    name, data = small
    payload = request_.encode()
    assert call_reference(data, "scan", payload) == code
    assert call_class(ioctx, name, "scan", payload) == code


@CEPH
def test_object_errors(ioctx: object) -> None:
    payload = ScanRequest().encode()
    assert call_class(ioctx, f"missing-{uuid.uuid4().hex}", "scan", payload) == errno.ENOENT
    name = put(ioctx, b"not an arrow file" * 10)
    assert call_class(ioctx, name, "scan", payload) == errno.EIO
    ioctx.remove_object(name)  # type: ignore[attr-defined]
    aggregate_nothing = ScanRequest().encode()
    name = put(ioctx, write_object(random_table(3, 5)))
    assert call_class(ioctx, name, "aggregate", aggregate_nothing) == errno.EINVAL
    ioctx.remove_object(name)  # type: ignore[attr-defined]


@CEPH
@pytest.mark.parametrize("case", CRAFTED)
def test_malformed_requests_are_einval(
    ioctx: object, small: tuple[str, bytes], osd_pid: int, case: str
) -> None:
    name, data = small
    for method in ("scan", "aggregate"):
        assert call_reference(data, method, CRAFTED[case]) == errno.EINVAL
        assert call_class(ioctx, name, method, CRAFTED[case]) == errno.EINVAL
    assert_alive(osd_pid)


@CEPH
def test_limits_are_inclusive(ioctx: object, small: tuple[str, bytes]) -> None:
    """Depth 64 and 4096 nodes are still accepted (and agree with the reference)."""
    name, data = small
    for payload in (raw_request(nested_predicate(64)), raw_request(many_nodes(4096))):
        want = call_reference(data, "scan", payload)
        assert want == errno.EDOM  # valid requests whose predicate is not boolean
        assert call_class(ioctx, name, "scan", payload) == want


@CEPH
def test_fuzzed_requests(ioctx: object, small: tuple[str, bytes], osd_pid: int) -> None:
    """Random bytes and mutations of valid requests: same outcome as the reference."""
    name, data = small
    rng = random.Random(20240611)
    valid = [
        ScanRequest(("event_id", "lf"), fn("any", fn("greater", col("lf"), col("f32")))),
        ScanRequest((), fn("and_kleene", col("b"), fn("less", col("i16"), lit(3, "int16")))),
        ScanRequest(aggregates=(Aggregate("sum", col("li")), Aggregate("count"))),
        ScanRequest(
            ("d", "lf"),
            derived=(("d", fn("list_filter", col("lf"), fn("greater", col("lf"), col("f32")))),),
        ),
    ]
    outcomes: dict[object, int] = {}
    for i in range(400):
        payload = fuzzed_payload(rng, valid, i)
        method = "aggregate" if i % 3 == 0 else "scan"
        want = call_reference(data, method, payload)
        got = call_class(ioctx, name, method, payload)
        if isinstance(want, int):
            assert got == want, f"payload {payload!r}: class {got!r:.100}, reference {want}"
        else:
            assert_same_result(got, want)
        key = want if isinstance(want, int) else "ok"
        outcomes[key] = outcomes.get(key, 0) + 1
    assert_alive(osd_pid)
    assert outcomes.get(errno.EINVAL, 0) > 100  # the fuzzing did exercise the decoder


@CEPH
def test_corrupt_objects_never_crash_the_osd(ioctx: object, osd_pid: int) -> None:
    rng = random.Random(99)
    good = write_object(random_table(11, 30), rng.choice(["lz4", None]))
    payload = ScanRequest((), fn("any", fn("greater", col("lf"), col("f64")))).encode()
    results = {"ok": 0, "error": 0}
    for _ in range(150):
        name = put(ioctx, corrupted(good, rng))
        for method, request in (("scan", payload), ("stat", b"")):
            got = call_class(ioctx, name, method, request)
            if isinstance(got, int):
                assert got in (errno.EIO, errno.EDOM, errno.ENODATA), (method, got)
                results["error"] += 1
            else:
                decode_result(got)  # whatever came back is a readable stream
                results["ok"] += 1
        ioctx.remove_object(name)  # type: ignore[attr-defined]
    assert_alive(osd_pid)
    assert results["error"] > 0


# --- column selectivity ------------------------------------------------------------------------


@CEPH
def test_projection_reads_only_the_needed_columns(ioctx: object) -> None:
    rng = np.random.default_rng(5)
    rows = 20_000
    columns = {"event_id": pa.array(np.arange(rows), pa.int64())}
    for i in range(99):
        columns[f"c{i:02d}"] = pa.array(rng.standard_normal(rows).astype(np.float32))
    data = write_object(pa.table(columns), "lz4")
    request = ScanRequest(("event_id", "c10"), fn("greater", col("c42"), lit(2.0)))
    name = put(ioctx, data)
    try:
        got = call_class(ioctx, name, "scan", request.encode())
        full = call_class(ioctx, name, "scan", ScanRequest().encode())
    finally:
        ioctx.remove_object(name)  # type: ignore[attr-defined]
    assert_same_result(got, scan.execute("scan", data, request.encode()))
    _, metrics = decode_result(got)  # type: ignore[arg-type]
    _, full_metrics = decode_result(full)  # type: ignore[arg-type]
    assert metrics.object_size == len(data)
    assert metrics.rows_in == rows
    assert metrics.rows_out == int(np.sum(columns["c42"].to_numpy() > 2.0))
    # 3 of 100 columns: about 3 % of the body plus the footer.
    assert 0 < metrics.bytes_read < 0.06 * len(data), (metrics.bytes_read, len(data))
    # Every column: all but the file's leading magic and schema message (the footer has both).
    assert 0.99 * len(data) < full_metrics.bytes_read <= len(data)


@CEPH
def test_concurrent_calls(ioctx: object, small: tuple[str, bytes]) -> None:
    """Calls running at once in the OSD's op threads share nothing: every result is right."""
    name, data = small
    requests = [
        ScanRequest(("event_id", "lf"), fn("any", fn("greater", col("lf"), col("f64")))),
        ScanRequest((), fn("less", col("i32"), lit(0, "int32")), compression="zstd"),
    ]
    payloads = [r.encode() for r in requests]
    expected = [scan.execute("scan", data, p) for p in payloads]
    failures: list[str] = []

    def worker(k: int) -> None:
        for i in range(25):
            which = (k + i) % 2
            got = call_class(ioctx, name, "scan", payloads[which])
            try:
                assert_same_result(got, expected[which])
            except AssertionError as exc:
                failures.append(str(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- building the class ------------------------------------------------------------------------


def _fake_build(out_dir: Path, build_hash: str) -> Path:
    library = out_dir / builder.LIBRARY_NAME
    library.write_bytes(b"stand-in library")
    (out_dir / (builder.LIBRARY_NAME + builder.HASH_SUFFIX)).write_text(build_hash + "\n")
    return library


def test_build_is_skipped_when_sources_and_flags_are_unchanged(tmp_path: Path) -> None:
    library = _fake_build(tmp_path, builder.current_build_hash())
    assert builder.build_class(tmp_path) == library
    assert library.read_bytes() == b"stand-in library"  # not rebuilt
    assert builder.main([str(tmp_path)]) == 0


def test_stale_build_is_rebuilt_and_a_missing_header_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_build(tmp_path, "0" * 64)  # built from other sources
    monkeypatch.setattr(builder, "_OBJCLASS_HEADER", "rados/no_such_header.h")
    with pytest.raises(ClassNotAvailableError, match="rados-objclass-dev"):
        builder.build_class(tmp_path)
    with pytest.raises(ClassNotAvailableError, match="rados-objclass-dev"):
        builder.build_class(tmp_path / "fresh", force=True)
    assert builder.main([str(tmp_path)]) == 1
    assert "apt-get install rados-objclass-dev" in capsys.readouterr().err


def test_build_hash_covers_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "skyhook"
    copy.mkdir()
    for source in builder.source_dir().iterdir():
        (copy / source.name).write_bytes(source.read_bytes())
    monkeypatch.setattr(builder, "source_dir", lambda: copy)
    before = builder.current_build_hash()
    with open(copy / "request.cc", "a") as handle:
        handle.write("\n// changed\n")
    assert builder.current_build_hash() != before


@CEPH
def test_installed_class_is_up_to_date(ceph_cluster: object) -> None:
    build_dir = Path(ceph_cluster.class_build_dir)  # type: ignore[attr-defined]
    library = build_dir / builder.LIBRARY_NAME
    if not library.is_file():
        pytest.skip("the cluster was started without building the class here")
    mtime = library.stat().st_mtime_ns
    assert builder.build_class(build_dir) == library
    assert library.stat().st_mtime_ns == mtime
