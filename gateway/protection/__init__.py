"""Request protection: rate limits and idempotency, in one package.

    model.py        the policy types (Policy, Tier, KeyKind, RoutePattern, PolicySet)
    policy.py       load gateway/ratelimits.toml + env overrides, every mistake listed
    durations.py    "1s", "15m", "1d"
    clientip.py     who the client is (TRUSTED_PROXIES only; IPv6 per /64)
    buckets.py      a request -> the buckets it draws on; a verdict -> RateLimit-* headers
    idempotency.py  fingerprints, record keys, which answers are kept, their encoding
    store.py        the Redis side: two Lua scripts (lua/), one round trip each
    middleware.py   the per-route ASGI layer: limits, then the idempotency record
    tokens.py       the ``token`` policy, charged before a bearer token is verified
    metrics.py      decisions and outcomes counted, refusals worded

The route table (:mod:`gateway.routing`) wraps each row in
:class:`~gateway.protection.middleware.ProtectionMiddleware` when the row has
a policy or reads an ``Idempotency-Key``; the key itself follows the one rule
in :mod:`runtime.idempotency`, which the mining and wallet services apply too.
"""
