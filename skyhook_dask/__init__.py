"""skyhook_dask: query CERN ROOT data stored in Ceph, with select/project run inside the storage."""

from __future__ import annotations

__version__ = "0.1.0"
