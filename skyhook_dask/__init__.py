"""skyhook_dask: query CERN ROOT data stored in Ceph, with select/project run inside the storage.

Importing the package also makes ``dask.dataframe.read_skyhook`` available (dask has no entry
point for readers, so the function is set on the module, as other dask readers' plugins do).
"""

from __future__ import annotations

import dask.dataframe as _dd

from .catalog.model import Dataset, File, RootNode
from .client import SkyhookDM
from .dataframe.reader import read_awkward, read_skyhook

__version__ = "0.1.0"
__all__ = [
    "Dataset",
    "File",
    "RootNode",
    "SkyhookDM",
    "__version__",
    "read_awkward",
    "read_skyhook",
]

_dd.read_skyhook = read_skyhook  # type: ignore[attr-defined]
