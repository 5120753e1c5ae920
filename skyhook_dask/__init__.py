"""skyhook_dask: query CERN ROOT data stored in Ceph, with select/project run inside the storage.

Importing the package also makes ``dask.dataframe.read_skyhook`` available (dask has no entry
point for readers, so the function is set on the module, as other dask readers' plugins do):
at once when ``dask.dataframe`` is already imported, else as soon as it is. The public names
are imported on first use, so ``import skyhook_dask`` (and the ``skyhook`` command) start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._dask_hook import register_reader

if TYPE_CHECKING:
    from .catalog.model import Dataset, File, RootNode
    from .client import SkyhookDM
    from .dataframe.reader import read_awkward, read_skyhook
    from .reductions import aggregate, histogram

__version__ = "0.1.0"
__all__ = [
    "Dataset",
    "File",
    "RootNode",
    "SkyhookDM",
    "__version__",
    "aggregate",
    "histogram",
    "read_awkward",
    "read_skyhook",
]

_LAZY = {
    "Dataset": ".catalog.model",
    "File": ".catalog.model",
    "RootNode": ".catalog.model",
    "SkyhookDM": ".client",
    "aggregate": ".reductions",
    "histogram": ".reductions",
    "read_awkward": ".dataframe.reader",
    "read_skyhook": ".dataframe.reader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


register_reader()
