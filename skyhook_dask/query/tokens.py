"""The tokens of the query language, and the column names it writes: bare ASCII identifiers,
or any other name between backticks (a backtick inside doubled), optionally qualified by a tree
and a cycle: ``[tree [";" cycle] "."] name``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..exceptions import QuerySyntaxError
from .expr import Column

CLAUSE_KEYWORDS = frozenset({"select", "project"})
KEYWORDS = CLAUSE_KEYWORDS | {"and", "or", "not", "true", "false"}
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ASCII digits only: str.isdigit() and a Unicode \d also accept digits such as '²' or '٣'.
_DIGITS = frozenset("0123456789")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_CYCLE = re.compile(r"\d+", re.ASCII)
_OPERATORS = ("<=", ">=", "==", "!=", "&&", "||", "**", "<", ">", "+", "-", "*", "/", "!")
_OPERATOR_ALIASES = {"&&": "and", "||": "or", "!": "not"}


@dataclass(frozen=True)
class ColumnRef(Column):
    """A column as written in a query: ``name``, ``tree.name`` or ``tree;cycle.name``.

    ``name`` is the branch; ``position`` (index in the query text, -1 when unknown) is left out
    of comparisons so that a re-rendered query compares equal to the original.
    """

    tree: str | None = None
    cycle: int | None = None
    position: int = field(default=-1, compare=False)

    def __str__(self) -> str:
        if self.tree is None:
            return quote_name(self.name)
        cycle = "" if self.cycle is None else f";{self.cycle}"
        return f"{quote_name(self.tree)}{cycle}.{quote_name(self.name)}"


def quote_name(name: str) -> str:
    """A name as the query language writes it: bare when possible, else between backticks."""
    if _PLAIN_NAME.fullmatch(name) and name.lower() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "op", "(", ")", ",", "end"
    text: str
    position: int
    value: object = None  # number: int | float; name: ColumnRef


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens; QuerySyntaxError at the first character that starts none."""
    tokens, pos = [], 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in _DIGITS or (char == "." and text[pos + 1 : pos + 2] in _DIGITS):
            match = _NUMBER.match(text, pos)
            assert match is not None  # the first character is a digit or ".digit"
            end = match.end()
            if end < len(text) and (text[end].isalnum() or text[end] in "_.`"):
                raise QuerySyntaxError(f"malformed number {text[pos : end + 1]!r}", text, pos)
            tokens.append(Token("number", match.group(), pos, _number(match.group(), text, pos)))
            pos = end
        elif char.isalpha() or char in "_`":
            ref, end = _column(text, pos)
            tokens.append(Token("name", text[pos:end], pos, ref))
            pos = end
        elif char in "(),[]":
            tokens.append(Token(char, char, pos))
            pos += 1
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
            if op is None:
                hint = {
                    "=": "; compare with '=='",
                    "&": "; write 'and' or '&&'",
                    "|": "; write 'or' or '||'",
                    ".": "; a name containing dots goes between backticks",
                }.get(char, "")
                raise QuerySyntaxError(f"unexpected character {char!r}{hint}", text, pos)
            tokens.append(Token("op", _OPERATOR_ALIASES.get(op, op), pos))
            pos += len(op)
    tokens.append(Token("end", "", len(text)))
    return tokens


def _number(literal: str, text: str, pos: int) -> int | float:
    if literal.isdigit():
        value = int(literal)
        if value > UINT64_MAX:
            raise QuerySyntaxError(f"integer {literal} does not fit in 64 bits", text, pos)
        return value
    number = float(literal)
    if number == float("inf"):
        raise QuerySyntaxError(f"number {literal} is too large for a double", text, pos)
    return number


def _name_part(text: str, pos: int) -> tuple[str, int, bool]:
    """One bare or backticked name starting at ``pos``: (name, end, quoted)."""
    if text[pos] != "`":
        match = _PLAIN_NAME.match(text, pos)
        if match is None:
            raise QuerySyntaxError("expected a name", text, pos)
        return match.group(), match.end(), False
    chars, i = [], pos + 1
    while True:
        end = text.find("`", i)
        if end < 0:
            raise QuerySyntaxError("unterminated backtick name", text, pos)
        chars.append(text[i:end])
        if text.startswith("``", end):
            chars.append("`")
            i = end + 2
        else:
            break
    name = "".join(chars)
    if not name:
        raise QuerySyntaxError("empty name between backticks", text, pos)
    return name, end + 1, True


def _column(text: str, pos: int) -> tuple[ColumnRef, int]:
    first, end, quoted = _name_part(text, pos)
    cycle = None
    if text.startswith(";", end):
        match = _CYCLE.match(text, end + 1)
        if match is None:
            raise QuerySyntaxError(f"expected a cycle number after '{first};'", text, end + 1)
        cycle, end = int(match.group()), match.end()
    if not text.startswith(".", end) or end + 1 >= len(text) or not _starts_name(text[end + 1]):
        if cycle is not None:
            raise QuerySyntaxError(f"expected '.<branch>' after tree '{first};{cycle}'", text, end)
        # A bare name: remember whether it was quoted, which stops it from being a keyword.
        return BareRef(name=first, position=pos, quoted=quoted), end
    name, end, _ = _name_part(text, end + 1)
    return ColumnRef(name=name, tree=first, cycle=cycle, position=pos), end


def _starts_name(char: str) -> bool:
    return char.isalpha() or char in "_`"


@dataclass(frozen=True)
class BareRef(ColumnRef):
    """An unqualified name while parsing: a keyword, a function or a column, decided later."""

    quoted: bool = field(default=False, compare=False)

    @property
    def keyword(self) -> str | None:
        lowered = self.name.lower()
        return None if self.quoted or lowered not in KEYWORDS else lowered

    def as_column(self) -> ColumnRef:
        return ColumnRef(name=self.name, position=self.position)


def literal_type(value: bool | int | float) -> str:
    """Provisional Arrow type of a literal as written (planning refines it against columns)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64" if value <= INT64_MAX else "uint64"
    return "double"
