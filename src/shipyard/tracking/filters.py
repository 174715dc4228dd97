"""The run filter language, parsed into an expression tree (never into SQL text).

    metrics.auc > 0.9 and (params.model = 'rf' or tags.team = 'risk') and status != 'failed'

Comparisons: = != < <= > >= like ilike, `in (…)`, `not in (…)`, `is null`, `is not null`; combine
with and / or / not and parentheses. Keys with other characters go in backquotes: metrics.`val-auc`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from shipyard.errors import FilterSyntaxError

NAMESPACES = {"metrics": "metrics", "metric": "metrics", "params": "params", "param": "params",
              "tags": "tags", "tag": "tags", "attributes": "attributes", "attribute": "attributes",
              "attr": "attributes", "run": "attributes"}
ATTRIBUTES = {
    "run_id": "text", "name": "text", "experiment": "text", "status": "text", "user": "text",
    "parent_id": "text", "git_commit": "text", "start_time": "number", "end_time": "number",
    "wall_seconds": "number", "cpu_seconds": "number", "peak_memory_bytes": "number",
}
COMPARATORS = ("=", "==", "!=", "<>", "<", "<=", ">", ">=", "like", "ilike")
KEYWORDS = {"and", "or", "not", "in", "is", "null", "like", "ilike"}


@dataclass(frozen=True)
class Field:
    namespace: str  # metrics | params | tags | attributes
    key: str
    position: int


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str  # = != < <= > >= like ilike in notin isnull notnull
    value: float | str | tuple[float | str, ...] | None
    position: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Union[Comparison, BoolOp, Not]


@dataclass(frozen=True)
class Token:
    kind: str  # ident | string | number | op | punct | end
    text: str
    position: int
    value: object = None


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)(?![\w.])
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`[^`]*`)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][\w\-/:]*(?:\.(?:[\w\-/:]+|`[^`]*`))*)
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            if text[pos] in "'\"":
                raise FilterSyntaxError("this string is not closed; add the closing quote", text, pos)
            if text[pos] == "`":
                raise FilterSyntaxError("this key is not closed; add the closing backquote", text, pos)
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "number":
            tokens.append(Token("number", raw, pos, float(raw)))
        elif kind == "string":
            quote = raw[0]
            body = raw[1:-1].replace("''", "'") if quote == "'" else raw[1:-1]
            body = re.sub(r"\\(.)", r"\1", body)
            tokens.append(Token("string", raw, pos, body))
        elif kind == "quoted":
            tokens.append(Token("ident", raw, pos, raw[1:-1]))
        elif kind != "space":
            tokens.append(Token(kind, raw, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Token | None = None) -> FilterSyntaxError:
        token = token or self.tok
        found = "the end of the filter" if token.kind == "end" else f"'{token.text}'"
        return FilterSyntaxError(f"{message}, found {found}", self.text, token.position)

    def keyword(self, word: str) -> bool:
        if self.tok.kind == "ident" and self.tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Node | None:
        if self.tok.kind == "end":
            return None
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.error("expected 'and', 'or' or the end of the filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.keyword("and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_expr(self) -> Node:
        if self.keyword("not"):
            return Not(self.not_expr())
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.i += 1
            node = self.or_expr()
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                raise self.error("expected ')' to close the parenthesis")
            self.i += 1
            return node
        return self.comparison()

    def field(self) -> Field:
        tok = self.tok
        if tok.kind != "ident" or tok.text.lower() in KEYWORDS:
            raise self.error("expected a field such as metrics.auc, params.model, tags.team or status")
        self.i += 1
        if tok.value is not None:  # a bare backquoted name
            raise FilterSyntaxError(
                "a backquoted key needs a namespace, e.g. metrics.`val-auc`", self.text, tok.position
            )
        head, dot, rest = tok.text.partition(".")
        if not dot:
            if head.lower() in ATTRIBUTES:
                return Field("attributes", head.lower(), tok.position)
            raise FilterSyntaxError(
                f"unknown field '{head}'; use metrics.{head}, params.{head}, tags.{head} or one of the "
                f"run attributes: {', '.join(sorted(ATTRIBUTES))}",
                self.text,
                tok.position,
            )
        namespace = NAMESPACES.get(head.lower())
        if namespace is None:
            raise FilterSyntaxError(
                f"unknown namespace '{head}'; expected metrics, params, tags or attributes",
                self.text,
                tok.position,
            )
        key = rest[1:-1] if rest.startswith("`") and rest.endswith("`") else rest
        if not key:
            raise FilterSyntaxError(f"'{head}.' needs a key after the dot", self.text, tok.position)
        if namespace == "attributes":
            if key.lower() not in ATTRIBUTES:
                raise FilterSyntaxError(
                    f"unknown attribute '{key}'; expected one of {', '.join(sorted(ATTRIBUTES))}",
                    self.text,
                    tok.position,
                )
            key = key.lower()
        return Field(namespace, key, tok.position)

    def value(self) -> float | str:
        tok = self.tok
        if tok.kind in ("number", "string"):
            self.i += 1
            assert isinstance(tok.value, (float, str))
            return tok.value
        raise self.error("expected a value (a number or a quoted string)")

    def comparison(self) -> Node:
        field = self.field()
        tok = self.tok
        if self.keyword("is"):
            negate = self.keyword("not")
            if not self.keyword("null"):
                raise self.error("expected 'null' after 'is'")
            node: Node = Comparison(field, "notnull" if negate else "isnull", None, tok.position)
            return node
        if tok.kind == "ident" and tok.text.lower() == "not":
            self.i += 1
            if not self.keyword("in"):
                raise self.error("expected 'in' after 'not'")
            return self.check(Comparison(field, "notin", self.value_list(), tok.position))
        if self.keyword("in"):
            return self.check(Comparison(field, "in", self.value_list(), tok.position))
        if tok.kind == "op" or (tok.kind == "ident" and tok.text.lower() in ("like", "ilike")):
            self.i += 1
            op = {"==": "=", "<>": "!="}.get(tok.text.lower(), tok.text.lower())
            return self.check(Comparison(field, op, self.value(), tok.position))
        raise self.error("expected a comparison (=, !=, <, <=, >, >=, like, ilike, in, is null)")

    def value_list(self) -> tuple[float | str, ...]:
        if not (self.tok.kind == "punct" and self.tok.text == "("):
            raise self.error("expected '(' to start the list of values")
        self.i += 1
        values = [self.value()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.i += 1
            values.append(self.value())
        if not (self.tok.kind == "punct" and self.tok.text == ")"):
            raise self.error("expected ',' or ')' in the list of values")
        self.i += 1
        return tuple(values)

    def check(self, node: Comparison) -> Comparison:
        """Types: metrics and numeric attributes take numbers; params and tags take strings."""
        ns, key, op = node.field.namespace, node.field.key, node.op
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        numeric = ns == "metrics" or (ns == "attributes" and ATTRIBUTES[key] == "number")
        if numeric:
            if op in ("like", "ilike"):
                raise FilterSyntaxError(f"'{op}' compares text; {ns}.{key} is a number", self.text, node.position)
            if any(isinstance(v, str) for v in values):
                raise FilterSyntaxError(
                    f"{ns}.{key} is a number; compare it with a number, not a string", self.text, node.position
                )
        else:
            if op in ("<", "<=", ">", ">=") and ns != "attributes":
                raise FilterSyntaxError(
                    f"{ns} are text, so '{op}' is not defined on {ns}.{key}; use =, !=, like or in, "
                    "or log the value as a metric to compare it as a number",
                    self.text,
                    node.position,
                )
            values = tuple(_as_text(v) for v in values if v is not None)
            if ns == "attributes" and key == "status":
                values = tuple(str(v).lower() for v in values)
            value: float | str | tuple[float | str, ...] | None = values if isinstance(node.value, tuple) else values[0]
            return Comparison(node.field, op, value, node.position)
        return node


def _as_text(value: float | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_filter(text: str | None) -> Node | None:
    """Parse a filter; None or blank means no filter. Errors point at the offending position."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool


def parse_order_by(items: Sequence[str] | str | None) -> list[OrderKey]:
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    keys = []
    for item in items:
        parser = _Parser(item)
        field = parser.field()
        descending = False
        if parser.keyword("desc"):
            descending = True
        elif parser.keyword("asc"):
            descending = False
        if parser.tok.kind != "end":
            raise parser.error("expected ASC or DESC after the field")
        keys.append(OrderKey(field, descending))
    return keys
