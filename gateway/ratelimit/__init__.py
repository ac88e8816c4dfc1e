"""Rate-limit policies declared as data (``gateway/ratelimits.toml``), validated at load."""

from gateway.ratelimit.policy import (
    KeyKind,
    Policy,
    PolicyError,
    PolicySet,
    RoutePattern,
    Tier,
    load_policies,
    override_names,
)

__all__ = [
    "KeyKind",
    "Policy",
    "PolicyError",
    "PolicySet",
    "RoutePattern",
    "Tier",
    "load_policies",
    "override_names",
]
