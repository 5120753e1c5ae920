"""Query-language text of an expression tree: what error messages quote and what
:meth:`Query.to_string <skyhook_dask.query.parser.Query.to_string>` writes; it parses back to an
equal tree, with only the parentheses the operators' binding strengths need."""

from __future__ import annotations

from .expr import (
    ARITHMETIC,
    BOOLEAN,
    COMPARISONS,
    ELEMENT,
    FILTER,
    MATH,
    POWER,
    UNARY,
    Column,
    Expr,
    Literal,
)
from .tokens import ColumnRef, quote_name

__all__ = ["render"]

_QUERY_NAMES = {arrow: name for name, arrow in MATH.items()}  # ln -> log
_BINARY_SYMBOLS = {
    **{fn: op for op, fn in COMPARISONS.items()},
    **{fn: op for op, fn in ARITHMETIC.items()},
    BOOLEAN["and"]: "and",
    BOOLEAN["or"]: "or",
}
# Binding strength of each operator; higher binds tighter (atoms are the tightest).
_LEVEL = {"or": 1, "and": 2, "not": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}
_LEVEL |= {"**": 8, "atom": 9}


def render(expr: Expr) -> str:
    """Query-language text of an expression (re-parses to an equal tree)."""
    return _render(expr)[0]


def _render(expr: Expr) -> tuple[str, int]:
    if isinstance(expr, Literal):
        if isinstance(expr.value, bool):
            return ("true" if expr.value else "false"), _LEVEL["atom"]
        text = repr(expr.value)
        return text, (_LEVEL["neg"] if text.startswith("-") else _LEVEL["atom"])
    if isinstance(expr, Column):
        name = str(expr) if isinstance(expr, ColumnRef) else quote_name(expr.name)
        return name, _LEVEL["atom"]
    fn, args = expr.function, expr.args
    if fn in _BINARY_SYMBOLS and len(args) == 2:
        symbol = _BINARY_SYMBOLS[fn]
        level = _LEVEL.get(symbol, _LEVEL["compare"])
        # Left-associative operators: the right operand must bind tighter to keep the tree shape;
        # comparisons do not chain, so both sides must bind tighter.
        left_min = level + 1 if level == _LEVEL["compare"] else level
        left, right = _wrap(args[0], left_min), _wrap(args[1], level + 1)
        return f"{left} {symbol} {right}", level
    if fn == BOOLEAN["not"] and len(args) == 1:
        return f"not {_wrap(args[0], _LEVEL['not'])}", _LEVEL["not"]
    if fn == UNARY["neg"] and len(args) == 1:
        return f"-{_wrap(args[0], _LEVEL['neg'])}", _LEVEL["neg"]
    if fn == ELEMENT and len(args) == 2 and isinstance(args[1], Literal):
        return f"{_wrap(args[0], _LEVEL['atom'])}[{args[1].value}]", _LEVEL["atom"]
    if fn == FILTER and len(args) == 2:
        return f"{_wrap(args[0], _LEVEL['atom'])}[{render(args[1])}]", _LEVEL["atom"]
    if fn == POWER and len(args) == 2:  # right-associative; a unary minus may follow **
        return f"{_wrap(args[0], _LEVEL['atom'])} ** {_wrap(args[1], _LEVEL['neg'])}", _LEVEL["**"]
    name = _QUERY_NAMES.get(fn, fn)
    return f"{name}({', '.join(render(a) for a in args)})", _LEVEL["atom"]


def _wrap(expr: Expr, min_level: int) -> str:
    text, level = _render(expr)
    return text if level >= min_level else f"({text})"
