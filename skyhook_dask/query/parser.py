"""The query language: ``select <predicate>, project <columns>`` parsed into a :class:`Query`.

Grammar (clauses separated by top-level commas, in any order, each at most once)::

    query     := [clause ("," clause)*]
    clause    := "select" or_expr | "project" item ([","] item)*
    item      := column | or_expr "as" name        (a derived column: computed by the scan)
    or_expr   := and_expr (("or" | "||") and_expr)*
    and_expr  := not_expr (("and" | "&&") not_expr)*
    not_expr  := ("not" | "!") not_expr | compare
    compare   := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum]
    sum       := product (("+" | "-") product)*
    product   := unary (("*" | "/") unary)*
    unary     := "-" unary | power
    power     := postfix ["**" unary]
    postfix   := atom ("[" (["-"] integer | or_expr) "]")*
                 (x[i]: element i of each event's list; x[mask]: the elements where mask holds)
    atom      := number | "true" | "false" | column | function "(" args ")" | "(" or_expr ")"
    args      := or_expr ["," or_expr]        (two for atan2 and hypot)
    column    := [tree [";" cycle] "."] name

In ``project``, a comma followed by anything but ``select``/``project`` continues the column
list, so the seed's ``project Events;75.Muon_eta,Events;75.Muon_phi`` works; an item that
starts with a name (a column or a function) may also follow after a space. An expression needs
``as NAME`` (a column may take one too: a renamed copy); the names of the projection must
differ. Names are ASCII
identifiers; any other name (with dots, slashes, spaces, or a keyword) is written between
backticks, a backtick inside doubled: ```dir/sub/Tree`;2.`Electron.pt```. Keywords (``select
project and or not true false``) and function names (``abs``, the math functions of
:data:`expr.MATH` and :data:`expr.MATH2`, and :data:`expr.LIST_REDUCTIONS`) are
case-insensitive. Chained comparisons (``1 < x < 3``) are rejected. ``**`` binds tighter than a
unary minus on its left and is right-associative, as in Python (``-x**2`` is ``-(x**2)``);
``hypot(x, y)`` is written on the wire as ``sqrt(x*x + y*y)``.

The predicate is a tree of :mod:`skyhook_dask.query.expr` nodes: :class:`~expr.Call` with the Arrow
function names, :class:`~expr.Literal` with a provisional type (``int64``, ``uint64`` for
integers above int64, ``double``, ``bool``; planning assigns the final one) and, as leaves,
:class:`ColumnRef` -- a :class:`~expr.Column` subclass that also keeps the tree, the cycle and
the position in the query text. A parsed query must be bound (:func:`planning.bind`) before it
is sent: binding turns every ColumnRef into a plain Column named by its branch.
"""

from __future__ import annotations

from collections.abc import Callable

from ..exceptions import QuerySyntaxError
from .clauses import Derived, Query
from .expr import (
    ARITHMETIC,
    BOOLEAN,
    COMPARISONS,
    ELEMENT,
    FILTER,
    LIST_REDUCTIONS,
    MATH,
    MATH2,
    MAX_DEPTH,
    POWER,
    UNARY,
    Call,
    Expr,
    Literal,
)
from .render import render
from .tokens import (
    CLAUSE_KEYWORDS,
    INT64_MAX,
    INT64_MIN,
    BareRef,
    ColumnRef,
    Token,
    literal_type,
    quote_name,
    tokenize,
)

# ColumnRef, Derived, Query, literal_type, quote_name and render are re-exported: the names a
# caller of the parser needs next to parse_query.
__all__ = ["FUNCTIONS", "ColumnRef", "Derived", "Query", "literal_type", "parse_expression"]
__all__ += ["parse_query"]
__all__ += ["quote_name", "render"]

FUNCTIONS = ("abs", *MATH, *MATH2, *LIST_REDUCTIONS)
_NOT_A_VALUE = CLAUSE_KEYWORDS | {"and", "or"}


# --- parser ------------------------------------------------------------------------------------


def parse_query(text: str) -> Query:
    """Parse a query string; QuerySyntaxError (with a caret at the fault) if it is invalid."""
    if not isinstance(text, str):
        raise QuerySyntaxError(f"a query is a string, not {type(text).__name__}")
    return _Parser(text).query()


def parse_expression(text: str) -> Expr:
    """Parse one expression (``Jet_pt[abs(Jet_eta) < 1]``, ``count(Jet_pt > 40) >= 2``)."""
    if not isinstance(text, str):
        raise QuerySyntaxError(f"an expression is a string, not {type(text).__name__}")
    parser = _Parser(text)
    expr = parser.or_expr()
    if parser.peek().kind != "end":
        raise parser.unexpected("the end of the expression")
    return expr


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.tokens, self.index = text, tokenize(text), 0
        self.nesting = 0
        self.depths: dict[int, int] = {}  # id(node) -> tree depth, to bound it while parsing

    # token helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def error(self, message: str, token: Token | None = None) -> QuerySyntaxError:
        token = token or self.peek()
        return QuerySyntaxError(message, self.text, token.position)

    def unexpected(self, wanted: str) -> QuerySyntaxError:
        token = self.peek()
        found = "the end of the query" if token.kind == "end" else repr(token.text)
        return self.error(f"expected {wanted}, found {found}")

    @staticmethod
    def keyword(token: Token) -> str | None:
        if token.kind == "name" and isinstance(token.value, BareRef):
            return token.value.keyword
        return None

    def is_op(self, *ops: str) -> bool:
        token = self.peek()
        return (token.kind == "op" and token.text in ops) or self.keyword(token) in ops

    # clauses
    def query(self) -> Query:
        projection: tuple[ColumnRef, ...] | None = None
        predicate: Expr | None = None
        seen: set[str] = set()
        while self.peek().kind != "end":
            token = self.peek()
            clause = self.keyword(token)
            if clause not in CLAUSE_KEYWORDS:
                raise self.unexpected("'select' or 'project'")
            if clause in seen:
                raise self.error(f"the '{clause}' clause appears twice", token)
            seen.add(clause)
            self.advance()
            if clause == "select":
                predicate = self.or_expr()
            else:
                projection = self.project_list()
            if self.peek().kind == "end":
                break
            if self.peek().kind != ",":
                raise self.unexpected("',' or the end of the query")
            self.advance()
            if self.peek().kind == "end":
                raise self.unexpected("'select' or 'project' after ','")
        return Query(projection or (), predicate, self.text)

    def project_list(self) -> tuple[ColumnRef | Derived, ...]:
        items = [self.project_item("a column to project")]
        while True:
            token = self.peek()
            if token.kind == "," and self.keyword(self.peek(1)) not in CLAUSE_KEYWORDS:
                self.advance()
                items.append(self.project_item("a column after ','"))
            elif token.kind == "name" and self.keyword(token) is None:
                items.append(self.project_item("a column"))
            else:
                break
        seen: dict[str, ColumnRef | Derived] = {}
        for item in items:
            if item.name in seen:
                first = seen[item.name]
                where = "" if str(first) == str(item) else f" ({first} and {item})"
                raise QuerySyntaxError(
                    f"{item.name!r} is projected twice{where}", self.text, item.position
                )
            seen[item.name] = item
        return tuple(items)

    def project_item(self, wanted: str) -> ColumnRef | Derived:
        """A column, or ``expression as name``."""
        token = self.peek()
        if token.kind not in ("name", "number", "(", "op") or self.keyword(token) in _NOT_A_VALUE:
            raise self.unexpected(wanted)
        value = self.or_expr()
        as_ = self.peek().value
        if not (isinstance(as_, BareRef) and not as_.quoted and as_.name.lower() == "as"):
            if isinstance(value, ColumnRef):
                return value
            raise self.error(
                f"the projected expression {render(value)} needs a name: write "
                f"'{render(value)} as NAME'",
                token,
            )
        self.advance()
        name = self.peek()
        ref = name.value
        if name.kind != "name" or self.keyword(name) is not None or not isinstance(ref, BareRef):
            raise self.unexpected("a name after 'as' (a plain name, or one between backticks)")
        self.advance()
        return Derived(ref.name, value, name.position)

    def column(self, wanted: str) -> ColumnRef:
        token = self.peek()
        if token.kind != "name" or self.keyword(token) is not None:
            raise self.unexpected(wanted)
        self.advance()
        ref = token.value
        assert isinstance(ref, ColumnRef)
        return ref.as_column() if isinstance(ref, BareRef) else ref

    # predicate, loosest binding first
    def node(self, function: str, args: tuple[Expr, ...], token: Token) -> Call:
        depth = 1 + max(self.depths.get(id(arg), 1) for arg in args)
        if depth > MAX_DEPTH:
            raise self.error(f"expression nests deeper than {MAX_DEPTH} levels", token)
        call = Call(function, args)
        self.depths[id(call)] = depth
        return call

    def enter(self) -> None:
        # Bounds the parser's recursion (parentheses, unary chains) independently of tree depth.
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(f"expression nests deeper than {MAX_DEPTH} levels")

    def or_expr(self) -> Expr:
        left = self.and_expr()
        while self.is_op("or"):
            token = self.advance()
            left = self.node(BOOLEAN["or"], (left, self.and_expr()), token)
        return left

    def and_expr(self) -> Expr:
        left = self.not_expr()
        while self.is_op("and"):
            token = self.advance()
            left = self.node(BOOLEAN["and"], (left, self.not_expr()), token)
        return left

    def not_expr(self) -> Expr:
        if not self.is_op("not"):
            return self.compare()
        token = self.advance()
        self.enter()
        operand = self.not_expr()
        self.nesting -= 1
        return self.node(BOOLEAN["not"], (operand,), token)

    def compare(self) -> Expr:
        left = self.sum()
        if not self.is_op(*COMPARISONS):
            return left
        token = self.advance()
        result = self.node(COMPARISONS[token.text], (left, self.sum()), token)
        if self.is_op(*COMPARISONS):
            raise self.error(
                "chained comparisons are not supported; write 'a < b and b < c' instead"
            )
        return result

    def sum(self) -> Expr:
        return self.left_associative(("+", "-"), self.product)

    def product(self) -> Expr:
        return self.left_associative(("*", "/"), self.unary)

    def left_associative(self, operators: tuple[str, ...], operand: Callable[[], Expr]) -> Expr:
        left = operand()
        while self.is_op(*operators):
            token = self.advance()
            left = self.node(ARITHMETIC[token.text], (left, operand()), token)
        return left

    def unary(self) -> Expr:
        if not self.is_op("-"):
            return self.power()
        token = self.advance()
        self.enter()
        operand = self.unary()
        self.nesting -= 1
        if isinstance(operand, Literal) and not isinstance(operand.value, bool):
            # Fold "-5" into one literal, as Python and numpy read it.
            value = -operand.value
            if isinstance(value, int) and value < INT64_MIN:
                raise self.error(f"integer {value} does not fit in 64 bits", token)
            return Literal(value, literal_type(value))
        return self.node(UNARY["neg"], (operand,), token)

    def power(self) -> Expr:
        base = self.postfix()
        if not self.is_op("**"):
            return base
        token = self.advance()
        self.enter()
        exponent = self.unary()
        self.nesting -= 1
        return self.node(POWER, (base, exponent), token)

    def postfix(self) -> Expr:
        value = self.atom()
        while self.peek().kind == "[":
            token = self.advance()
            if self.is_index():
                value = self.node(ELEMENT, (value, self.index_literal()), token)
            else:  # a mask: the elements of each event's list where it is true
                self.enter()
                mask = self.or_expr()
                self.nesting -= 1
                value = self.node(FILTER, (value, mask), token)
            if self.peek().kind != "]":
                raise self.unexpected("']'")
            self.advance()
        return value

    def is_index(self) -> bool:
        """``[0]``, ``[-1]``: an integer and the closing bracket (anything else is a mask)."""
        ahead = 1 if self.is_op("-") else 0
        number = self.peek(ahead)
        return (
            number.kind == "number"
            and isinstance(number.value, int)
            and self.peek(ahead + 1).kind == "]"
        )

    def index_literal(self) -> Literal:
        sign = -1 if self.is_op("-") else 1
        if sign < 0:
            self.advance()
        number = self.advance()
        assert isinstance(number.value, int)
        index = sign * number.value
        if not INT64_MIN <= index <= INT64_MAX:
            raise self.error(f"index {index} does not fit in 64 bits", number)
        return Literal(index, "int64")

    def atom(self) -> Expr:
        token = self.peek()
        if token.kind == "number":
            self.advance()
            assert isinstance(token.value, int | float)
            return Literal(token.value, literal_type(token.value))
        if token.kind == "(":
            self.advance()
            self.enter()
            inner = self.or_expr()
            self.nesting -= 1
            if self.peek().kind != ")":
                raise self.unexpected("')'")
            self.advance()
            return inner
        if token.kind != "name":
            raise self.unexpected("a value")
        keyword = self.keyword(token)
        if keyword in ("true", "false"):
            self.advance()
            return Literal(keyword == "true", "bool")
        if keyword is not None:
            raise self.unexpected("a value")
        ref = token.value
        if isinstance(ref, BareRef) and not ref.quoted and self.peek(1).kind == "(":
            return self.call(token, ref.name)
        return self.column("a value")

    def call(self, token: Token, name: str) -> Expr:
        function = name.lower()
        if function not in FUNCTIONS:
            raise self.error(
                f"unknown function {name!r}; the functions are: {', '.join(FUNCTIONS)}", token
            )
        wanted = 2 if function in MATH2 else 1
        takes = f"{function}() takes {'two arguments' if wanted == 2 else 'one argument'}"
        self.advance()
        self.advance()  # "("
        if self.peek().kind == ")":
            raise self.error(takes)
        self.enter()
        args = [self.or_expr()]
        while self.peek().kind == "," and len(args) < wanted:
            self.advance()
            args.append(self.or_expr())
        self.nesting -= 1
        if len(args) != wanted or self.peek().kind == ",":
            raise self.error(takes)
        if self.peek().kind != ")":
            raise self.unexpected(f"')' to close {function}(")
        self.advance()
        if function == "hypot":
            x, y = args
            square = [self.node(ARITHMETIC["*"], (v, v), token) for v in (x, y)]
            total = self.node(ARITHMETIC["+"], tuple(square), token)
            return self.node(MATH["sqrt"], (total,), token)
        arrow = MATH.get(function) or MATH2.get(function) or function
        return self.node(arrow, tuple(args), token)
