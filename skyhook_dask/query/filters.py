"""Predicates written for dask/pyarrow -- DNF ``filters`` and ``pyarrow.compute.Expression`` --
as bound expression trees.

Their literals keep their own types, as pyarrow gives them; integer comparisons with a literal
out of the column's range get the exact treatment of :mod:`skyhook_dask.query.typecheck`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from ..exceptions import QueryError, QueryTypeError
from .expr import ARITHMETIC, BOOLEAN, COMPARISON_FUNCTIONS, MAX_DEPTH, UNARY, Call, Expr, Literal
from .literals import LITERAL_DTYPES, LITERAL_TYPE_NAMES
from .tokens import ColumnRef, literal_type
from .typecheck import PredicateBinder

# --- dask/pyarrow filters ----------------------------------------------------------------------

FILTER_OPERATORS = {"=": "equal", "==": "equal", "!=": "not_equal", "<": "less"}
FILTER_OPERATORS |= {"<=": "less_equal", ">": "greater", ">=": "greater_equal"}


def filters_to_expr(filters: Any, schema: pa.Schema) -> Expr | None:
    """DNF filters as dask/pyarrow ``read_parquet`` takes them, as a bound predicate.

    ``[("nMuon", ">", 1), ...]`` is an AND of terms; ``[[...], [...]]`` an OR of such ANDs.
    Operators: ``= == != < <= > >= in not in``. Values keep their types, as pyarrow gives them
    (Python int -> int64, float -> double, numpy scalars their own). None when empty.
    """
    if not filters:
        return None
    if not isinstance(filters, list | tuple):
        raise QueryError(f"filters must be a list of tuples or of lists of tuples, not {filters!r}")
    groups = [filters] if isinstance(filters[0], tuple) and _is_term(filters[0]) else filters
    ors: list[Expr] = []
    for group in groups:
        if not isinstance(group, list | tuple) or not group:
            raise QueryError(f"a filter group must be a non-empty list of tuples, not {group!r}")
        ors.append(_combine(BOOLEAN["and"], [_filter_term(term) for term in group]))
    unbound = _combine(BOOLEAN["or"], ors)
    return PredicateBinder(schema, "the schema", weak=False).bind(unbound)


def _is_term(term: object) -> bool:
    return isinstance(term, tuple) and len(term) == 3 and isinstance(term[0], str)


def _filter_term(term: object) -> Expr:
    if not _is_term(term):
        raise QueryError(f"a filter is a (column, operator, value) tuple, not {term!r}")
    column, op, value = term  # type: ignore[misc]
    ref = ColumnRef(name=column)
    op_name = str(op).strip().lower()
    if op_name in ("in", "not in"):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise QueryError(f"filter {term!r}: '{op_name}' needs a list of values")
        values = [_value_literal(v, term) for v in value]
        if op_name == "in":
            return _combine(BOOLEAN["or"], [Call("equal", (ref, v)) for v in values])
        return _combine(BOOLEAN["and"], [Call("not_equal", (ref, v)) for v in values])
    if op_name not in FILTER_OPERATORS:
        known = ", ".join([*FILTER_OPERATORS, "in", "not in"])
        raise QueryError(f"filter {term!r}: unknown operator {op!r}; the operators are {known}")
    return Call(FILTER_OPERATORS[op_name], (ref, _value_literal(value, term)))


def _value_literal(value: object, context: object) -> Literal:
    if isinstance(value, np.generic) and value.dtype in LITERAL_TYPE_NAMES:
        return Literal(value.item(), LITERAL_TYPE_NAMES[value.dtype])
    if isinstance(value, bool | int | float) and not isinstance(value, np.generic):
        if isinstance(value, int) and not -(2**63) <= value < 2**64:
            raise QueryTypeError(f"filter {context!r}: {value} does not fit in 64 bits")
        return Literal(value, literal_type(value))
    raise QueryTypeError(
        f"filter {context!r}: value {value!r} of type {type(value).__name__} is not supported; "
        "use numbers or booleans"
    )


def _combine(function: str, parts: list[Expr]) -> Expr:
    """``and``/``or`` of parts, dropping neutral constants (an empty list is the neutral one)."""
    neutral = function == BOOLEAN["and"]
    kept: list[Expr] = []
    for part in parts:
        if isinstance(part, Literal) and isinstance(part.value, bool):
            if part.value != neutral:
                return Literal(not neutral, "bool")
            continue
        kept.append(part)
    if not kept:
        return Literal(neutral, "bool")
    result = kept[0]
    for part in kept[1:]:
        result = Call(function, (result, part))
    return result


# --- pyarrow compute expressions ---------------------------------------------------------------

_ARROW_FUNCTIONS = {fn: fn for fn in [*COMPARISON_FUNCTIONS, *BOOLEAN.values()]}
_ARROW_FUNCTIONS |= {fn: fn for fn in [*ARITHMETIC.values(), *UNARY.values()]}
_ARROW_FUNCTIONS |= {f"{fn}_checked": fn for fn in [*ARITHMETIC.values(), *UNARY.values()]}


def arrow_expression_to_expr(expression: Any, schema: pa.Schema) -> Expr | None:
    """A ``pyarrow.compute.Expression`` (field refs, scalars, comparisons, ``& | ~``,
    arithmetic, ``isin``) as a bound predicate.

    The expression is read from its pickled form (Arrow's own expression serialization: a
    one-row table of its literals and a list of key/value entries in prefix order), which keeps
    exact field names and literal types -- ``str(expr)`` is ambiguous for field names with
    spaces or parentheses, and Substrait cannot express the implicit casts of ``nMuon > 1``.
    Division of two integers (integer division in Arrow) is rejected. Arrow's checked
    arithmetic becomes the scan's wrapping arithmetic; ``is_in`` of a null gives null here.
    """
    try:
        _, (buffer,) = expression.__reduce__()
        reader = pa.ipc.open_file(buffer)
        literals = reader.read_all()
        entries = _metadata_entries(reader.schema)
    except (AttributeError, TypeError, ValueError, pa.ArrowException) as exc:
        raise QueryError(f"cannot read the pyarrow expression {expression}: {exc}") from exc
    walker = _ArrowWalker(entries, [literals.column(i)[0] for i in range(literals.num_columns)])
    unbound = walker.node(0)
    if walker.index != len(entries):
        raise QueryError(f"cannot read the pyarrow expression {expression}: trailing entries")
    return PredicateBinder(schema, "the schema", weak=False, integer_division=False).bind(unbound)


def _metadata_entries(schema: pa.Schema) -> list[tuple[str, str]]:
    """Every key/value of a schema's metadata, in order and with repeated keys.

    ``Schema.metadata`` is a dict (repeated keys collapse), so read the C data interface's
    metadata encoding instead: int32 count, then per entry int32 length + bytes, twice.
    """
    import ctypes

    class ArrowSchema(ctypes.Structure):
        _fields_ = [
            ("format", ctypes.c_char_p),
            ("name", ctypes.c_char_p),
            ("metadata", ctypes.c_void_p),
            ("flags", ctypes.c_int64),
            ("n_children", ctypes.c_int64),
            ("children", ctypes.c_void_p),
            ("dictionary", ctypes.c_void_p),
            ("release", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
            ("private_data", ctypes.c_void_p),
        ]

    c_schema = ArrowSchema()
    schema._export_to_c(ctypes.addressof(c_schema))
    try:
        if not c_schema.metadata:
            return []
        base, offset = c_schema.metadata, 0

        def take() -> str:
            nonlocal offset
            size = int.from_bytes(ctypes.string_at(base + offset, 4), "little", signed=True)
            text = ctypes.string_at(base + offset + 4, size).decode()
            offset += 4 + size
            return text

        count = int.from_bytes(ctypes.string_at(base, 4), "little", signed=True)
        offset = 4
        return [(take(), take()) for _ in range(count)]
    finally:
        c_schema.release(ctypes.addressof(c_schema))


class _ArrowWalker:
    def __init__(self, entries: list[tuple[str, str]], literals: list[pa.Scalar]) -> None:
        self.entries, self.literals, self.index = entries, literals, 0

    def take(self) -> tuple[str, str]:
        if self.index >= len(self.entries):
            raise QueryError("a serialized pyarrow expression ended early")
        self.index += 1
        return self.entries[self.index - 1]

    def node(self, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise QueryError(f"the pyarrow expression nests deeper than {MAX_DEPTH} levels")
        key, value = self.take()
        if key == "literal":
            return _arrow_literal(self.literals[int(value)])
        if key == "field_ref":
            return ColumnRef(name=value)
        if key == "nested_field_ref":
            raise QueryTypeError("nested field references (struct fields) are not supported")
        if key != "call":
            raise QueryError(f"unexpected entry {key!r} in a serialized pyarrow expression")
        args: list[Expr] = []
        options = None
        while self.index < len(self.entries) and self.entries[self.index][0] != "end":
            if self.entries[self.index][0] == "options":
                options = self.literals[int(self.take()[1])]
            else:
                args.append(self.node(depth + 1))
        self.take()
        return _arrow_call(value, args, options)


def _arrow_literal(scalar: pa.Scalar) -> Literal:
    name = str(scalar.type)
    if name not in LITERAL_DTYPES:
        raise QueryTypeError(f"literal {scalar} of type {name} is not supported")
    if not scalar.is_valid:
        raise QueryTypeError("null literals are not supported in predicates")
    return Literal(scalar.as_py(), name)


def _arrow_call(function: str, args: list[Expr], options: pa.Scalar | None) -> Expr:
    if function in _ARROW_FUNCTIONS:
        return Call(_ARROW_FUNCTIONS[function], tuple(args))
    if function == "is_in" and options is not None and len(args) == 1:
        value_set = options["value_set"]
        if value_set.values.null_count:
            raise QueryTypeError("isin() with a null in its values is not supported")
        values = [_arrow_literal(v) for v in value_set.values]
        return _combine(BOOLEAN["or"], [Call("equal", (args[0], v)) for v in values])
    known = ", ".join(sorted({*_ARROW_FUNCTIONS, "is_in"}))
    raise QueryTypeError(f"the pyarrow function {function!r} cannot run in storage; known: {known}")
