"""HTTP route templates, matched the way the Functions host (ASP.NET Core routing) does.

Templates: literals, `{id}`, constraints `{id:int}` (int, long, alpha, guid, bool, float,
double, decimal, datetime, min(), max(), range(), length(), minlength(), maxlength(),
regex()), optional `{id?}`, defaults `{id=5}` and catch-all `{*rest}`. Literals match
case-insensitively. When several templates match a path, the most specific wins
(literal > complex segment > constrained parameter > parameter > catch-all, segment by
segment), and a route whose methods exclude the request's is passed over; if all
matching routes exclude it, the answer is 405.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_TOKEN = re.compile(r"\{([^{}]*)\}")
_PARAM = re.compile(
    r"^(?P<star>\*{1,2})?(?P<name>[^:=?*]+)"
    r"(?P<cons>(?::[^:=?()]+(?:\([^)]*\))?)*)"
    r"(?:=(?P<default>[^?]*))?(?P<opt>\?)?$"
)
_CONSTRAINT = re.compile(r":([^:=?()]+)(?:\(([^)]*)\))?")

Check = Callable[[str], bool]


_INT = re.compile(r"[-+]?[0-9]{1,40}")  # ASCII digits (invariant culture); 40 > any long


def _as_int(value: str) -> int | None:
    """The integer a route value spells, or None: too long a number is no match, never a
    ValueError from int() (it refuses strings over 4300 digits)."""
    return int(value) if _INT.fullmatch(value) else None


def _int_range(low: int, high: int) -> Check:
    def check(value: str) -> bool:
        n = _as_int(value)
        return n is not None and low <= n <= high

    return check


def _float(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _number_check(kind: str, args: list[str]) -> Check:
    nums = [int(a) for a in args]
    as_int = _as_int

    if kind == "min":
        return lambda v: (n := as_int(v)) is not None and n >= nums[0]
    if kind == "max":
        return lambda v: (n := as_int(v)) is not None and n <= nums[0]
    if kind == "range":
        return lambda v: (n := as_int(v)) is not None and nums[0] <= n <= nums[1]
    if kind == "minlength":
        return lambda v: len(v) >= nums[0]
    if kind == "maxlength":
        return lambda v: len(v) <= nums[0]
    # length(n) or length(min,max)
    low, high = (nums[0], nums[0]) if len(nums) == 1 else (nums[0], nums[1])
    return lambda v: low <= len(v) <= high


_SIMPLE: dict[str, Check] = {
    "int": _int_range(-(2**31), 2**31 - 1),
    "long": _int_range(-(2**63), 2**63 - 1),
    "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _guid,
    "float": _float,
    "double": _float,
    "decimal": _float,
    "datetime": _datetime,
}


def constraint_check(name: str, arg: str | None) -> Check:
    """The predicate for one route constraint; ValueError for unknown ones."""
    key = name.strip().lower()
    if key in _SIMPLE and arg is None:
        return _SIMPLE[key]
    if key in ("min", "max", "range", "length", "minlength", "maxlength") and arg:
        return _number_check(key, [a.strip() for a in arg.split(",")])
    if key == "regex" and arg is not None:
        pattern = re.compile(arg, re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    raise ValueError(f"unsupported route constraint {name!r}")


@dataclass(frozen=True)
class Parameter:
    name: str
    group: str
    checks: tuple[Check, ...] = ()
    optional: bool = False
    catch_all: bool = False
    default: str | None = None


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template."""

    template: str
    regex: re.Pattern[str]
    parameters: tuple[Parameter, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for `path` (no prefix, no leading slash), or None."""
        found = self.regex.match(path.strip("/"))
        if not found:
            return None
        values: dict[str, str] = {}
        for param in self.parameters:
            value = found.group(param.group)
            if value is None or (value == "" and param.catch_all):
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values


def _parse_parameter(token: str, index: int) -> Parameter:
    parsed = _PARAM.match(token.strip())
    if not parsed:
        raise ValueError(f"bad route parameter {{{token}}}")
    checks = tuple(
        constraint_check(m.group(1), m.group(2)) for m in _CONSTRAINT.finditer(parsed["cons"] or "")
    )
    return Parameter(
        name=parsed["name"].strip(),
        group=f"p{index}",
        checks=checks,
        optional=bool(parsed["opt"]),
        catch_all=bool(parsed["star"]),
        default=parsed["default"],
    )


def compile_route(template: str) -> RouteTemplate:
    """Compile a route template (ValueError on syntax the host does not know)."""
    stripped = template.strip().strip("/")
    segments = stripped.split("/") if stripped else []
    pieces: list[str] = []
    params: list[Parameter] = []
    precedence: list[int] = []
    for position, segment in enumerate(segments):
        lead = "/" if position else ""
        tokens = list(_TOKEN.finditer(segment))
        if not tokens:
            pieces.append(lead + re.escape(segment))
            precedence.append(1)
            continue
        whole = len(tokens) == 1 and tokens[0].span() == (0, len(segment))
        if whole:
            param = _parse_parameter(tokens[0].group(1), len(params))
            params.append(param)
            if param.catch_all:
                pieces.append(f"(?:{lead}(?P<{param.group}>.*))?")
                precedence.append(5)
            elif param.optional or param.default is not None:
                pieces.append(f"(?:{lead}(?P<{param.group}>[^/]+))?")
                precedence.append(3 if param.checks else 4)
            else:
                pieces.append(f"{lead}(?P<{param.group}>[^/]+)")
                precedence.append(3 if param.checks else 4)
            continue
        # complex segment, e.g. "{name}.{ext}": greedy, so the last literal splits (as ASP.NET)
        regex, last = lead, 0
        for token in tokens:
            regex += re.escape(segment[last : token.start()])
            param = _parse_parameter(token.group(1), len(params))
            if param.catch_all:
                raise ValueError(f"catch-all parameter inside a segment: {template!r}")
            params.append(param)
            quantifier = "*" if param.optional else "+"
            regex += f"(?P<{param.group}>[^/]{quantifier})"
            last = token.end()
        regex += re.escape(segment[last:])
        pieces.append(regex)
        precedence.append(2)
    names = [p.name.lower() for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"route parameter names repeat in {template!r}")
    return RouteTemplate(
        template=template,
        regex=re.compile("^" + "".join(pieces) + "$", re.IGNORECASE | re.DOTALL),
        parameters=tuple(params),
        precedence=tuple(precedence),
    )


@dataclass(frozen=True)
class Route:
    """A template bound to the target it serves and the methods it accepts."""

    template: RouteTemplate
    target: Any
    methods: frozenset[str] | None = None  # None: every method

    def allows(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    params: dict[str, str]


@dataclass(frozen=True)
class MethodNotAllowed:
    allowed: tuple[str, ...]


@dataclass
class Router:
    """Picks the route for a path and method."""

    routes: list[Route] = field(default_factory=list)

    def add(self, template: str, target: Any, methods: Iterable[str] | None = None) -> Route:
        allowed = frozenset(m.upper() for m in methods) if methods else None
        route = Route(compile_route(template), target, allowed)
        self.routes.append(route)
        # stable sort: equal precedence keeps registration order
        self.routes.sort(key=lambda r: r.template.precedence)
        return route

    def match(self, path: str, method: str) -> RouteMatch | MethodNotAllowed | None:
        """The best route for path+method; MethodNotAllowed; or None (404)."""
        allowed: list[str] = []
        for route in self.routes:
            params = route.template.match(path)
            if params is None:
                continue
            if route.allows(method):
                return RouteMatch(route, params)
            allowed.extend(sorted(route.methods or ()))
        if allowed:
            return MethodNotAllowed(tuple(dict.fromkeys(allowed)))
        return None
