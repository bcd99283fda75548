"""HTTP trigger route templates, matched as ASP.NET Core routing matches them.

Azure Functions routes HTTP triggers with ASP.NET Core route templates
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger#customize-the-http-endpoint,
https://learn.microsoft.com/aspnet/core/fundamentals/routing#route-template-reference):

* literal segments match case-insensitively; a trailing slash is ignored;
* ``{name}`` matches one non-empty segment, ``{name?}`` may be omitted (only at the end),
  ``{name=default}`` has a default, ``{*rest}`` / ``{**rest}`` catch the remainder (may be empty);
* constraints ``{name:int}``, ``:long``, ``:bool``, ``:guid``, ``:alpha``, ``:double``, ``:float``,
  ``:decimal``, ``:datetime``, ``:min(n)``, ``:max(n)``, ``:range(a,b)``, ``:minlength(n)``,
  ``:maxlength(n)``, ``:length(n)``/``:length(a,b)``, ``:regex(expr)``, ``:required`` may be chained;
  a value that fails a constraint makes the route not match (so the request is a 404).
* several routes may match; the most specific wins (ASP.NET's precedence: literal before constrained
  parameter before parameter before catch-all, segment by segment).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import itertools
import re
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["RouteError", "RouteTemplate", "match_route", "parse_route"]


class RouteError(ValueError):
    """A route template is not valid."""


def _is_int(v: str, bits: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", v.strip()):
        return False
    n = int(v)
    return bool(-(2 ** (bits - 1)) <= n < 2 ** (bits - 1))


def _is_float(v: str) -> bool:
    return re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", v) is not None


def _is_decimal(v: str) -> bool:
    if not re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*", v):
        return False
    try:
        decimal.Decimal(v)
    except decimal.InvalidOperation:
        return False
    return True


def _is_datetime(v: str) -> bool:
    candidate = v.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        dt.datetime.fromisoformat(candidate)
        return True
    except ValueError:
        pass
    for fmt in ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%Y/%m/%d"):
        try:
            dt.datetime.strptime(candidate, fmt)
            return True
        except ValueError:
            continue
    return False


def _is_guid(v: str) -> bool:
    text = v.strip()
    if re.fullmatch(r"\{[0-9a-fA-F-]{36}\}|\([0-9a-fA-F-]{36}\)", text):
        text = text[1:-1]
    if not re.fullmatch(
        r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text
    ):
        return False
    uuid.UUID(text)
    return True


def _build_constraint(spec: str) -> Callable[[str], bool]:
    m = re.fullmatch(r"(\w+)(?:\((.*)\))?", spec, re.DOTALL)
    if not m:
        raise RouteError(f"invalid route constraint {spec!r}")
    name, arg = m.group(1).lower(), m.group(2)
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: _is_int(v, 32),
        "long": lambda v: _is_int(v, 64),
        "bool": lambda v: v.strip().lower() in ("true", "false"),
        "guid": _is_guid,
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_decimal,
        "datetime": _is_datetime,
        "required": lambda v: v != "",
    }
    if name in simple:
        if arg is not None:
            raise RouteError(f"route constraint {name!r} takes no argument")
        return simple[name]
    if arg is None:
        raise RouteError(f"unknown route constraint {spec!r}")
    args = [a.strip() for a in arg.split(",")] if name != "regex" else [arg]
    try:
        if name == "min":
            lo = int(args[0])
            return lambda v: _is_int(v, 64) and int(v) >= lo
        if name == "max":
            hi = int(args[0])
            return lambda v: _is_int(v, 64) and int(v) <= hi
        if name == "range":
            a, b = int(args[0]), int(args[1])
            return lambda v: _is_int(v, 64) and a <= int(v) <= b
        if name == "minlength":
            n = int(args[0])
            return lambda v: len(v) >= n
        if name == "maxlength":
            n = int(args[0])
            return lambda v: len(v) <= n
        if name == "length":
            if len(args) == 1:
                n = int(args[0])
                return lambda v: len(v) == n
            a, b = int(args[0]), int(args[1])
            return lambda v: a <= len(v) <= b
    except (ValueError, IndexError) as exc:
        raise RouteError(f"invalid arguments in route constraint {spec!r}") from exc
    if name == "regex":
        # ASP.NET's regex constraint is case-insensitive and culture-invariant.
        rx = re.compile(args[0], re.IGNORECASE)
        return lambda v: rx.search(v) is not None
    raise RouteError(f"unknown route constraint {spec!r}")


@dataclass
class _Param:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: list[Callable[[str], bool]] = field(default_factory=list)

    def accepts(self, value: str) -> bool:
        return all(c(value) for c in self.constraints)


@dataclass
class _Segment:
    parts: list[str | _Param]  # literal text or parameters

    @property
    def single_param(self) -> _Param | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], _Param):
            return self.parts[0]
        return None

    def precedence(self) -> int:
        # ASP.NET inbound precedence digits (lower = more specific).
        if all(isinstance(p, str) for p in self.parts):
            return 1
        p = self.single_param
        if p is None:
            return 2  # complex segment, e.g. {a}.{b}
        if p.catch_all:
            return 5
        return 3 if p.constraints else 4


def _parse_param(body: str, template: str) -> _Param:
    catch_all = False
    if body.startswith("**"):
        body, catch_all = body[2:], True
    elif body.startswith("*"):
        body, catch_all = body[1:], True
    # split "name:c1:c2(args)=default?" — constraints may contain ':' inside parentheses
    default: str | None = None
    optional = False
    name_end = re.match(r"[^:=?]*", body)
    assert name_end is not None
    name = name_end.group(0)
    rest = body[len(name) :]
    constraints: list[str] = []
    while rest.startswith(":"):
        rest = rest[1:]
        depth = 0
        i = 0
        while i < len(rest):
            ch = rest[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and ch in ":=?":
                break
            i += 1
        constraints.append(rest[:i])
        rest = rest[i:]
    if rest.startswith("="):
        default = rest[1:]
        if default.endswith("?"):
            raise RouteError(f"route {template!r}: a parameter cannot be both optional and have a default")
        rest = ""
    if rest == "?":
        optional, rest = True, ""
    if rest:
        raise RouteError(f"route {template!r}: cannot parse parameter {{{body}}}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteError(f"route {template!r}: invalid parameter name {name!r}")
    return _Param(name, optional, catch_all, default, [_build_constraint(c) for c in constraints])


@dataclass
class RouteTemplate:
    """A parsed route template (without the host's route prefix)."""

    template: str
    segments: list[_Segment]

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for s in self.segments for p in s.parts if isinstance(p, _Param)]

    @functools.cached_property
    def order(self) -> tuple[int, ...]:
        """ASP.NET's precedence of the whole template (computed once: it is read on every request)."""
        return tuple(s.precedence() for s in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Match a request path (relative to the prefix, percent-encoded or not) → route values."""
        raw = path.strip("/")
        pieces = [urllib.parse.unquote(p) for p in raw.split("/")] if raw else []
        values: dict[str, str] = {}
        for index, seg in enumerate(self.segments):
            param = seg.single_param
            if param is not None and param.catch_all:
                rest = "/".join(pieces[index:])
                if rest == "" and param.default is not None:
                    rest = param.default
                if rest and not param.accepts(rest):
                    return None
                if rest:
                    values[param.name] = rest
                return values
            if index >= len(pieces):
                # Missing trailing segments: allowed only for optional / defaulted parameters.
                if param is None or not (param.optional or param.default is not None):
                    return None
                if param.default is not None:
                    values[param.name] = param.default
                continue
            piece = pieces[index]
            if param is not None:
                if piece == "" or not param.accepts(piece):
                    return None
                values[param.name] = piece
                continue
            if not self._match_complex(seg, piece, values):
                return None
        if len(pieces) > len(self.segments):
            return None
        return values

    @staticmethod
    def _match_complex(seg: _Segment, piece: str, values: dict[str, str]) -> bool:
        if all(isinstance(p, str) for p in seg.parts):
            return piece.lower() == "".join(p for p in seg.parts if isinstance(p, str)).lower()
        pattern = ""
        params: list[_Param] = []
        for part in seg.parts:
            if isinstance(part, str):
                pattern += re.escape(part)
            else:
                # ASP.NET matches complex segments right to left: earlier parameters are greedy.
                pattern += "(.+)"
                params.append(part)
        m = re.fullmatch(pattern, piece, re.IGNORECASE)
        if not m:
            return False
        for param, value in zip(params, m.groups(), strict=True):
            if not param.accepts(value):
                return False
            values[param.name] = value
        return True


def parse_route(template: str) -> RouteTemplate:
    text = template.strip()
    if text.startswith("~"):
        text = text[1:]
    text = text.strip("/")
    if "?" in text.split("{")[0] or "#" in text:
        raise RouteError(f"route {template!r}: '?' and '#' are not allowed in a route template")
    segments: list[_Segment] = []
    raw_segments = _split_segments(text) if text else []
    seen: set[str] = set()
    for i, raw in enumerate(raw_segments):
        if raw == "":
            raise RouteError(f"route {template!r}: empty segment")
        parts: list[str | _Param] = []
        for kind, text_part in _scan_segment(raw, template):
            if kind == "literal":
                parts.append(text_part)
                continue
            param = _parse_param(text_part, template)
            if param.name.lower() in seen:
                raise RouteError(f"route {template!r}: parameter {param.name!r} appears twice")
            seen.add(param.name.lower())
            parts.append(param)
        seg = _Segment(parts)
        single = seg.single_param
        has_params = any(isinstance(p, _Param) for p in parts)
        if has_params and single is None:
            for p in parts:
                if isinstance(p, _Param) and (p.catch_all or p.optional):
                    raise RouteError(
                        f"route {template!r}: catch-all/optional parameters must be a whole segment"
                    )
            for a, b in itertools.pairwise(parts):
                if isinstance(a, _Param) and isinstance(b, _Param):
                    raise RouteError(f"route {template!r}: adjacent parameters need a literal between them")
        if single is not None and single.catch_all and i != len(raw_segments) - 1:
            raise RouteError(f"route {template!r}: a catch-all parameter must be the last segment")
        segments.append(seg)
    # An optional parameter may only be followed by optional/default parameters.
    seen_optional = False
    for seg in segments:
        sp = seg.single_param
        is_opt = sp is not None and (sp.optional or sp.default is not None or sp.catch_all)
        if seen_optional and not is_opt:
            raise RouteError(f"route {template!r}: an optional parameter must be at the end of the template")
        seen_optional = seen_optional or (sp is not None and (sp.optional or sp.default is not None))
    return RouteTemplate(template, segments)


def _scan_segment(raw: str, template: str) -> list[tuple[str, str]]:
    """Split a segment into ("literal", text) / ("param", body); ``{{`` and ``}}`` escape braces."""
    out: list[tuple[str, str]] = []
    literal = ""
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "{" and raw.startswith("{{", i):
            literal += "{"
            i += 2
        elif ch == "}" and raw.startswith("}}", i):
            literal += "}"
            i += 2
        elif ch == "{":
            if literal:
                out.append(("literal", literal))
                literal = ""
            body = ""
            i += 1
            while True:
                if i >= len(raw):
                    raise RouteError(f"route {template!r}: unbalanced braces in segment {raw!r}")
                if raw.startswith("{{", i) or raw.startswith("}}", i):
                    body += raw[i]
                    i += 2
                elif raw[i] == "}":
                    i += 1
                    break
                elif raw[i] == "{":
                    raise RouteError(f"route {template!r}: unbalanced braces in segment {raw!r}")
                else:
                    body += raw[i]
                    i += 1
            out.append(("param", body))
        elif ch == "}":
            raise RouteError(f"route {template!r}: unbalanced braces in segment {raw!r}")
        else:
            literal += ch
            i += 1
    if literal:
        out.append(("literal", literal))
    return out


def _split_segments(text: str) -> list[str]:
    # Split on '/', but not inside {...} (regex constraints may contain '/').
    out: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "/" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def match_route(
    routes: Sequence[tuple[RouteTemplate, object]], path: str
) -> list[tuple[object, dict[str, str]]]:
    """All routes matching ``path``, most specific first (ASP.NET precedence, then declaration order)."""
    ordered = sorted(enumerate(routes), key=lambda item: (item[1][0].order, item[0]))
    result: list[tuple[object, dict[str, str]]] = []
    for _, (template, target) in ordered:
        values = template.match(path)
        if values is not None:
            result.append((target, values))
    return result
