"""Object classes for backends that have no OSD: the Python reference implementation."""

from __future__ import annotations

from typing import Any

from ..exceptions import ClassNotAvailableError
from ..protocol import CLASS_NAME

METHODS = ("scan", "aggregate", "stat")


def run_reference_class(
    cls: str, method: str, source: Any, payload: bytes, *, size: int, name: str
) -> bytes:
    """Run ``cls.method`` on one object the way the OSD would."""
    if cls != CLASS_NAME or method not in METHODS:
        raise ClassNotAvailableError(
            f"object class method {cls}.{method} is not available (object {name!r}); "
            f"this backend provides {CLASS_NAME}.{{{', '.join(METHODS)}}}"
        )
    from ..scan import execute

    return execute(method, source, payload, object_size=size, name=name)
