"""Typed errors. Each one names the thing at fault: object, column, dataset, position in a query."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


class SkyhookError(Exception):
    """Base class of every error this package raises on purpose."""


# --- storage -----------------------------------------------------------------------------------


class StoreError(SkyhookError):
    """A storage backend failed."""


class ObjectNotFoundError(StoreError, KeyError):
    def __init__(self, store: str, name: str) -> None:
        super().__init__(f"object {name!r} does not exist in {store}")
        self.store, self.name = store, name

    def __str__(self) -> str:  # KeyError would otherwise print the repr
        return str(self.args[0])


class ObjectExistsError(StoreError):
    def __init__(self, store: str, name: str) -> None:
        super().__init__(f"object {name!r} already exists in {store}")
        self.store, self.name = store, name


class StorePermissionError(StoreError, PermissionError):
    """The storage refused the credentials, or the user may not touch this pool/object."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The storage cannot be reached (cluster down, timeout)."""


class ClassNotAvailableError(StoreError):
    """The in-storage object class (or one of its methods) is not loaded on the OSD."""


class StoreURLError(SkyhookError, ValueError):
    """A store URL that cannot be understood."""


class BackendNotInstalledError(SkyhookError, ImportError):
    """The backend's dependency is missing; the message says how to install it."""


class InvalidNameError(SkyhookError, ValueError):
    """A dataset or object name that is not allowed (path traversal, separators, empty)."""


class ChecksumError(StoreError):
    def __init__(self, name: str, expected: str, actual: str) -> None:
        super().__init__(
            f"object {name!r} is corrupt: checksum {actual} does not match manifest {expected}"
        )
        self.name = name


class ObjectFormatError(StoreError):
    """An object's bytes are not a readable Skyhook object (truncated, corrupt, foreign)."""


# --- catalog and ingest ------------------------------------------------------------------------


class DatasetNotFoundError(SkyhookError, KeyError):
    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"dataset {name!r} does not exist" + _did_you_mean(name, known))
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class DatasetExistsError(SkyhookError):
    """Another writer published (or is publishing) a dataset under this name."""


class IngestError(SkyhookError):
    """A ROOT file could not be ingested; the message names the file (and branch)."""


class DuplicateFileError(IngestError):
    """A file appended to a dataset is already in it (the same ROOT file UUID)."""


class DatasetVersionNotFoundError(DatasetNotFoundError):
    def __init__(self, name: str, version: int, kept: Iterable[int]) -> None:
        listed = ", ".join(str(v) for v in kept) or "none"
        SkyhookError.__init__(
            self, f"dataset {name!r} has no version {version}; the versions kept are: {listed}"
        )
        self.name, self.version = name, version


class SchemaError(SkyhookError, ValueError):
    """A dataset schema document (addDatasetSchema) or a table that does not fit it."""


# --- queries -----------------------------------------------------------------------------------


class QueryError(SkyhookError, ValueError):
    """Base class of errors in a query."""


class QuerySyntaxError(QueryError):
    """A query string that does not parse. The message shows the query with a caret."""

    def __init__(self, message: str, query: str = "", position: int | None = None) -> None:
        self.message, self.query, self.position = message, query, position
        text = message
        if query and position is not None:
            text = f"{message}\n  {query}\n  {' ' * position}^"
        super().__init__(text)


class UnknownColumnError(QueryError, KeyError):
    def __init__(self, column: str, known: Iterable[str] = (), where: str = "") -> None:
        msg = f"unknown column {column!r}" + (f" in {where}" if where else "")
        super().__init__(msg + _did_you_mean(column, known))
        self.column = column

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownTreeError(QueryError, KeyError):
    def __init__(self, tree: str, known: Iterable[str] = ()) -> None:
        known = sorted(known)
        super().__init__(f"unknown tree {tree!r}; the trees are: {', '.join(known) or 'none'}")
        self.tree = tree

    def __str__(self) -> str:
        return str(self.args[0])


class QueryTypeError(QueryError, TypeError):
    """An expression applied to columns of the wrong kind (e.g. a jagged predicate not reduced)."""


class ProtocolError(SkyhookError, ValueError):
    """A scan request or result that cannot be decoded (version, truncation, bad tag)."""


# --- Dask driver -------------------------------------------------------------------------------


class SchedulerUnavailableError(SkyhookError, ConnectionError):
    """The Dask scheduler (SkyhookDM's driver) cannot be reached at the given address."""
