"""``ReadSkyhook``: the dask-expr expression behind ``read_skyhook``, with projection and
predicate pushdown into the object class.

Its operands are named (the scan plan, the projection, the predicates pushed into it, the
index, the dtype backend, ...), and the plan it runs is a cached property derived from them, as
dask-expr's ``ReadParquet`` derives its partitions. Projections are absorbed as for any
``BlockwiseIO``; :meth:`ReadSkyhook._simplify_up` also absorbs a parent ``Filter`` whose
predicate is made of comparisons between this reader's columns and literals, combined with
``& | ~``: the Filter disappears, its predicate joins the plan's, and partitions whose objects
cannot match are dropped (unless partitions were already chosen by number: then they stay,
and the new predicate only keeps objects from being read unfiltered).

Equivalence with the pandas Filter is the rule: a predicate is absorbed only when the scan
gives exactly the rows pandas would keep. With pyarrow dtypes pandas compares through Arrow
compute with ``pa.scalar(literal)``, so the predicate becomes that pyarrow expression; with
numpy dtypes, Python literals are weak (NEP 50), which is the query language's typing. Anything
else (arithmetic, other methods, columns of another frame, list columns, numpy scalars with
numpy dtypes, columns some file lacks) leaves the Filter where it is.

This relies on dask-expr internals; :data:`REQUIRED_INTERNALS` names them and
:func:`check_internals` reports the missing ones (``read_skyhook`` then falls back to
``from_map`` without pushdown; dask is pinned in pyproject.toml, and the tests call it).
"""

from __future__ import annotations

import functools
import numbers
import operator
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dask._task_spec import Task
from dask.dataframe.dask_expr import _expr as dx
from dask.dataframe.dask_expr import _reductions as dr
from dask.dataframe.dask_expr.io import io as dio

from ..exceptions import QueryError, QueryTypeError
from ..plan.plan import ScanPlan
from ..query.binding import bind_predicate
from ..query.expr import BOOLEAN, COMPARISONS, Call, Expr, Literal, columns_of
from ..query.filters import arrow_expression_to_expr
from ..query.parser import ColumnRef, literal_type
from .partitions import Part, PartitionReader, divisions, partitions, projection

__all__ = ["REQUIRED_INTERNALS", "ListComparisonError", "ReadSkyhook", "check_internals"]

# module -> names (and attributes) this file uses; checked by check_internals().
REQUIRED_INTERNALS: dict[str, tuple[str, ...]] = {
    "dask.dataframe.dask_expr.io.io": ("BlockwiseIO", "BlockwiseIO._simplify_up"),
    "dask.dataframe.dask_expr._expr": (
        "PartitionsFiltered",
        "PartitionsFiltered._filtered",
        "Filter",
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
        "Expr.deterministic_token",
        "Expr._filter_passthrough_available",
        "Expr.substitute_parameters",
        "is_filter_pushdown_available",
    ),
    "dask.dataframe.dask_expr._reductions": ("Len",),
    "dask._task_spec": ("Task",),
}
# Operands of dask-expr classes this file reads by name.
REQUIRED_OPERANDS: dict[str, tuple[str, ...]] = {
    "Filter": ("frame", "predicate"),
    "Projection": ("frame", "columns"),
    "Binop": ("left", "right"),
    "Unaryop": ("frame",),
}


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
            if target is None:
                missing.append(f"{module_name}.{dotted}")
    for cls_name, operands in REQUIRED_OPERANDS.items():
        cls = getattr(dx, cls_name, None)
        for name in operands:
            if name not in getattr(cls, "_parameters", ()):
                missing.append(f"dask.dataframe.dask_expr._expr.{cls_name} operand {name!r}")
    if missing:
        raise ImportError(
            "this dask version lacks dask-expr internals that read_skyhook's pushdown uses: "
            + "; ".join(missing)
        )


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


class ListComparisonError(QueryTypeError):
    """``df[df.Muon_pt > 20]``: a list column compared with a value cannot select rows."""


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
        self.available = set(reader.scan_plan.layout.columns_everywhere)

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

    def check_not_a_list(self, node: Any, text: str) -> None:
        """pandas cannot compare a list column with a value: say what to write instead."""
        if not (isinstance(node, dx.Projection) and node.frame._name == self.reader._name):
            return
        name = node.operand("columns")
        schema = self.reader.scan_plan.schema
        if isinstance(name, str) and schema.get_field_index(name) >= 0:
            kind = schema.field(name).type
            if pa.types.is_list(kind) or pa.types.is_large_list(kind):
                raise ListComparisonError(
                    f"column {name!r} holds a list per event, so df[df.{name} {text} ...] has no "
                    f'row to keep or drop; say which events: read_skyhook(..., query="select '
                    f'any({name} {text} ...)") (or all(), count(), ...), or reduce the lists '
                    f"first (df.{name}.list.len(), ...)"
                )

    def translate(self, node: Any) -> Any:
        kind = type(node)
        if kind in _COMPARISON_CLASSES:
            function = _COMPARISON_CLASSES[kind]
            text = next(k for k, v in COMPARISONS.items() if v == function)
            self.check_not_a_list(node.left, text)
            self.check_not_a_list(node.right, text)
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


def _and(left: Expr | None, right: Expr) -> Expr:
    return right if left is None else Call(BOOLEAN["and"], (left, right))


class ReadSkyhook(dx.PartitionsFiltered, dio.BlockwiseIO):
    """One partition per group of objects of a :class:`~skyhook_dask.plan.plan.ScanPlan`.

    ``predicate`` holds what was pushed down before any partition was chosen by number (it
    may drop objects), ``late_predicate`` what was pushed after (it may not: the partition
    numbers must stay).
    """

    _parameters: ClassVar[list[str]] = [
        "plan",
        "columns",
        "predicate",
        "late_predicate",
        "index",
        "dtype_backend",
        "strict",
        "objects_per_partition",
        "_partitions",
        "_series",
    ]
    _defaults: ClassVar[dict[str, Any]] = {
        "columns": None,
        "predicate": None,
        "late_predicate": None,
        "index": None,
        "dtype_backend": "pyarrow",
        "strict": False,
        "objects_per_partition": 1,
        "_partitions": None,
        "_series": False,
    }
    _absorb_projections = True

    @functools.cached_property
    def _name(self) -> str:
        return f"read-skyhook-{self.operand('plan').layout.dataset_name}-{self.deterministic_token}"

    @property
    def columns(self) -> list[str]:
        return self.projection[1]

    @functools.cached_property
    def projection(self) -> tuple[list[str] | None, list[str]]:
        return projection(self.operand("plan"), self.operand("columns"), self.operand("index"))

    @functools.cached_property
    def scan_plan(self) -> ScanPlan:
        """The plan with what was pushed down: the objects, and what each one is asked."""
        plan = self.operand("plan").refined(self.operand("predicate"), self.projection[0])
        late = self.operand("late_predicate")
        return plan if late is None else plan.refined(late, skip_objects=False)

    @functools.cached_property
    def parts(self) -> list[Part]:
        return partitions(self.scan_plan, self.operand("objects_per_partition"))

    @functools.cached_property
    def task_reader(self) -> PartitionReader:
        return PartitionReader(
            self.scan_plan,
            self.columns,
            self.operand("index"),
            self.operand("dtype_backend"),
            self.operand("strict"),
        )

    @functools.cached_property
    def frame_meta(self) -> Any:
        # Straight from the schema: make_meta on a ~1500-column frame takes a second.
        return self.task_reader.meta()

    @functools.cached_property
    def _meta(self) -> Any:
        if self.operand("_series"):
            return self.frame_meta[self.columns[0]]
        return self.frame_meta

    def _divisions(self) -> tuple[Any, ...]:
        known = divisions(self.parts, self.operand("index"))
        return known if known is not None else (None,) * (len(self.parts) + 1)

    def _filtered_task(self, name: Any, index: int) -> Task:
        task = Task(name, self.task_reader, self.parts[index], _data_producer=True)
        if self.operand("_series"):
            return Task(name, operator.getitem, task, self.columns[0])
        return task

    # --- predicate pushdown ------------------------------------------------------------------

    @functools.cached_property
    def _translations(self) -> dict[str, Expr | None]:
        # The optimizer asks about the same Filter several times per pass: translate it once.
        return {}

    def pushable(self, predicate: Any) -> Expr | None:
        """The bound skyhook predicate equal to a dask-expr Filter predicate, or None."""
        key = predicate._name if isinstance(predicate, dx.Expr) else repr(predicate)
        if key not in self._translations:
            self._translations[key] = self._translate(predicate)
        return self._translations[key]

    def _translate(self, predicate: Any) -> Expr | None:
        weak = self.operand("dtype_backend") != "pyarrow"
        layout = self.scan_plan.layout
        try:
            translated = _PredicateTranslator(self, weak).translate(predicate)
            if weak:
                bound = bind_predicate(translated, layout.schema, "the dataframe")
            else:
                bound = arrow_expression_to_expr(translated, layout.schema)
        except ListComparisonError:
            raise  # pandas would fail on it too, with a far less helpful message
        except (_NotPushable, QueryError, TypeError, ValueError, OverflowError):
            return None
        if bound is None:  # constant true: nothing to push, and nothing to prove
            return None
        if not set(columns_of(bound)) <= set(layout.columns_everywhere):
            return None
        return bound

    def _filter_passthrough_available(self, parent: Any, dependents: Any) -> bool:
        return (
            isinstance(parent, dx.Filter)
            and parent.frame._name == self._name
            and dx.is_filter_pushdown_available(self, parent, dependents)
            and self.pushable(parent.predicate) is not None
        )

    def _simplify_up(self, parent: Any, dependents: Any) -> Any:
        if isinstance(parent, dx.Filter) and self._filter_passthrough_available(parent, dependents):
            return self.with_predicate(self.pushable(parent.predicate))
        if isinstance(parent, dr.Len) and self._rows_known:
            return dx.Literal(sum(part.rows for part in self.parts))
        if isinstance(parent, dx.Lengths) and self._rows_known:
            return dx.Literal(tuple(part.rows for part in self.parts))
        if isinstance(parent, dr.Len | dx.Index) and self.operand("columns") != []:
            # Row counts and the index need no column (the index column is always read).
            return type(parent)(self.substitute_parameters({"columns": [], "_series": False}))
        return super()._simplify_up(parent, dependents)

    @property
    def _rows_known(self) -> bool:
        # Without a predicate every row of every object comes back: the manifest counts them.
        return self.scan_plan.predicate is None and not self._filtered

    def with_predicate(self, predicate: Expr | None) -> ReadSkyhook:
        """This reader with ``predicate`` and-ed to its own."""
        if predicate is None:
            return self
        key = "late_predicate" if self._filtered else "predicate"
        combined = _and(self.operand(key), predicate)
        return self.substitute_parameters({key: combined})  # type: ignore[no-any-return]
