"""Predicate pushdown into ``read_skyhook`` through dask-expr's optimizer.

``dd.from_map`` already pushes column projections into a function that accepts ``columns=``;
predicates it cannot push. :class:`ReadSkyhook` is ``from_map``'s expression
(``FromMapProjectable``) plus two operands: the dataset layout (objects, their event ranges and
statistics) and the predicate sent to the object class. Its ``_simplify_up`` absorbs a parent
``Filter`` whose predicate is made of comparisons between this reader's columns and literals,
combined with ``& | ~`` (as ``ReadParquet`` does with its ``filters``): the Filter disappears,
its predicate joins the reader's, and partitions whose objects cannot match are dropped.

Equivalence with the pandas Filter is the rule: a predicate is absorbed only when the scan
gives exactly the rows pandas would keep. With pyarrow dtypes pandas compares through Arrow
compute with ``pa.scalar(literal)``, so the predicate becomes that pyarrow expression; with
numpy dtypes, Python literals are weak (NEP 50), which is the query language's typing. Anything
else (arithmetic, other methods, columns of another frame, list columns, numpy scalars with
numpy dtypes, columns some file lacks) leaves the Filter where it is.

This relies on dask-expr internals; :data:`REQUIRED_INTERNALS` names them and
:func:`check_internals` fails loudly when an upgrade removes one (dask is pinned in
pyproject.toml, and the tests call it).
"""

from __future__ import annotations

import functools
import numbers
import operator
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pyarrow.compute as pc
from dask._task_spec import Task
from dask.dataframe.dask_expr import _expr as dx
from dask.dataframe.dask_expr import _reductions as dr
from dask.dataframe.dask_expr.io import io as dio

from .exceptions import QueryError
from .expr import BOOLEAN, COMPARISONS, Call, Expr, Literal, columns_of
from .planning import arrow_expression_to_expr, bind_predicate
from .query import ColumnRef, literal_type

__all__ = ["REQUIRED_INTERNALS", "ReadSkyhook", "check_internals", "predicate_of"]

# module -> names (and attributes) this file uses; checked by check_internals().
REQUIRED_INTERNALS: dict[str, tuple[str, ...]] = {
    "dask.dataframe.dask_expr.io.io": (
        "FromMapProjectable",
        "FromMapProjectable._parameters",
        "FromMapProjectable._filtered_task",
        "FromMapProjectable.columns_operand",
        "FromMapProjectable.kwargs",
        "BlockwiseIO._simplify_up",
    ),
    "dask.dataframe.dask_expr._expr": (
        "Filter",
        "Filter.predicate",
        "Projection",
        "Index",
        "Lengths",
        "Literal",
        "LT",
        "LE",
        "GT",
        "GE",
        "EQ",
        "NE",
        "And",
        "Or",
        "Invert",
        "Binop.left",
        "Binop.right",
        "Unaryop.frame",
        "Expr._filter_passthrough_available",
        "Expr.substitute_parameters",
        "is_filter_pushdown_available",
    ),
    "dask.dataframe.dask_expr._reductions": ("Len",),
    "dask._task_spec": ("Task",),
}
_EXPECTED_FROM_MAP_PARAMETERS = (
    "func",
    "iterables",
    "columns",
    "args",
    "kwargs",
    "columns_arg_required",
    "user_meta",
    "enforce_metadata",
    "user_divisions",
    "label",
    "_partitions",
    "_series",
)


def check_internals() -> None:
    """Raise ImportError naming every dask-expr internal this module needs and cannot find."""
    import importlib

    missing = []
    for module_name, names in REQUIRED_INTERNALS.items():
        module = importlib.import_module(module_name)
        for dotted in names:
            target: Any = module
            for part in dotted.split("."):
                target = getattr(target, part, None)
                if target is None:
                    break
            # Operands are reached through properties generated from _parameters.
            if target is None and not _is_operand(module, dotted):
                missing.append(f"{module_name}.{dotted}")
    if tuple(dio.FromMapProjectable._parameters) != _EXPECTED_FROM_MAP_PARAMETERS:
        missing.append(
            "FromMapProjectable._parameters == "
            f"{list(_EXPECTED_FROM_MAP_PARAMETERS)} (now {dio.FromMapProjectable._parameters})"
        )
    if missing:
        raise ImportError(
            "this dask version lacks dask-expr internals that read_skyhook's predicate pushdown "
            "uses: " + "; ".join(missing)
        )


def _is_operand(module: Any, dotted: str) -> bool:
    owner, _, attribute = dotted.rpartition(".")
    cls = getattr(module, owner, None) if owner else None
    return cls is not None and attribute in getattr(cls, "_parameters", ())


_COMPARISON_CLASSES: dict[type, str] = {
    dx.LT: COMPARISONS["<"],
    dx.LE: COMPARISONS["<="],
    dx.GT: COMPARISONS[">"],
    dx.GE: COMPARISONS[">="],
    dx.EQ: COMPARISONS["=="],
    dx.NE: COMPARISONS["!="],
}
_ARROW_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "less": lambda a, b: a < b,
    "less_equal": lambda a, b: a <= b,
    "greater": lambda a, b: a > b,
    "greater_equal": lambda a, b: a >= b,
    "equal": lambda a, b: a == b,
    "not_equal": lambda a, b: a != b,
}


class _NotPushable(Exception):
    """The predicate has a part the storage cannot evaluate exactly as pandas would."""


def _literal_value(value: Any, weak: bool) -> bool | int | float:
    if isinstance(value, dx.Expr):
        raise _NotPushable
    if weak:
        # numpy dtypes: only Python numbers are weak scalars (NEP 50); numpy scalars are not.
        if type(value) in (bool, int, float):
            return value  # type: ignore[no-any-return]
        raise _NotPushable
    if isinstance(value, bool | np.bool_ | numbers.Real):
        return value  # type: ignore[return-value]
    raise _NotPushable


class _PredicateTranslator:
    """dask-expr predicate -> unbound skyhook expression (weak) or pyarrow expression."""

    def __init__(self, reader: ReadSkyhook, weak: bool) -> None:
        self.reader, self.weak = reader, weak
        self.available = set(reader.layout.columns_everywhere)

    def column(self, node: Any) -> str:
        if not (isinstance(node, dx.Projection) and node.frame._name == self.reader._name):
            raise _NotPushable
        name = node.operand("columns")
        if isinstance(name, list | tuple | set) or name not in self.available:
            raise _NotPushable
        return name  # type: ignore[no-any-return]

    def operand(self, node: Any) -> Any:
        if isinstance(node, dx.Expr):
            name = self.column(node)
            return ColumnRef(name=name) if self.weak else pc.field(name)
        value = _literal_value(node, self.weak)
        if self.weak:
            return Literal(value, literal_type(value))
        return pc.scalar(value)

    def translate(self, node: Any) -> Any:
        kind = type(node)
        if kind in _COMPARISON_CLASSES:
            function = _COMPARISON_CLASSES[kind]
            left, right = self.operand(node.left), self.operand(node.right)
            if self.weak:
                return Call(function, (left, right))
            return _ARROW_COMPARISONS[function](left, right)
        if kind in (dx.And, dx.Or):
            left, right = self.translate(node.left), self.translate(node.right)
            if self.weak:
                return Call(BOOLEAN["and" if kind is dx.And else "or"], (left, right))
            return (left & right) if kind is dx.And else (left | right)
        if kind is dx.Invert:
            inner = self.translate(node.frame)
            return Call(BOOLEAN["not"], (inner,)) if self.weak else ~inner
        if isinstance(node, dx.Projection):  # a boolean column used as the mask
            name = self.column(node)
            return ColumnRef(name=name) if self.weak else pc.field(name)
        raise _NotPushable


# The optimizer asks about the same Filter several times per pass; translate it once.
_translations: dict[tuple[str, str], Expr | None] = {}
_MAX_TRANSLATIONS = 512


def predicate_of(reader: ReadSkyhook, predicate: Any) -> Expr | None:
    """The bound skyhook predicate equal to a dask-expr Filter predicate, or None."""
    key = (reader._name, predicate._name if isinstance(predicate, dx.Expr) else repr(predicate))
    if key not in _translations:
        if len(_translations) >= _MAX_TRANSLATIONS:
            _translations.clear()
        _translations[key] = _translate(reader, predicate)
    return _translations[key]


def _translate(reader: ReadSkyhook, predicate: Any) -> Expr | None:
    weak = reader.operand("func").dtype_backend != "pyarrow"
    try:
        translated = _PredicateTranslator(reader, weak).translate(predicate)
        schema = reader.layout.schema
        if weak:
            bound = bind_predicate(translated, schema, "the dataframe")
        else:
            bound = arrow_expression_to_expr(translated, schema)
    except (_NotPushable, QueryError, TypeError, ValueError, OverflowError):
        return None
    if bound is None:  # constant true: nothing to push, and nothing to prove
        return None
    if not set(columns_of(bound)) <= set(reader.layout.columns_everywhere):
        return None
    return bound


class ReadSkyhook(dio.FromMapProjectable):
    """``from_map`` over Skyhook objects, with the predicate as an operand of the expression."""

    _parameters: ClassVar[list[str]] = [*dio.FromMapProjectable._parameters, "layout", "predicate"]
    _defaults: ClassVar[dict[str, Any]] = {**dio.FromMapProjectable._defaults, "predicate": None}

    @functools.cached_property
    def frame_meta(self) -> Any:
        # Straight from the schema: make_meta on a ~1500-column frame takes a second.
        return self.operand("func").meta(self.columns_operand)

    @property
    def columns(self) -> list[str]:
        if self.columns_operand is None:
            return self.operand("func").output_columns(None)  # type: ignore[no-any-return]
        return self.columns_operand  # type: ignore[no-any-return]

    @functools.cached_property
    def task_reader(self) -> Any:
        """The reader tasks carry: only the schema of the columns they return, so a task
        weighs a few hundred bytes, not the ~100 kB of a NanoAOD schema."""
        return self.operand("func").narrowed(self.columns)

    def _filtered_task(self, name: Any, index: int) -> Task:
        part = self.iterables[0][index]
        task = Task(name, self.task_reader, part, **self.kwargs, _data_producer=True)
        if self._series:
            return Task(name, operator.getitem, task, self.columns[0])
        return task

    @functools.cached_property
    def kwargs(self) -> dict[str, Any]:
        options = dict(self.operand("kwargs"))
        if self.columns_operand is not None:  # [] too: from_map would read every column
            options["columns"] = self.columns_operand
        options["predicate"] = self.operand("predicate")
        return options

    def _filter_passthrough_available(self, parent: Any, dependents: Any) -> bool:
        return (
            isinstance(parent, dx.Filter)
            and parent.frame._name == self._name
            and dx.is_filter_pushdown_available(self, parent, dependents)
            and predicate_of(self, parent.predicate) is not None
        )

    def _simplify_up(self, parent: Any, dependents: Any) -> Any:
        if isinstance(parent, dx.Filter) and self._filter_passthrough_available(parent, dependents):
            predicate = predicate_of(self, parent.predicate)
            return self.with_predicate(predicate)
        if isinstance(parent, dr.Len) and self._rows_known:
            return dx.Literal(sum(part.rows for part in self.iterables[0]))
        if isinstance(parent, dx.Lengths) and self._rows_known:
            return dx.Literal(tuple(part.rows for part in self.iterables[0]))
        if isinstance(parent, dr.Len | dx.Index) and self.columns_operand != []:
            # Row counts and the index need no column (the index column is always read).
            return type(parent)(self.substitute_parameters({"columns": [], "_series": False}))
        return super()._simplify_up(parent, dependents)

    @property
    def _rows_known(self) -> bool:
        # Without a predicate every row of every object comes back: the manifest counts them.
        return self.operand("predicate") is None and not self._filtered

    def with_predicate(self, predicate: Expr | None) -> ReadSkyhook:
        """This reader with ``predicate`` and-ed to its own, minus partitions that cannot match."""
        if predicate is None:
            return self
        current = self.operand("predicate")
        combined = predicate if current is None else Call(BOOLEAN["and"], (current, predicate))
        changes: dict[str, Any] = {"predicate": combined}
        if not self._filtered:  # explicit partition selections keep their numbering
            parts = self.layout.select(self.iterables[0], combined)
            changes["iterables"] = [parts]
            changes["user_divisions"] = self.layout.divisions(parts, self.operand("func").index)
        return self.substitute_parameters(changes)  # type: ignore[no-any-return]
