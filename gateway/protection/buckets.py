"""From a request to the buckets it draws on, and from a verdict to headers.

Each tier of the route's policy names a key kind; the request supplies the
value: the caller's user id, the client IP, the wallet address in the body, a
header or a body field. A tier whose value the request does not carry (no
wallet in the body, say) is skipped: the service refuses such a request
anyway. ``user`` on an anonymous request falls back to the client. A client
is counted by :func:`runtime.clients.client_key` (an IPv6 client
by its /64).
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Mapping

from gateway.protection.model import KeyKind, Policy, Tier
from gateway.protection.store import Charge, TierState, Verdict
from gateway.protojson import RequestBody

__all__ = [
    "RequestFacts",
    "caller_id",
    "charges_for",
    "header_map",
    "needs_body",
    "rate_limit_headers",
]

_MAX_KEY_VALUE = 64


class RequestFacts:
    """What the key kinds read from one request; ``client`` is the client key."""

    __slots__ = ("body", "client", "headers", "user_id")

    def __init__(
        self,
        *,
        user_id: str | None,
        client: str,
        headers: Mapping[str, str],
        body: RequestBody | None = None,
    ) -> None:
        self.user_id = user_id
        self.client = client
        self.headers = headers
        self.body = body

    def body_field(self, name: str) -> str | None:
        data = self.body.json_or_none() if self.body is not None else None
        value = data.get(name) if isinstance(data, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
        return None


def caller_id(user_id: str | None, client: str) -> str:
    """Who is calling: the user, or the client key when anonymous. Per-user
    buckets and idempotency records are both scoped by it."""
    return f"u:{user_id}" if user_id else f"ip:{client}"


def needs_body(policy: Policy | None) -> bool:
    return policy is not None and any(
        tier.key in (KeyKind.WALLET, KeyKind.BODY) for tier in policy.tiers
    )


def _value(tier: Tier, facts: RequestFacts) -> str | None:
    kind = tier.key
    if kind is KeyKind.GLOBAL:
        return "*"
    if kind is KeyKind.IP:
        return facts.client
    if kind is KeyKind.USER:
        return caller_id(facts.user_id, facts.client)
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


def header_map(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as the ``headers`` of an :class:`~gateway.errors.ApiError`."""
    return {name.decode(): value.decode() for name, value in headers}
