"""What request protection counts and says: decisions, idempotency outcomes, refusals.

``ratelimit_decisions_total{policy,tier,outcome}`` (allowed, limited,
shadow_limited, unavailable_open, unavailable_closed; tier is the deciding
one) and ``idempotency_requests_total{outcome}`` (miss, hit, reused,
in_flight, unavailable_open, unavailable_closed). Shadow refusals and
outages are logged once per route (or tier) every few seconds, with the
count held back, so an outage at launch-day traffic does not flood the logs.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from prometheus_client import Counter

from gateway import errors
from gateway.protection.model import Policy
from gateway.protection.store import Verdict, retry_after_header
from runtime.log import Throttle

__all__ = [
    "count_verdict",
    "decision",
    "idempotency_outcome",
    "limits_unavailable",
    "rate_limited",
    "unavailable",
]

log = logging.getLogger(__name__)
LOG_THROTTLE = Throttle(5.0)

RATE_LIMIT_DECISIONS = Counter(
    "ratelimit_decisions_total",
    "Rate-limit decisions by policy and outcome (allowed, limited, shadow_limited, "
    "unavailable_open, unavailable_closed); tier is the deciding one.",
    ["policy", "tier", "outcome"],
)
IDEMPOTENCY_OUTCOMES = Counter(
    "idempotency_requests_total",
    "Requests carrying an Idempotency-Key, by outcome (miss, hit, reused, in_flight, "
    "unavailable_open, unavailable_closed).",
    ["outcome"],
)


@functools.cache
def decision(policy: str, tier: str, outcome: str) -> Any:
    """The counter of one decision (looked up once per label set)."""
    return RATE_LIMIT_DECISIONS.labels(policy=policy, tier=tier, outcome=outcome)


@functools.cache
def idempotency_outcome(outcome: str) -> Any:
    return IDEMPOTENCY_OUTCOMES.labels(outcome=outcome)


def count_verdict(policy: Policy, verdict: Verdict, route: str) -> None:
    """Count a decision; log a shadow refusal (throttled)."""
    if not verdict.tiers:
        return
    if verdict.limited_by is not None:
        outcome = "shadow_limited" if verdict.passed else "limited"
        tier = verdict.limited_by.name
        held = LOG_THROTTLE.allow(("shadow", policy.name, tier)) if verdict.passed else None
        if held is not None:
            log.warning(
                "shadow rate limit exceeded",
                extra={"policy": policy.name, "tier": tier, "route": route, "held": held},
            )
    else:
        outcome, tightest = "allowed", verdict.tightest()
        tier = tightest.tier.name if tightest else ""
    decision(policy.name, tier, outcome).inc()


def rate_limited(policy: Policy, verdict: Verdict, headers: dict[str, str]) -> errors.ApiError:
    """The 429 for a refused verdict, with ``Retry-After`` and the limit headers."""
    tier = verdict.limited_by
    assert tier is not None
    return errors.ApiError(
        429,
        "rate_limited",
        f"too many requests: limit '{tier.name}' of policy '{policy.name}' ({tier.describe()})",
        headers={**headers, "Retry-After": retry_after_header(verdict.retry_after_seconds)},
    )


def unavailable(policy: Policy | None, route: str, error: Exception, *, fail_open: bool) -> None:
    """Count and log (throttled) a decision taken without Redis."""
    outcome = "unavailable_open" if fail_open else "unavailable_closed"
    name = policy.name if policy else ""
    decision(name, "", outcome).inc()
    held = LOG_THROTTLE.allow(("unavailable", route))
    if held is not None:
        log.warning(
            "rate limits/idempotency unavailable, failing %s",
            "open" if fail_open else "closed",
            extra={"route": route, "policy": name, "error": str(error), "held": held},
        )


def limits_unavailable() -> errors.ApiError:
    """The 503 a fail-closed route answers while Redis is down or slow."""
    return errors.ApiError(
        503,
        "limits_unavailable",
        "request protection is unavailable; retry shortly",
        headers={"Retry-After": "1"},
    )
