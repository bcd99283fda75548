"""OData query options for directory collections: ``$filter``, ``$select``, ``$top``, ``$skiptoken``.

Follows Microsoft's pages:
- https://learn.microsoft.com/en-us/graph/filter-query-parameter (operators, lambda ``any``, ``''`` escaping)
- https://learn.microsoft.com/en-us/graph/aad-advanced-queries (``ne``/``not``/``endsWith`` need
  ``ConsistencyLevel: eventual`` and ``$count=true``; the error codes and messages used below are the ones the
  page shows: "Operator 'endsWith' is not supported because the required parameters might be missing. ..." and
  "Unsupported or invalid query filter clause specified for property '...' of resource '...'.")
- https://learn.microsoft.com/en-us/graph/paging (opaque ``$skiptoken``; users: ``$top`` 1..999)

A filter compiles to a predicate over the simulator's stored object dicts. String comparisons are
case-insensitive, as directory string properties are.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.m365sim.backends.errors import GraphError

Predicate = Callable[[Mapping[str, Any]], bool]

ADVANCED_QUERY_DOC = "https://aka.ms/graph-docs/advanced-queries"


class QueryError(GraphError):
    """A query option Graph would refuse (400 unless said otherwise), with Graph's error code and message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(status, code, message)


def advanced_required(operator: str) -> QueryError:
    # https://learn.microsoft.com/en-us/graph/aad-advanced-queries#error-handling-for-advanced-queries-on-directory-objects
    return QueryError(
        "Request_UnsupportedQuery",
        f"Operator '{operator}' is not supported because the required parameters might be missing. "
        f"Try adding $count=true query parameter and ConsistencyLevel:eventual header. "
        f"Refer to {ADVANCED_QUERY_DOC} for more information",
    )


@dataclass(frozen=True)
class FilterSchema:
    """Which properties of a resource can be filtered, and how (a subset of Graph's filter table)."""

    resource: str
    """Resource name used in error messages: 'User', 'Group'."""
    strings: frozenset[str] = frozenset()
    """String properties supporting eq / in / startsWith (and, advanced, ne / not)."""
    booleans: frozenset[str] = frozenset()
    """Boolean properties supporting eq (and, advanced, ne / not)."""
    collections: frozenset[str] = frozenset()
    """String collections supporting ``any(x:x eq '…')`` and ``any(x:startsWith(x,'…'))``."""
    ends_with: frozenset[str] = frozenset()
    """Properties supporting endsWith (advanced queries only)."""
    no_starts_with: frozenset[str] = frozenset()
    """String properties where startsWith is not supported (e.g. id)."""
    names: dict[str, str] = field(default_factory=dict)

    def canonical(self, name: str) -> str | None:
        """Property names in $filter are case-insensitive; return the stored spelling."""
        if not self.names:
            every = self.strings | self.booleans | self.collections
            object.__setattr__(self, "names", {n.lower(): n for n in every})
        return self.names.get(name.lower())


# ---------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<punct>[(),:/]))"
)


@dataclass(frozen=True)
class Token:
    kind: str  # str | num | name | punct | end
    text: str

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "name" else ""


def _syntax_error(detail: str) -> QueryError:
    # Graph answers malformed $filter expressions with 400 BadRequest "Invalid filter clause".
    return QueryError("BadRequest", f"Invalid filter clause: {detail}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise _syntax_error(f"syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or "punct"
        value = match.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        tokens.append(Token(kind, value))
        pos = match.end()
    tokens.append(Token("end", ""))
    return tokens


# ---------------------------------------------------------------------------------------------------------
# Parser: recursive descent, compiles straight to predicates
# ---------------------------------------------------------------------------------------------------------


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _eq(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return False
    return bool(_fold(actual) == _fold(expected))


def _starts(actual: Any, prefix: str) -> bool:
    return isinstance(actual, str) and actual.casefold().startswith(prefix.casefold())


def _ends(actual: Any, suffix: str) -> bool:
    return isinstance(actual, str) and actual.casefold().endswith(suffix.casefold())


class _Parser:
    def __init__(self, text: str, schema: FilterSchema, advanced: bool) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.schema = schema
        self.advanced = advanced

    # -- token helpers ---------------------------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text.lower() != text:
            raise _syntax_error(f"expected '{text}' but found '{token.text or 'end of input'}'.")

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "str":
            return token.text
        if token.kind == "num":
            return float(token.text) if "." in token.text else int(token.text)
        if token.word in ("true", "false"):
            return token.word == "true"
        if token.word == "null":
            return None
        raise _syntax_error(f"expected a literal but found '{token.text or 'end of input'}'.")

    def string_literal(self) -> str:
        value = self.literal()
        if not isinstance(value, str):
            raise _syntax_error("expected a string literal.")
        return value

    def need_advanced(self, operator: str) -> None:
        if not self.advanced:
            raise advanced_required(operator)

    def unsupported(self, prop: str) -> QueryError:
        return QueryError(
            "Request_UnsupportedQuery",
            f"Unsupported or invalid query filter clause specified for property '{prop}' "
            f"of resource '{self.schema.resource}'.",
        )

    def prop(self, name: str, *, kinds: Iterable[frozenset[str]]) -> str:
        canonical = self.schema.canonical(name)
        if canonical is None or not any(canonical in kind for kind in kinds):
            raise self.unsupported(name)
        return canonical

    # -- grammar -----------------------------------------------------------------------------------------
    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek().kind != "end":
            raise _syntax_error(f"unexpected '{self.peek().text}'.")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek().word == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda obj: any(p(obj) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.peek().word == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda obj: all(p(obj) for p in parts))

    def unary(self) -> Predicate:
        if self.peek().word == "not":
            self.take()
            self.need_advanced("not")
            inner = self.unary()
            return lambda obj: not inner(obj)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.peek()
        if token.text == "(":
            self.take()
            inner = self.or_expr()
            self.expect(")")
            return inner
        if token.kind != "name":
            raise _syntax_error(f"unexpected '{token.text or 'end of input'}'.")
        if token.word in ("startswith", "endswith") and self.tokens[self.pos + 1].text == "(":
            return self.function_call()
        return self.comparison()

    def function_call(self) -> Predicate:
        function = self.take().word
        self.expect("(")
        name = self.take().text
        self.expect(",")
        value = self.string_literal()
        self.expect(")")
        if function == "endswith":
            self.need_advanced("endsWith")
            prop = self.prop(name, kinds=[self.schema.ends_with])
            return lambda obj: _ends(obj.get(prop), value)
        prop = self.prop(name, kinds=[self.schema.strings])
        if prop in self.schema.no_starts_with:
            raise self.unsupported(prop)
        return lambda obj: _starts(obj.get(prop), value)

    def comparison(self) -> Predicate:
        name = self.take().text
        if self.peek().text == "/":
            return self.lambda_any(name)
        operator = self.take().word
        if operator == "in":
            prop = self.prop(name, kinds=[self.schema.strings, self.schema.booleans])
            values = self.literal_list()
            return lambda obj: any(_eq(obj.get(prop), v) for v in values)
        if operator not in ("eq", "ne"):
            if operator in ("gt", "ge", "lt", "le"):
                raise self.unsupported(name)
            raise _syntax_error(f"unknown operator '{operator}'.")
        prop = self.prop(name, kinds=[self.schema.strings, self.schema.booleans])
        value = self.literal()
        if operator == "ne":
            self.need_advanced("ne")
            return lambda obj: not _eq(obj.get(prop), value)
        return lambda obj: _eq(obj.get(prop), value)

    def literal_list(self) -> list[Any]:
        self.expect("(")
        values = [self.literal()]
        while self.peek().text == ",":
            self.take()
            values.append(self.literal())
        self.expect(")")
        return values

    def lambda_any(self, name: str) -> Predicate:
        prop = self.prop(name, kinds=[self.schema.collections])
        self.expect("/")
        if self.take().word != "any":
            raise self.unsupported(prop)
        self.expect("(")
        var = self.take().text.lower()
        self.expect(":")
        test = self.lambda_body(var, prop)
        self.expect(")")
        return lambda obj: any(test(item) for item in (obj.get(prop) or []))

    def lambda_body(self, var: str, prop: str) -> Callable[[Any], bool]:
        token = self.take()
        if token.word in ("startswith", "endswith"):
            self.expect("(")
            if self.take().text.lower() != var:
                raise self.unsupported(prop)
            self.expect(",")
            value = self.string_literal()
            self.expect(")")
            if token.word == "endswith":
                self.need_advanced("endsWith")
                return lambda item: _ends(item, value)
            return lambda item: _starts(item, value)
        if token.text.lower() != var or self.take().word != "eq":
            raise self.unsupported(prop)
        value = self.literal()
        return lambda item: _eq(item, value)


def compile_filter(text: str, schema: FilterSchema, *, advanced: bool) -> Predicate:
    """Compile a ``$filter`` expression. ``advanced``: ConsistencyLevel eventual and $count=true were sent."""
    if not text.strip():
        raise _syntax_error("the expression is empty.")
    return _Parser(text, schema, advanced).parse()


def filter_ids(text: str) -> list[str]:
    """The only ``$filter`` delta accepts: ``id eq '…' or id eq '…'`` (https://learn.microsoft.com/en-us/graph/api/user-delta)."""
    schema = FilterSchema(resource="delta", strings=frozenset({"id"}))
    parser = _Parser(text, schema, advanced=False)
    ids: list[str] = []
    while True:
        parser.prop(parser.take().text, kinds=[schema.strings])
        if parser.take().word != "eq":
            raise parser.unsupported("id")
        ids.append(parser.string_literal().lower())
        if parser.peek().kind == "end":
            return ids
        if parser.take().word != "or":
            raise parser.unsupported("id")


# ---------------------------------------------------------------------------------------------------------
# $select, $top, opaque tokens
# ---------------------------------------------------------------------------------------------------------


def parse_select(raw: str | None, known: Mapping[str, str], type_name: str) -> list[str] | None:
    """``$select=a,b`` → canonical property names; unknown names are refused as Graph's OData layer does."""
    if raw is None or not raw.strip():
        return None
    selected: list[str] = []
    for part in raw.split(","):
        name = known.get(part.strip().lower())
        if name is None:
            raise QueryError(
                "BadRequest", f"Could not find a property named '{part.strip()}' on type '{type_name}'."
            )
        if name not in selected:
            selected.append(name)
    return selected


def parse_top(raw: str | None, default: int = 100, maximum: int = 999) -> int:
    """``$top`` for directory collections: https://learn.microsoft.com/en-us/graph/api/user-list (1..999)."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError("BadRequest", f"Invalid page size specified: '{raw}'.") from None
    if not 1 <= value <= maximum:
        raise QueryError(
            "Request_BadRequest",
            f"Invalid page size specified: '{raw}'. Must be between 1 and {maximum} inclusive.",
        )
    return value


def encode_token(state: Mapping[str, Any]) -> str:
    """Opaque state token: base64url(JSON) without padding."""
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    """The state in a token made by ``encode_token``, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return state if isinstance(state, dict) else None
