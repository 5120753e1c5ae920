"""Checking a dataset's stored objects against its manifest.

Queries read only the byte ranges of the columns they need, so they cannot check an object's
checksum (it covers the whole object). :func:`verify_dataset` reads every object of a dataset
whole and checks that it exists, that its SHA-256 is the one the manifest recorded when the
object was written, and that it is a readable Arrow object of its tree's schema with the
recorded number of rows. A bit flip inside a column buffer that still parses as Arrow (and
would make a query return wrong values) is caught by the checksum.

Every problem is a typed error naming the object: :class:`~exceptions.ObjectNotFoundError`,
:class:`~exceptions.ChecksumError` or :class:`~exceptions.ObjectFormatError`. Objects under the
dataset's ``data/`` folder that the manifest does not reference (left-overs of an interrupted
ingest, which ``collect_garbage`` deletes) are listed too; they are not errors.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from .. import config
from ..exceptions import ChecksumError, ObjectFormatError, ObjectNotFoundError, StoreError
from ..formats import manifest as mf
from ..formats.objects import read_columns
from ..retry import call_with_retries
from ..storage import ObjectStore, open_store
from .model import ObjectEntry, TreeInfo, load_dataset

__all__ = ["VerifyReport", "verify_dataset", "verify_object"]


@dataclass
class VerifyReport:
    """What :func:`verify_dataset` found."""

    dataset: str
    objects: int = 0  # objects checked
    bytes: int = 0  # bytes read and hashed
    errors: list[StoreError] = field(default_factory=list)  # one per bad object
    unreferenced: list[str] = field(default_factory=list)  # garbage under data/

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_first(self) -> None:
        """Raise the first error found (in manifest order), if any."""
        if self.errors:
            raise self.errors[0]

    def __str__(self) -> str:
        state = "ok" if self.ok else f"{len(self.errors)} bad"
        lines = [f"dataset {self.dataset!r}: {self.objects} objects, {self.bytes:,} bytes, {state}"]
        lines += [f"  {error}" for error in self.errors]
        if self.unreferenced:
            lines.append(f"  {len(self.unreferenced)} unreferenced objects (removed by gc)")
        return "\n".join(lines)


def verify_object(store: ObjectStore, entry: ObjectEntry, schema: pa.Schema | None = None) -> int:
    """Check one object against its manifest entry; returns its size. Raises a typed error."""
    data = call_with_retries(lambda: store.read(entry.name), f"reading object {entry.name!r}")
    actual = mf.checksum(data)
    if actual != entry.checksum:
        raise ChecksumError(entry.name, entry.checksum, actual)
    # The bytes are the ones written; a mismatch below means the manifest itself is wrong.
    table = read_columns(data, name=entry.name)
    try:
        table.validate(full=True)
    except pa.ArrowException as exc:
        raise ObjectFormatError(f"object {entry.name!r} holds invalid Arrow data: {exc}") from exc
    if table.num_rows != entry.rows:
        raise ObjectFormatError(
            f"object {entry.name!r} holds {table.num_rows} rows; its manifest entry says "
            f"{entry.rows}"
        )
    if schema is not None and not table.schema.equals(schema):
        raise ObjectFormatError(f"object {entry.name!r} does not have its tree's schema")
    return len(data)


def _check_stats(store: ObjectStore, tree: TreeInfo) -> int | StoreError:
    """A tree's statistics object: present, its checksum, one row per object."""
    assert tree.object_stats is not None
    name, expected = tree.object_stats["name"], tree.object_stats["checksum"]
    try:
        data = call_with_retries(lambda: store.read(name), f"reading object {name!r}")
        if mf.checksum(data) != expected:
            raise ChecksumError(name, expected, mf.checksum(data))
        rows = read_columns(data, name=name).num_rows
        if rows != len(tree.objects):
            raise ObjectFormatError(
                f"object {name!r} holds statistics of {rows} objects; its tree has "
                f"{len(tree.objects)}"
            )
    except (ObjectNotFoundError, ChecksumError, ObjectFormatError) as exc:
        return exc
    return len(data)


def verify_dataset(
    store: ObjectStore | str, name: str, *, max_in_flight: int | None = None
) -> VerifyReport:
    """Read every object of dataset ``name`` and check it against the manifest.

    Returns a :class:`VerifyReport`; call ``report.raise_first()`` to turn a bad object into
    an exception. Objects are read whole, ``max_in_flight`` at a time (default 4, at most
    ``skyhook.max-in-flight``), so memory holds about that many objects.
    """
    store = open_store(store) if isinstance(store, str) else store
    dataset = load_dataset(store, name)
    checks = [(obj, tree.schema) for _, tree, obj in dataset.objects()]

    def check(item: tuple[ObjectEntry, pa.Schema]) -> int | StoreError:
        try:
            return verify_object(store, *item)
        except (ObjectNotFoundError, ChecksumError, ObjectFormatError) as exc:
            return exc

    limit = max_in_flight or min(4, int(config.get("max-in-flight")))
    workers = max(1, min(limit, len(checks) or 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="skyhook-verify") as pool:
        outcomes = list(pool.map(check, checks))
    report = VerifyReport(name, objects=len(checks) + sum(
        1 for f in dataset.files for t in f.trees.values() if t.object_stats))  # fmt: skip
    for outcome in [*outcomes, *(_check_stats(store, t) for f in dataset.files
                                 for t in f.trees.values() if t.object_stats)]:  # fmt: skip
        if isinstance(outcome, int):
            report.bytes += outcome
        else:
            report.errors.append(outcome)
    referenced = mf.referenced_objects(dataset.manifest)
    report.unreferenced = [n for n in store.list(mf.data_prefix(name)) if n not in referenced]
    return report
