"""Ingest: ROOT files (TTrees and RNTuples) cut into Arrow IPC objects, published with a
manifest written last; coffea filesets (``fileset.py``, a dataset per entry); dataset schemas and
``writeArrowTable``; the NanoAOD-like generator.

Layer: ingest. Imports ``catalog``, ``storage``, ``formats`` and the ground floor. The files of
one ingest run over whatever mapper the caller passes (this process, or Dask workers).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = (
    "IngestOptions",
    "add_dataset_schema",
    "collect_garbage",
    "ingest_file",
    "publish",
    "write_arrow_table",
    "write_dataset",
)
__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    # Imported on first use: ``skyhook generate`` and ``--help`` need none of the pipeline.
    if name in _PUBLIC:
        return getattr(importlib.import_module(".pipeline", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
