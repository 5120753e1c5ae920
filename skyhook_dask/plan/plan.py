"""One plan for every front end: which objects of which tree a query reads, and what each one
is asked.

:func:`plan` parses nothing (it takes a parsed :class:`~skyhook_dask.query.parser.Query`),
binds once, skips objects by their statistics once, and decides once which objects need no
filtering because their statistics prove every row satisfies the predicate. ``runQuery`` (in
this process and on Dask), ``read_skyhook``/``read_awkward`` and the coffea executor all run
a :class:`ScanPlan`; none of them re-derives one. :meth:`ScanPlan.refined` is how dask-expr's
optimizer adds a pushed-down filter or projection to a plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import config
from ..catalog.model import Dataset, File, ObjectEntry, TreeInfo
from ..exceptions import ProtocolError, QueryError, UnknownColumnError
from ..formats.objects import EVENT_ID
from ..formats.protocol import ScanRequest
from ..objclass.evaluate import evaluate
from ..query.binding import DEFAULT_TREE, bind, resolve_tree, split_key
from ..query.expr import BOOLEAN, Call, Expr, columns_of, conjunction
from ..query.filters import arrow_expression_to_expr, filters_to_expr
from ..query.parser import Query
from ..query.skipping import may_match, must_match
from ..query.skipping_table import may_match_all, must_match_all
from .layout import TreeLayout

__all__ = ["ColumnConflictWarning", "PlannedObject", "ScanPlan", "plan"]

_SETTING = object()  # "take the skyhook.result-compression setting"


class ColumnConflictWarning(UserWarning):
    """Some columns have different types in different files of a dataset and are left out."""


@dataclass(frozen=True)
class PlannedObject:
    """One object a plan reads: rows ``[first_event, stop_event)`` of file ``file`` (its
    position in the plan's files); ``unfiltered`` when its statistics prove that every row
    satisfies the plan's predicate, so it is read without it."""

    name: str
    file: int
    first_event: int
    stop_event: int
    rows: int
    bytes: int
    unfiltered: bool = False


@dataclass(frozen=True, eq=False)
class ScanPlan:
    """A bound query over one tree: the columns returned, the predicate, the objects to scan
    (in file and event order) and those their statistics excluded. ``derived`` are the
    projection's expressions by name: columns the scan computes (``columns`` names those
    returned)."""

    layout: TreeLayout
    columns: tuple[str, ...] | None  # None: every column of the tree
    predicate: Expr | None
    objects: tuple[PlannedObject, ...]
    skipped: tuple[str, ...]
    compression: str | None
    derived: tuple[tuple[str, Expr], ...] = ()
    _payloads: dict[tuple[Any, ...], bytes] = field(default_factory=dict, repr=False)

    @property
    def store_url(self) -> str:
        return self.layout.store_url

    @cached_property
    def schema(self) -> pa.Schema:
        """The columns a plan can return: the tree's (unified over the files), then the derived
        ones, typed by evaluating their expressions on no rows -- as the scan types them."""
        tree = self.layout.schema
        fields = list(tree)
        for name, expr in self.derived:
            empty = tree.empty_table().select(columns_of(expr))
            fields.append(pa.field(name, evaluate(expr, empty).type))
        return pa.schema(fields, tree.metadata)

    @property
    def output_columns(self) -> list[str]:
        return list(self.layout.schema.names) if self.columns is None else list(self.columns)

    def empty_table(self) -> pa.Table:
        """What a plan without objects returns: no rows, the output columns."""
        return self.schema.empty_table().select(self.output_columns)

    def request(self, obj: PlannedObject) -> ScanRequest:
        """What ``obj`` is asked: the plan's columns that its file has (none left: ``event_id``,
        the cheapest; None: every column) and the predicate, unless the object is read
        unfiltered."""
        wanted = self.columns
        missing = self.layout.missing[obj.file]
        if wanted is None and missing:
            wanted = tuple(self.layout.schema.names)
        if wanted is not None:
            wanted = tuple(c for c in wanted if c not in missing) or (EVENT_ID,)
        predicate = None if obj.unfiltered else self.predicate
        derived = tuple((n, e) for n, e in self.derived if wanted is not None and n in wanted)
        return ScanRequest(wanted or (), predicate, (), self.compression, derived)

    def payload(self, obj: PlannedObject) -> bytes:
        """:meth:`request` encoded for the wire (each distinct request encoded once)."""
        key = (self.layout.missing[obj.file], obj.unfiltered)
        if key not in self._payloads:
            self._payloads[key] = self.request(obj).encode()
        return self._payloads[key]

    def refined(
        self,
        predicate: Expr | None = None,
        columns: Sequence[str] | None = None,
        *,
        skip_objects: bool = True,
    ) -> ScanPlan:
        """This plan with a bound ``predicate`` and-ed to its own and/or other ``columns``.

        ``skip_objects=False`` keeps the objects (and their order) as they are -- for a Dask
        expression whose partitions were already chosen by number -- but each object is still
        read unfiltered only if its statistics prove the new predicate.
        """
        if predicate is None and columns is None:
            return self
        combined = self.predicate
        if predicate is not None:
            self.layout.check_columns(predicate, "the predicate")
            combined = (
                predicate if combined is None else Call(BOOLEAN["and"], (combined, predicate))
            )
        wanted = self.columns if columns is None else tuple(columns)
        if skip_objects:
            return _choose(self.layout, wanted, combined, self.compression, self.derived)
        every = {  # for all objects of a tree at once, from its statistics table
            o.name: unfiltered
            for tree in self.layout.trees
            for o, _keep, unfiltered in _skipping(tree, combined)
        }
        objects = tuple(dataclasses.replace(o, unfiltered=every[o.name]) for o in self.objects)
        return ScanPlan(
            self.layout, wanted, combined, objects, self.skipped, self.compression, self.derived
        )

    def token(self) -> str:
        """A short name of what the plan reads and asks."""
        parts = [repr(self.layout.__dask_tokenize__()), repr(self.columns)]
        parts += [repr(self.compression), ScanRequest(predicate=self.predicate).encode().hex()]
        parts += [f"{n}={e}" for n, e in self.derived]
        parts += [f"{o.name}:{o.unfiltered}" for o in self.objects]
        return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()

    def __dask_tokenize__(self) -> object:
        return (type(self).__name__, self.token())


def plan(
    source: Dataset | File,
    query: Query | None = None,
    *,
    columns: Sequence[str] | str | None = None,
    filters: Any = None,
    tree: str = DEFAULT_TREE,
    compression: Any = _SETTING,
    where: str | None = None,
) -> ScanPlan:
    """Plan ``query`` (and ``columns``, ``filters``) on one tree of a dataset or of one file.

    The tree is the one the query's qualified columns name, else ``tree`` (its highest
    cycle), else the only tree. ``filters`` are DNF tuples as for ``read_parquet`` or a
    ``pyarrow.compute.Expression``. ``where`` is added as a note to errors (e.g. "in the
    preselection").
    """
    files = list(source.files) if isinstance(source, Dataset) else [source]
    if compression is _SETTING:
        compression = config.compression("result-compression")
    try:
        tree_spec = tree
        if query is not None:
            trees = {key: t.schema for f in files for key, t in f.trees.items()}
            tree_spec = resolve_tree(query, trees, default=split_key(tree)[0])
        layout = TreeLayout(source, tree_spec)
        wanted, predicate, derived = _columns_and_predicate(layout, columns, filters, query, tree)
    except QueryError as exc:
        if where:
            exc.add_note(where)
        raise
    if wanted is None and layout.conflicts:
        warnings.warn(
            f"dataset {layout.dataset_name!r}: columns whose type differs between files are "
            "left out: " + "; ".join(f"{n} ({why})" for n, why in layout.conflicts.items()),
            ColumnConflictWarning,
            stacklevel=3,
        )
    return _choose(layout, wanted, predicate, compression, derived)


def _columns_and_predicate(
    layout: TreeLayout,
    columns: Sequence[str] | str | None,
    filters: Any,
    query: Query | None,
    tree: str,
) -> tuple[tuple[str, ...] | None, Expr | None, tuple[tuple[str, Expr], ...]]:
    wanted = (columns,) if isinstance(columns, str) else None if columns is None else tuple(columns)
    predicates = []
    derived: tuple[tuple[str, Expr], ...] = ()
    if query is not None:
        trees = {k: t.schema for f in layout.files for k, t in f.trees.items()}
        trees[layout.tree_spec] = layout.schema
        try:
            bound = bind(query, trees, default=split_key(tree)[0])
        except UnknownColumnError as exc:
            if exc.column in layout.conflicts:  # its type differs between files: say so
                layout.check_known(exc.column)
            raise
        if bound.columns:
            if wanted is not None and wanted != bound.columns:
                raise QueryError(
                    f"columns={list(wanted)!r} and the query's projection "
                    f"{list(bound.columns)!r} disagree; give one of them"
                )
            wanted = bound.columns
        predicates.append(bound.predicate)
        derived = bound.derived
    if isinstance(filters, pc.Expression):
        predicates.append(arrow_expression_to_expr(filters, layout.schema))
    elif filters is not None:
        predicates.append(filters_to_expr(filters, layout.schema))
    predicate = conjunction([p for p in predicates if p is not None])
    layout.check_columns(predicate, "the predicate")
    for name, expr in derived:
        layout.check_columns(expr, f"the projected expression {name!r}")
    names = {name for name, _ in derived}
    for name in wanted or ():
        if name not in names:
            layout.check_known(name)
    _check_wire(wanted, predicate, derived)
    return wanted, predicate, derived


def _check_wire(
    columns: tuple[str, ...] | None, predicate: Expr | None, derived: tuple[tuple[str, Expr], ...]
) -> None:
    try:
        ScanRequest(columns or (), predicate, derived=derived).encode()
    except ProtocolError as exc:
        raise QueryError(f"the query cannot be sent to storage: {exc}") from exc


def _unfiltered(predicate: Expr | None, stats: Mapping[str, Any]) -> bool:
    """Statistics prove that every row satisfies ``predicate`` (none: nothing to prove)."""
    return predicate is not None and must_match(predicate, stats)


def _skipping(tree: TreeInfo, predicate: Expr | None) -> Iterator[tuple[ObjectEntry, bool, bool]]:
    """Each object of ``tree`` with (may match ``predicate``, must match it), by its
    statistics: for all objects at once from the statistics table, else one by one."""
    if predicate is None:
        yield from ((o, True, False) for o in tree.objects)
        return
    tested = sorted(columns_of(predicate))
    table = tree.stats_table(tested)
    if table is not None:
        keep, every = may_match_all(predicate, table), must_match_all(predicate, table)
        if keep is not None and every is not None:
            yield from zip(tree.objects, keep.tolist(), (keep & every).tolist(), strict=True)
            return
    for o, stats in zip(tree.objects, tree.stats(tested), strict=True):
        keep = may_match(predicate, stats)
        yield o, keep, keep and _unfiltered(predicate, stats)


def _choose(
    layout: TreeLayout,
    columns: tuple[str, ...] | None,
    predicate: Expr | None,
    compression: str | None,
    derived: tuple[tuple[str, Expr], ...] = (),
) -> ScanPlan:
    """The plan's objects: those whose statistics do not exclude ``predicate``, each marked
    when they prove that every row satisfies it."""
    objects, skipped = [], []
    for n, tree in enumerate(layout.trees):
        for o, keep, unfiltered in _skipping(tree, predicate):
            if not keep:
                skipped.append(o.name)
                continue
            objects.append(
                PlannedObject(o.name, n, o.first_event, o.stop_event, o.rows, o.bytes, unfiltered)
            )
    return ScanPlan(
        layout, columns, predicate, tuple(objects), tuple(skipped), compression, derived
    )
