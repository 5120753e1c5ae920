"""Shared by the scan tests: the sample's Events tree (awkward arrays and the table an object
holds), expression builders, and the rows a mask selects."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import uproot

from skyhook_dask.data import DATA_DIR
from skyhook_dask.query.expr import Call, Column, Expr, Literal


def sample_file(name: str = "nano_dy.root") -> Path:
    """The bundled sample (package data), else the copy beside the tests."""
    try:
        from skyhook_dask.data import sample_path
    except ImportError:
        return DATA_DIR / name
    return sample_path(name)


DATA = sample_file()
BRANCHES = "/^(Muon|Jet|MET|Electron)_|^n(Muon|Jet|Electron)$/"


def col(name: str) -> Column:
    return Column(name)


def lit(value: bool | int | float, type_: str = "double") -> Literal:
    return Literal(value, type_)


def call(function: str, *args: Expr) -> Call:
    return Call(function, args)


def sample_events() -> ak.Array:
    return uproot.open(DATA)["Events"].arrays(filter_name=BRANCHES, library="ak")


def events_table(events: ak.Array) -> pa.Table:
    """The table an object of the sample holds: event_id first, then the branches."""
    table = ak.to_arrow_table(events, extensionarray=False)
    return table.add_column(0, "event_id", pa.array(np.arange(len(events)), pa.int64()))


def expected_ids(mask: ak.Array) -> list[int]:
    return np.flatnonzero(ak.to_numpy(ak.fill_none(mask, False))).tolist()
