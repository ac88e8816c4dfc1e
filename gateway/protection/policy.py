"""Rate-limit policies declared as data (TOML), validated once at load.

The types live in :mod:`gateway.protection.model` and are re-exported here.
The shipped file is ``gateway/ratelimits.toml``; its header documents the
format. ``RATE_LIMIT_POLICY_FILE`` points at another file;
``<POLICY>_RATE_LIMIT_<TIER>_{RATE,BURST,PERIOD}`` and
``<POLICY>_RATE_LIMIT_{SHADOW,FAIL}`` override single values;
``RATE_LIMITS_ENABLED=false`` turns limiting off.

The names of the app this project started from are accepted as aliases
(:func:`aliases`): ``<POLICY>_RATE_LIMIT_<TIER>`` and
``<POLICY>_RATE_LIMIT_PER_<TIER>`` for ``..._<TIER>_RATE``,
``<POLICY>_RATE_LIMIT_PER_<TIER>_BURST`` for ``..._<TIER>_BURST`` (so
``MINING_RATE_LIMIT_GLOBAL``, ``MINING_RATE_LIMIT_PER_USER``), and
``RL_<POLICY>_[<TIER>_]PER_{SECOND,MINUTE,HOUR,DAY}`` for a tier's rate over
that period (no tier: the ``ip`` tier; so ``RL_REGISTER_PER_HOUR``). A name
with one of these prefixes that matches nothing is refused. Errors::

    runtime.config.ConfigError
    └── PolicyError    every mistake in the file and the overrides, one per line
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from gateway.protection.durations import parse_duration
from gateway.protection.model import (
    TOKEN_KEY_KINDS,
    KeyKind,
    Policy,
    PolicySet,
    RoutePattern,
    Tier,
)
from runtime.config import ConfigError, Env
from runtime.config_files import Checker, FileMistakes, read_toml

__all__ = [
    "Alias",
    "KeyKind",
    "Policy",
    "PolicyError",
    "PolicySet",
    "RoutePattern",
    "Tier",
    "aliases",
    "load_policies",
    "override_names",
]

T = TypeVar("T")

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "ratelimits.toml"
#: The name of the policy charged before a bearer token is verified.
TOKEN_POLICY = "token"  # noqa: S105 - a policy name, not a secret
FILE_VAR = "RATE_LIMIT_POLICY_FILE"
ENABLED_VAR = "RATE_LIMITS_ENABLED"

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_BODY_FIELD = re.compile(r"[a-z][A-Za-z0-9]*")  # lowerCamelCase, as clients send it
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an RFC 9110 token, lower-cased
_TOP_KEYS = ("policy", "unlimited", TOKEN_POLICY)
_POLICY_KEYS = ("name", "routes", "tiers", "shadow", "fail")
_TOKEN_KEYS = ("tiers", "shadow", "fail")
_TIER_KEYS = ("name", "key", "rate", "period", "burst", "field")
_TIER_FIELDS = ("RATE", "BURST", "PERIOD")
_KINDS = ", ".join(kind.value for kind in KeyKind)
#: The prefix of the seed API's per-period names (``RL_REGISTER_PER_HOUR``).
ALIAS_PREFIX = "RL_"
_UNITS = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86_400.0}
#: The tier an ``RL_<POLICY>_PER_<UNIT>`` name without a tier sets: the seed's
#: per-period limits are per client address.
_DEFAULT_ALIAS_TIER = "ip"


@dataclass(frozen=True, slots=True)
class Alias:
    """Another name for one of our override variables."""

    name: str
    #: Our variable it stands for (``MINING_RATE_LIMIT_USER_RATE``).
    target: str
    #: The period the name implies (``RL_*_PER_HOUR``: 3600 s), if any.
    period_seconds: float | None = None


def aliases(policies: PolicySet) -> list[Alias]:
    """Every alias the loader accepts for ``policies`` (see the module docstring)."""
    return [
        alias
        for policy in _all(policies)
        for tier in policy.tiers
        for alias in _tier_aliases(policy.name, tier.name)
    ]


def _tier_aliases(policy: str, tier: str) -> list[Alias]:
    prefix, name = _prefix(policy), tier.upper()
    rate, burst = f"{prefix}{name}_RATE", f"{prefix}{name}_BURST"
    found = [
        Alias(f"{prefix}{name}", rate),
        Alias(f"{prefix}PER_{name}", rate),
        Alias(f"{prefix}PER_{name}_BURST", burst),
    ]
    short = f"{ALIAS_PREFIX}{policy.upper()}_"
    for unit, seconds in _UNITS.items():
        found.append(Alias(f"{short}{name}_PER_{unit}", rate, seconds))
        if tier == _DEFAULT_ALIAS_TIER:
            found.append(Alias(f"{short}PER_{unit}", rate, seconds))
    return found


class PolicyError(FileMistakes):
    """One or more mistakes in the policy file or its env overrides."""

    subject = "the rate-limit policies"


def override_names(policies: PolicySet) -> list[str]:
    """Every ``<POLICY>_RATE_LIMIT_*`` variable that overrides a value of ``policies``."""
    return [name for policy in _all(policies) for name in _override_names(policy)]


def _all(policies: PolicySet) -> tuple[Policy, ...]:
    return (*policies.policies, *((policies.token,) if policies.token else ()))


def load_policies(env: Env, path: Path | None = None) -> PolicySet:
    """Read, validate and override the policies; ``PolicyError`` lists every mistake."""
    if not env.boolean(ENABLED_VAR, True):
        return PolicySet()
    configured = env.optional(FILE_VAR) if path is None else None
    path = path or (Path(configured) if configured else DEFAULT_FILE)
    source = str(path)
    data = read_toml(path, PolicyError, FILE_VAR if configured else None)
    loader = _Loader(env, source)
    policy_set = loader.policy_set(data)
    loader.check_unknown_overrides(policy_set)
    if loader.problems:
        raise PolicyError(source, loader.problems)
    return policy_set


def _prefix(policy: str) -> str:
    return f"{policy.upper()}_RATE_LIMIT_"


def _override_names(policy: Policy) -> list[str]:
    prefix = _prefix(policy.name)
    names = [f"{prefix}SHADOW", f"{prefix}FAIL"]
    return names + [f"{prefix}{t.name.upper()}_{f}" for t in policy.tiers for f in _TIER_FIELDS]


def _env_names(env: Env) -> list[str]:
    return env.names()


class _Loader(Checker):
    """Walks the parsed policies (:class:`runtime.config_files.Checker`)."""

    def __init__(self, env: Env, source: str) -> None:
        super().__init__(source)
        self.env = env

    def policy_set(self, data: Mapping[str, object]) -> PolicySet:
        self.unknown_keys("", data, _TOP_KEYS)
        raw_unlimited = data.get("unlimited", [])
        unlimited = self.patterns("unlimited", raw_unlimited, allow_empty=True)
        token = self.token_policy(data.get(TOKEN_POLICY))
        raw_policies = data.get("policy")
        if not isinstance(raw_policies, list) or not raw_policies:
            self.fail("policy", "at least one [[policy]] table is required")
            return PolicySet((), unlimited, token)
        policies: list[Policy] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_policies):
            policy = self.policy(index, raw, seen)
            if policy is not None:
                policies.append(policy)
        return PolicySet(tuple(policies), unlimited, token)

    def policy(self, index: int, raw: object, seen: set[str]) -> Policy | None:
        if not isinstance(raw, dict):
            self.fail(f"policy[{index}]", "must be a [[policy]] table")
            return None
        before = len(self.problems)
        name = self.name(f"policy[{index}]", raw.get("name"), seen)
        at = name or f"policy[{index}]"
        self.unknown_keys(f"{at}.", raw, _POLICY_KEYS)
        routes = self.patterns(f"{at}.routes", raw.get("routes"), allow_empty=False)
        return self.finish(at, name, routes, raw, before)

    def token_policy(self, raw: object) -> Policy | None:
        """The ``[token]`` table: tiers charged before a token is verified (no routes)."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.fail(TOKEN_POLICY, "must be a [token] table")
            return None
        before = len(self.problems)
        self.unknown_keys(f"{TOKEN_POLICY}.", raw, _TOKEN_KEYS)
        policy = self.finish(TOKEN_POLICY, TOKEN_POLICY, (), raw, before)
        for tier in policy.tiers if policy else ():
            if tier.key not in TOKEN_KEY_KINDS:
                kinds = ", ".join(sorted(kind.value for kind in TOKEN_KEY_KINDS))
                self.fail(
                    f"{TOKEN_POLICY}.{tier.name}.key",
                    f"the token policy runs before the caller is known: use {kinds}",
                )
        return policy if len(self.problems) == before else None

    def finish(
        self,
        at: str,
        name: str | None,
        routes: tuple[RoutePattern, ...],
        raw: Mapping[str, object],
        before: int,
    ) -> Policy | None:
        """Tiers, shadow and fail of a policy table, with their env overrides."""
        tiers = self.tiers(at, raw.get("tiers"), name)
        shadow, fail = raw.get("shadow", False), raw.get("fail", "open")
        if not isinstance(shadow, bool):
            self.fail(f"{at}.shadow", f"must be true or false, got {shadow!r}")
        if fail not in ("open", "closed"):
            self.fail(f"{at}.fail", f'must be "open" or "closed", got {fail!r}')
        if name is None or len(self.problems) > before:
            return None
        prefix = _prefix(name)
        shadow = self.override(f"{prefix}SHADOW", shadow is True, self.env.boolean)
        fail = self.override(f"{prefix}FAIL", str(fail), self.env_fail)
        return Policy(name, routes, tiers, shadow=shadow, fail_open=fail == "open")

    def name(self, where: str, raw: object, seen: set[str]) -> str | None:
        if raw is None:
            self.fail(f"{where}.name", "is required")
        elif not isinstance(raw, str) or not _NAME.fullmatch(raw):
            self.fail(f"{where}.name", f"must match [a-z][a-z0-9_]*, got {raw!r}")
        elif raw == TOKEN_POLICY and where.startswith("policy["):
            self.fail(f"{where}.name", f"{raw!r} is the [token] table's name; choose another")
        elif raw in seen:
            self.fail(f"{where}.name", f"duplicate name {raw!r}")
        else:
            seen.add(raw)
            return raw
        return None

    def patterns(self, where: str, raw: object, *, allow_empty: bool) -> tuple[RoutePattern, ...]:
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            self.fail(where, 'must be a list of "METHOD /path" strings')
            return ()
        if not raw and not allow_empty:
            self.fail(where, 'needs at least one "METHOD /path" pattern')
        patterns: list[RoutePattern] = []
        for item in raw:
            try:
                patterns.append(RoutePattern.parse(item))
            except ValueError as error:
                self.fail(where, str(error))
        return tuple(patterns)

    def tiers(self, at: str, raw: object, policy: str | None) -> tuple[Tier, ...]:
        if not isinstance(raw, list) or not raw:
            self.fail(f"{at}.tiers", "needs at least one tier { name, key, rate, period }")
            return ()
        seen: set[str] = set()
        tiers = [self.tier(at, index, item, seen, policy) for index, item in enumerate(raw)]
        return tuple(tier for tier in tiers if tier is not None)

    def tier(
        self, policy_at: str, index: int, raw: object, seen: set[str], policy: str | None
    ) -> Tier | None:
        if not isinstance(raw, dict):
            self.fail(f"{policy_at}.tiers[{index}]", "must be a table { name, key, rate, period }")
            return None
        before = len(self.problems)
        name = self.name(f"{policy_at}.tiers[{index}]", raw.get("name"), seen)
        at = f"{policy_at}.{name or f'tiers[{index}]'}"
        self.unknown_keys(f"{at}.", raw, _TIER_KEYS)
        kind, field = self.key(at, raw.get("key"), raw.get("field"))
        rate = self.count(f"{at}.rate", raw.get("rate"), required=True)
        burst = self.count(f"{at}.burst", raw.get("burst"), required=False)
        period = self.period(f"{at}.period", raw.get("period"))
        if policy is None or name is None or kind is None or len(self.problems) > before:
            return None
        prefix = f"{_prefix(policy)}{name.upper()}_"
        by_target: dict[str, list[Alias]] = {}
        for alias in _tier_aliases(policy, name):
            by_target.setdefault(alias.target, []).append(alias)
        rate_name = self.chosen(f"{prefix}RATE", by_target.get(f"{prefix}RATE", []))
        rate = self.override(rate_name.name, rate, self.env_count)
        burst_name = self.chosen(f"{prefix}BURST", by_target.get(f"{prefix}BURST", []))
        burst = self.override(burst_name.name, burst, self.env_count)
        if rate_name.period_seconds is not None and self.env.raw(f"{prefix}PERIOD") is None:
            period = rate_name.period_seconds
        seconds = self.override(f"{prefix}PERIOD", period, self.env_period)
        assert rate is not None  # checked above
        assert seconds is not None
        return Tier(name, kind, rate, seconds, burst or rate, field)

    def key(self, at: str, raw: object, field: object) -> tuple[KeyKind | None, str | None]:
        """The key kind and its field (a header name, a JSON body field, or ``None``)."""
        try:
            kind = KeyKind(raw)
        except ValueError:
            got = "is required" if raw is None else f"got {raw!r}"
            self.fail(f"{at}.key", f"{got}; must be one of {_KINDS}")
            return None, None
        if kind is KeyKind.HEADER:
            if isinstance(field, str) and _HEADER.fullmatch(field.lower()):
                return kind, field.lower()
            self.fail(f"{at}.field", f"a header key needs a header name, got {field!r}")
        elif kind in (KeyKind.BODY, KeyKind.WALLET):
            field = "walletAddress" if field is None and kind is KeyKind.WALLET else field
            if isinstance(field, str) and _BODY_FIELD.fullmatch(field):
                return kind, field
            wants = f"a {kind.value} key needs a lowerCamelCase JSON body field"
            self.fail(f"{at}.field", f"{wants}, got {field!r}")
        elif field is None:
            return kind, None
        else:
            self.fail(
                f"{at}.field", f"only header, body and wallet keys take a field, not {kind.value}"
            )
        return None, None

    def count(self, where: str, raw: object, *, required: bool) -> int | None:
        if raw is None:
            if required:
                self.fail(where, "is required (an integer >= 1)")
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
            self.fail(where, f"must be an integer >= 1, got {raw!r}")
            return None
        return raw

    def period(self, where: str, raw: object) -> float | None:
        if raw is None:
            self.fail(where, 'is required (e.g. "1s", "15m", "1h", "1d")')
            return None
        try:
            seconds = parse_duration(raw)
        except ValueError as error:
            self.fail(where, str(error))
            return None
        if seconds <= 0:
            self.fail(where, f'must be a duration > 0 (e.g. "1s", "15m"), got {raw!r}')
            return None
        return seconds

    def env_count(self, name: str, default: int | None) -> int:
        return self.env.integer(name, 0, minimum=1)

    def env_fail(self, name: str, default: str) -> str:
        return self.env.choice(name, default, {"open", "closed"})

    def env_period(self, name: str, default: float | None) -> float:
        value = self.env.string(name, "")
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            raise ConfigError(name, str(error)) from None
        if seconds <= 0:
            raise ConfigError(name, f"must be a duration > 0, got {value!r}")
        return seconds

    def chosen(self, name: str, others: Sequence[Alias]) -> Alias:
        """Which of ``name`` and its aliases is set (``name`` when none is);
        two set to different values is a mistake naming both."""
        named = [Alias(name, name), *others]
        given = [alias for alias in named if self.env.raw(alias.name) is not None]
        if not given:
            return named[0]
        first = given[0]
        for other in given[1:]:
            if self.env.raw(other.name) != self.env.raw(first.name):
                self.problems.append(
                    (
                        other.name,
                        f"conflicts with {first.name} (both set {name}); set only one",
                    )
                )
        return first

    def override(self, name: str, value: T, read: Callable[[str, T], T]) -> T:
        """``value``, or the env variable ``name`` when set, parsed by ``read``."""
        if self.env.raw(name) is None:
            return value
        try:
            return read(name, value)
        except ConfigError as error:
            self.problems.append((error.variable, error.problem))
            return value

    def check_unknown_overrides(self, policies: PolicySet) -> None:
        ours = override_names(policies)
        targets = {alias.name: alias.target for alias in aliases(policies)}
        known = {*ours, *targets}
        prefixes = (*(_prefix(policy.name) for policy in _all(policies)), ALIAS_PREFIX)
        for name in sorted(_env_names(self.env)):
            if name.startswith(prefixes) and name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = ""
                if close:
                    also = f" (an alias of {targets[close[0]]})" if close[0] in targets else ""
                    hint = f"; did you mean {close[0]}{also}?"
                self.problems.append((name, f"is not a rate-limit override{hint}"))
