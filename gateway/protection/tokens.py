"""The ``token`` policy: charged before a bearer token the gateway cannot answer
from its verified-token cache is checked.

An Ed25519 verification costs ~130 µs of CPU, so a flood of forged tokens
would otherwise cost CPU and no bucket. Authentication asks :func:`admit`
first: one Redis round trip on the client's ``token`` buckets (per IP by
default), refused with 429 ``rate_limited`` once they are empty. A client
with a good token is charged about once per token lifetime per gateway
process (the cache answers the rest), so the hot path pays nothing.

Redis down or slow: the policy's ``fail`` decides (open by default: the
route's own policy runs next and fails as it is set to).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Scope

from gateway.protection import metrics
from gateway.protection.buckets import (
    RequestFacts,
    charges_for,
    header_map,
    rate_limit_headers,
)
from gateway.protection.clientip import TrustedProxies
from gateway.protection.model import Policy
from gateway.protection.store import GuardUnavailable
from gateway.state import gateway_of_scope
from runtime.clients import client_key

__all__ = ["TokenGate"]

ROUTE = "(token verification)"


class TokenGate:
    def __init__(self, policy: Policy | None, trusted_proxies: TrustedProxies) -> None:
        self.policy = policy
        self.trusted = trusted_proxies

    async def admit(self, scope: Scope) -> None:
        """Return when a token may be verified; raise 429 (or 503) otherwise."""
        policy = self.policy
        if policy is None:
            return
        facts = RequestFacts(
            user_id=None,
            client=client_key(self.trusted.client_ip(scope)),
            headers=Headers(scope=scope),
        )
        guard = gateway_of_scope(scope).guard
        try:
            verdict = await guard.check(
                charges_for(policy, facts), shadow=policy.shadow, operation="token"
            )
        except GuardUnavailable as outage:
            metrics.unavailable(policy, ROUTE, outage, fail_open=policy.fail_open)
            if policy.fail_open:
                return
            raise metrics.limits_unavailable() from None
        metrics.count_verdict(policy, verdict, ROUTE)
        if not verdict.passed:
            headers = header_map(rate_limit_headers(policy, verdict))
            raise metrics.rate_limited(policy, verdict, headers)
