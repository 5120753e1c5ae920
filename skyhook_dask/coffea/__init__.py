"""coffea front end: unchanged coffea processors over Skyhook datasets with coffea's own
executors (``run``, ``SkyhookRunner``), NanoEvents whose columns are fetched lazily through
the object class, and the preselection evaluated in the storage.

Layer: front end. Imports ``runtime``, ``plan`` and below. Needs the ``coffea`` extra.
"""

from __future__ import annotations

try:
    import coffea as _coffea  # noqa: F401  (the library, not this package)
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"skyhook_dask.coffea needs coffea ({exc}): pip install 'skyhook-dask[coffea]'"
    ) from exc

from .chunks import RunReport, SkyhookWorkItem, work_items
from .executor import SkyhookRunner, run

__all__ = ["RunReport", "SkyhookRunner", "SkyhookWorkItem", "run", "work_items"]
