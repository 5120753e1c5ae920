"""Object classes for backends that have no OSD: the Python reference implementation.

It also explains the C++ class's refusals: librados hands back only an errno when a class call
fails, so the RADOS backend asks the reference for the reason (:func:`explain_rejection`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exceptions import ClassNotAvailableError, SkyhookError
from ..formats.protocol import CLASS_NAME

METHODS = ("scan", "aggregate", "hist", "stat")


def run_reference_class(
    cls: str, method: str, source: Any, payload: bytes, *, size: int, name: str
) -> bytes:
    """Run ``cls.method`` on one object the way the OSD would."""
    if cls != CLASS_NAME or method not in METHODS:
        raise ClassNotAvailableError(
            f"object class method {cls}.{method} is not available (object {name!r}); "
            f"this backend provides {CLASS_NAME}.{{{', '.join(METHODS)}}}"
        )
    from .scan import execute

    return execute(method, source, payload, object_size=size, name=name)


def explain_rejection(
    method: str, payload: bytes, read_range: Callable[[int, int], bytes], size: int, name: str
) -> SkyhookError | None:
    """The reference's error for a request the C++ class refused, or None if it finds none.

    The request runs first on a row-less copy of the object (its schema, from the footer: a
    few KiB read), which finds every reason that lies in the request or the columns' types --
    malformed request, unknown column, mistyped comparison -- the same error every backend
    raises. A type error that only the values show (a mask from another collection, whose
    lists differ in length in some event) is then found by running it on the object itself,
    reading the columns it needs. Reasons in corrupt buffers are not found.
    """
    from ..formats.objects import RangeFile, open_object, write_object
    from .scan import execute

    try:
        empty = write_object(open_object(RangeFile(read_range, size), name).schema.empty_table())
    except Exception:  # an unreadable footer: the OSD's own errno says as much
        return None
    for source, rows in ((empty, False), (RangeFile(read_range, size), True)):
        try:
            execute(method, source, payload, object_size=size if rows else None, name=name)
        except SkyhookError as reason:
            return reason
        except Exception:  # the request broke the reference differently: no reason to give
            return None
    return None
