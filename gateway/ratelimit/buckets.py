"""From a request to the buckets it draws on, and from a verdict to headers.

Each tier of the route's policy names a key kind; the request supplies the
value: the caller's user id, the client IP, the wallet address in the body, a
header or a body field. A tier whose value the request does not carry (no
wallet in the body, say) is skipped: the service refuses such a request
anyway. ``user`` on an anonymous request falls back to the client IP.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from gateway.guard import Charge, TierState, Verdict
from gateway.ratelimit.policy import KeyKind, Policy, Tier

__all__ = ["RequestFacts", "caller_id", "charges_for", "needs_body", "rate_limit_headers"]

_MAX_KEY_VALUE = 64


class RequestFacts:
    """What the key kinds read from one request."""

    __slots__ = ("_json", "body", "headers", "ip", "user_id")

    def __init__(
        self, *, user_id: str | None, ip: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        self.user_id = user_id
        self.ip = ip
        self.headers = headers
        self.body = body
        self._json: Any = None

    def body_field(self, name: str) -> str | None:
        if self._json is None:
            try:
                self._json = json.loads(self.body) if self.body else {}
            except (ValueError, UnicodeDecodeError):
                self._json = {}
        value = self._json.get(name) if isinstance(self._json, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
        return None


def caller_id(user_id: str | None, ip: str) -> str:
    """Who is calling: the user, or the client IP when anonymous. Per-user
    buckets and idempotency records are both scoped by it."""
    return f"u:{user_id}" if user_id else f"ip:{ip}"


def needs_body(policy: Policy | None) -> bool:
    return policy is not None and any(
        tier.key in (KeyKind.WALLET, KeyKind.BODY) for tier in policy.tiers
    )


def _value(tier: Tier, facts: RequestFacts) -> str | None:
    kind = tier.key
    if kind is KeyKind.GLOBAL:
        return "*"
    if kind is KeyKind.IP:
        return facts.ip
    if kind is KeyKind.USER:
        return caller_id(facts.user_id, facts.ip)
    if kind is KeyKind.WALLET:
        wallet = facts.body_field(tier.field or "walletAddress")
        return wallet.strip().lower() if wallet else None
    if kind is KeyKind.HEADER:
        return facts.headers.get(tier.field or "")
    return facts.body_field(tier.field or "")


def charges_for(policy: Policy, facts: RequestFacts) -> list[Charge]:
    charges = []
    for tier in policy.tiers:
        value = _value(tier, facts)
        if value is None or value == "":
            continue
        if len(value) > _MAX_KEY_VALUE:
            value = hashlib.blake2b(value.encode(), digest_size=16).hexdigest()
        charges.append(Charge(tier, f"mq:rl:{policy.name}:{tier.name}:{value}"))
    return charges


@functools.cache
def _policy_header(tiers: tuple[Tier, ...]) -> bytes:
    """``RateLimit-Policy`` for the tiers a request was charged (a few sets per policy)."""
    return ", ".join(tier.describe() for tier in tiers).encode()


def rate_limit_headers(policy: Policy, verdict: Verdict) -> list[tuple[bytes, bytes]]:
    """``RateLimit-*`` of the tightest tier, the ``X-RateLimit-*`` twins older
    clients read (their reset is a Unix time, as express-rate-limit sent it),
    and ``RateLimit-Policy`` listing every tier."""
    state: TierState | None = verdict.tightest()
    if state is None:
        return []
    reset = max(0, math.ceil(state.reset_seconds))
    limit, remaining = str(state.tier.burst).encode(), str(state.remaining).encode()
    described = _policy_header(tuple(tier_state.tier for tier_state in verdict.tiers))
    return [
        (b"ratelimit-limit", limit),
        (b"ratelimit-remaining", remaining),
        (b"ratelimit-reset", str(reset).encode()),
        (b"ratelimit-policy", described),
        (b"x-ratelimit-limit", limit),
        (b"x-ratelimit-remaining", remaining),
        (b"x-ratelimit-reset", str(math.ceil(time.time()) + reset).encode()),
    ]
