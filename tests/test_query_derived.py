"""Derived columns: ``project Jet_pt[abs(Jet_eta) < 1] as cjet, sqrt(MET_sumEt) as s`` -- the
scan computes them from the selected rows and returns only them (object-level skimming inside
the storage). Values against awkward on the ROOT file, on every backend (Ceph through the C++
class: strict, no fallback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import awkward as ak
import dask
import dask.dataframe as dd
import numpy as np
import pyarrow as pa
import pytest
import uproot

from skyhook_dask import SkyhookDM
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import ProtocolError, QueryError, QuerySyntaxError, QueryTypeError
from skyhook_dask.formats.protocol import ScanRequest, decode_request
from skyhook_dask.query.expr import Call, Column, Literal
from skyhook_dask.query.parser import parse_query

SAMPLE = sample_path("nano_dimuon.root")
F32 = np.float32


def at(array: Any, index: int) -> Any:
    return ak.pad_none(array, index + 1, axis=1)[:, index]


# (projected expression, awkward equivalent, exact): inexact ones are transcendental functions,
# where Arrow's and numpy's implementations may differ in the last bit.
CASES: list[tuple[str, Callable[[Any], Any], bool]] = [
    ("Jet_pt[abs(Jet_eta) < 1]", lambda e: e.Jet_pt[abs(e.Jet_eta) < F32(1)], True),
    ("sqrt(MET_sumEt)", lambda e: np.sqrt(e.MET_sumEt), True),
    ("Muon_pt[1]", lambda e: at(e.Muon_pt, 1), True),
    ("Muon_pt > 20", lambda e: e.Muon_pt > F32(20), True),
    ("Muon_pt[0] > 20", lambda e: ak.fill_none(at(e.Muon_pt, 0) > F32(20), False), True),
    ("sum(Jet_pt[Jet_pt > 30])", lambda e: ak.sum(e.Jet_pt[e.Jet_pt > F32(30)], axis=1), False),
    ("Muon_pt * cosh(Muon_eta)", lambda e: e.Muon_pt * np.cosh(e.Muon_eta), False),
    ("len(Jet_pt)", lambda e: ak.num(e.Jet_pt), True),
    ("MET_pt", lambda e: e.MET_pt, True),
]


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return uproot.open(SAMPLE)["Events"].arrays()


def same(got: list[Any], expected: list[Any], exact: bool, query: str) -> None:
    if exact:
        assert got == expected, query
    else:
        assert ak.almost_equal(ak.Array(got), ak.Array(expected), rtol=1e-6, dtype_exact=False)


def test_derived_columns_equal_awkward(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    sk, file = dimuon_file
    selected = events[events.nMuon >= 1]
    names = [f"d{i}" for i in range(len(CASES))]
    items = zip(CASES, names, strict=True)
    projection = ", ".join(f"{text} as {name}" for (text, _, _), name in items)
    with dask.config.set({"skyhook.strict": True}):  # Ceph: the C++ class, never a fallback
        table = sk.runQuery(file, f"select nMuon >= 1, project event, {projection}")
    assert table.column_names == ["event", *names]
    assert table.column("event").to_pylist() == ak.to_list(selected.event)
    for (text, rule, exact), name in zip(CASES, names, strict=True):
        same(table.column(name).to_pylist(), ak.to_list(rule(selected)), exact, text)


def test_only_the_derived_column_leaves_the_storage(dimuon_file: tuple[SkyhookDM, Any]) -> None:
    sk, file = dimuon_file
    with dask.config.set({"skyhook.strict": True}):
        skim = sk.runQuery(file, "project Jet_pt[abs(Jet_eta) < 1] as cjet")
        whole = sk.runQuery(file, "project Jet_pt")
    assert skim.column_names == ["cjet"]
    assert skim.schema.field("cjet").type == pa.large_list(pa.float32())
    assert skim.num_rows == whole.num_rows
    assert skim.nbytes < whole.nbytes


def test_dataframe_columns_and_types_of_derived_columns(
    dimuon_file: tuple[SkyhookDM, Any], events: ak.Array
) -> None:
    _, file = dimuon_file
    query = "select nMuon >= 2, project sqrt(MET_sumEt) as s, Muon_pt[1] as m2, MET_pt"
    frame = dd.read_skyhook(file, query=query)
    assert list(frame.columns) == ["s", "m2", "MET_pt"]
    selected = events[events.nMuon >= 2]
    with dask.config.set(scheduler="sync"):
        only_s = frame[["s"]].compute()
        pandas = frame.compute()
    assert list(only_s.columns) == ["s"]
    expected_s = np.sqrt(ak.to_numpy(selected.MET_sumEt))
    np.testing.assert_array_equal(only_s["s"].to_numpy(F32), expected_s)
    assert pandas["m2"].tolist() == ak.to_list(selected.Muon_pt[:, 1])
    assert str(frame.dtypes["s"]) == "float[pyarrow]"


@pytest.mark.parametrize(
    "query, error, message",
    [
        ("project sqrt(MET_pt)", QuerySyntaxError, r"needs a name: write 'sqrt\(MET_pt\) as NAME'"),
        ("project MET_pt, sqrt(MET_pt) as MET_pt", QuerySyntaxError, "'MET_pt' is projected twice"),
        ("project sqrt(MET_pt) as MET_phi", QueryError, "already has a column 'MET_phi'"),
        ("project 2 * 3 as six", QueryTypeError, "reads no column"),
        ("project Muon_pt[Jet_pt > 1] as x", QueryTypeError, "Muon_pt.*Jet_pt|Jet_pt.*Muon_pt"),
        ("project sqrt(Nothing) as x", Exception, "unknown column 'Nothing'"),
    ],
)
def test_bad_derived_columns_name_the_fault(
    dimuon_file: tuple[SkyhookDM, Any], query: str, error: type[Exception], message: str
) -> None:
    sk, file = dimuon_file
    with dask.config.set({"skyhook.strict": True}), pytest.raises(error, match=message):
        sk.runQuery(file, query)


def test_derived_columns_render_and_travel() -> None:
    query = parse_query("project Jet_pt[abs(Jet_eta) < 1] as cjet sqrt(x) as `s q` MET_pt")
    assert query.to_string() == (
        "project Jet_pt[abs(Jet_eta) < 1] as cjet, sqrt(x) as `s q`, MET_pt"
    )
    assert parse_query(query.to_string()) == query
    derived = (("s", Call("sqrt", (Column("x"),))),)
    request = ScanRequest(("a", "s"), None, (), None, derived)
    assert decode_request(request.encode()) == request
    assert request.encode()[4] == 2 and ScanRequest(("a",)).encode()[4] == 1  # wire versions
    for columns in [("a",), ("s", "s")]:
        with pytest.raises(ProtocolError, match="projected exactly once"):
            ScanRequest(columns, derived=derived).encode()
    twice = (*derived, ("s", Literal(1.0, "double")))
    with pytest.raises(ProtocolError, match="defined twice"):
        ScanRequest(("s",), derived=twice).encode()
