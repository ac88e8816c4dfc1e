"""Rate-limit policies as data: which routes, counted by what, how fast.

A :class:`PolicySet` is built once at start by
:func:`gateway.protection.policy.load_policies` and only read afterwards; the
route table asks it :meth:`PolicySet.for_route` once per route (the route
templates are a finite set). Its ``token`` policy is charged before a bearer
token is verified (see :mod:`gateway.protection.tokens`).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PARAM = re.compile(r"\{[^{}]*\}")


class KeyKind(enum.Enum):
    """What a tier counts by."""

    GLOBAL = "global"
    USER = "user"
    IP = "ip"
    WALLET = "wallet"
    HEADER = "header"
    BODY = "body"


@dataclass(frozen=True, slots=True)
class Tier:
    """One token bucket: ``rate`` tokens per ``period_seconds``, holding up to ``burst``."""

    name: str
    key: KeyKind
    rate: int
    period_seconds: float
    burst: int
    field: str | None = None

    @property
    def emission_interval_us(self) -> int:
        """Microseconds between two tokens (GCRA's emission interval), at least 1."""
        return max(1, round(self.period_seconds * 1e6 / self.rate))

    def describe(self) -> str:
        """This tier as a ``RateLimit-Policy`` item, e.g. ``5;w=1;burst=10``."""
        text = f"{self.rate};w={math.ceil(self.period_seconds)}"
        return text if self.burst == self.rate else f"{text};burst={self.burst}"


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """``METHOD /path``: the method or ``*``; a Starlette path template, or a prefix
    ending in ``*``. Parameter names are not compared (``{id}`` matches
    ``{quest_id}``), and a ``GET`` pattern also matches ``HEAD``."""

    method: str
    path: str

    @classmethod
    def parse(cls, text: str) -> RoutePattern:
        """``"POST /api/auth/*"`` → a pattern; ``ValueError`` saying what is wrong."""
        parts = text.split()
        if len(parts) != 2:
            raise ValueError(f'must be "METHOD /path", got {text!r}')
        method, path = parts
        if method != "*" and method not in METHODS:
            methods = ", ".join(sorted(METHODS))
            raise ValueError(f"unknown method {method!r} in {text!r}; use * or one of {methods}")
        bare = _PARAM.sub("", path)
        if not path.startswith("/") or "{" in bare or "}" in bare or "*" in bare[:-1]:
            raise ValueError(
                f"path must start with / and may end in * (a prefix), got {path!r} in {text!r}"
            )
        return cls(method, path)

    def matches(self, method: str, path_template: str) -> bool:
        if self.method not in ("*", method) and (method, self.method) != ("HEAD", "GET"):
            return False
        mine, theirs = self.path, path_template
        if "{" in mine or "{" in theirs:
            mine, theirs = _PARAM.sub("{}", mine), _PARAM.sub("{}", theirs)
        if mine.endswith("*"):
            return theirs.startswith(mine[:-1])
        return theirs == mine

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class Policy:
    """Tiers applied together to the routes that match (all must allow a request)."""

    name: str
    routes: tuple[RoutePattern, ...]
    tiers: tuple[Tier, ...]
    shadow: bool = False
    fail_open: bool = True

    def matches(self, method: str, path_template: str) -> bool:
        return any(route.matches(method, path_template) for route in self.routes)


#: Key kinds the ``token`` policy may count by: it runs before the caller is
#: known and before the body is read.
TOKEN_KEY_KINDS = frozenset({KeyKind.GLOBAL, KeyKind.IP, KeyKind.HEADER})


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Policies in file order (the first match wins), the routes never limited,
    and the ``token`` policy charged before a bearer token is verified."""

    policies: tuple[Policy, ...] = ()
    unlimited: tuple[RoutePattern, ...] = ()
    token: Policy | None = None

    def for_route(self, method: str, path_template: str) -> Policy | None:
        """The policy for a route, or ``None``: not limited. Cache it per route."""
        if any(route.matches(method, path_template) for route in self.unlimited):
            return None
        return next((p for p in self.policies if p.matches(method, path_template)), None)

    def unmatched_patterns(self, routes: Iterable[tuple[str, str]]) -> list[str]:
        """``"policy: METHOD /path"`` for every pattern matching none of the app's routes."""
        app_routes = list(routes)
        named = [("unlimited", pattern) for pattern in self.unlimited]
        named += [(policy.name, pattern) for policy in self.policies for pattern in policy.routes]
        return [
            f"{name}: {pattern}"
            for name, pattern in named
            if not any(pattern.matches(method, path) for method, path in app_routes)
        ]
