"""librados errors as the typed errors of :mod:`skyhook_dask.exceptions`, each naming the user,
the pool and the object, and saying what to do about it."""

from __future__ import annotations

import errno

from ..exceptions import (
    ClassNotAvailableError,
    ObjectExistsError,
    ObjectFormatError,
    ObjectNotFoundError,
    ProtocolError,
    QueryError,
    QueryTypeError,
    SkyhookError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)

# errnos of a cluster that did not answer in time: worth retrying on a fresh connection
UNAVAILABLE = {
    errno.ETIMEDOUT,
    errno.EINTR,
    errno.ESHUTDOWN,
    errno.ENOTCONN,
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
}


def operation_error(
    exc: Exception, action: str, name: str | None, user: str, pool: str, timeout: float
) -> SkyhookError:
    """The error for a failed ``action`` ("read", "create", ...) on object ``name``."""
    code = getattr(exc, "errno", None)
    what = f"object {name!r} in pool {pool!r}" if name else f"pool {pool!r}"
    if code == errno.ENOENT and name:
        return ObjectNotFoundError(f"RADOS pool {pool!r}", name)
    if code == errno.EEXIST and name:
        return ObjectExistsError(f"RADOS pool {pool!r}", name)
    if code in (errno.EPERM, errno.EACCES):
        return StorePermissionError(
            f"{user} may not {action} {what} (errno {code}); its OSD caps must "
            f"allow this, e.g. osd 'allow rwx pool={pool}'"
        )
    if code in UNAVAILABLE or action == "open":
        return StoreUnavailableError(
            f"cannot {action} {what}: the cluster did not answer {user} within "
            f"{timeout:g} s ({exc})"
        )
    if code in (errno.E2BIG, errno.EFBIG, errno.EMSGSIZE):
        return StoreError(
            f"cannot {action} {what}: larger than the cluster allows "
            f"(osd_max_write_size / osd_max_object_size): {exc}"
        )
    if code == errno.ENOSPC:
        return StoreError(f"cannot {action} {what}: the pool is full")
    return StoreError(f"cannot {action} {what}: {exc}")


def class_call_error(
    exc: Exception, cls: str, method: str, name: str, bound: int, user: str, pool: str
) -> SkyhookError | None:
    """The error for a failed call of ``cls.method`` on object ``name``, from the errno the
    class returned; None when the errno is not the class's own (an :func:`operation_error`)."""
    code = getattr(exc, "errno", None)
    call = f"{cls}.{method} on object {name!r} in pool {pool!r}"
    if code == errno.EOPNOTSUPP:
        return ClassNotAvailableError(
            f"cannot call {call}: the OSD has no object class {cls!r} with a method "
            f"{method!r} (is libcls_{cls}.so in its `osd class dir` and allowed by "
            "`osd class load list`?)"
        )
    if code == errno.EINVAL:
        return ProtocolError(
            f"{call} rejected its request as invalid (EINVAL); the OSD log has the reason"
        )
    if code == errno.ENODATA:
        return QueryError(f"{call}: a requested column is not in the object (ENODATA)")
    if code == errno.EDOM:
        return QueryTypeError(
            f"{call}: the query does not fit the object's column types (EDOM); "
            "the OSD log has the reason"
        )
    if code == errno.EIO:
        return ObjectFormatError(f"{call}: the object is unreadable or corrupt (EIO)")
    if code == errno.ERANGE:
        return StoreError(f"{call} returned more than {bound} bytes")
    if code in (errno.EPERM, errno.EACCES):
        return StorePermissionError(
            f"{user} may not call {call} (errno {code}); class calls need osd caps "
            f"'allow rwx pool={pool}' or 'allow rw class-read class-write'"
        )
    return None
