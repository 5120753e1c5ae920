"""``dask.dataframe.read_skyhook``, set without importing dask.dataframe before it is needed.

``import dask.dataframe`` takes about a second; the package and the ``skyhook`` command must
not pay it up front. When dask.dataframe is already imported the reader is set at once;
otherwise a finder on ``sys.meta_path`` sets it right after dask.dataframe is first imported.
"""

from __future__ import annotations

import importlib.abc
import sys
from types import ModuleType
from typing import Any

_TARGET = "dask.dataframe"


def _set_reader(dataframe: ModuleType) -> None:
    from .dataframe.reader import read_skyhook

    dataframe.read_skyhook = read_skyhook  # type: ignore[attr-defined]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps the real loader of dask.dataframe, once."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = getattr(finder, "find_spec", lambda *a: None)(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            _set_reader(module)

        loader.exec_module = exec_module
        return spec


def register_reader() -> None:
    """Make ``dask.dataframe.read_skyhook`` available, now or when dask.dataframe is imported."""
    loaded = sys.modules.get(_TARGET)
    if loaded is not None:
        _set_reader(loaded)
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
