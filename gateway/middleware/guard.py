"""Rate limits and idempotency for one route, in one Redis round trip before it.

Per request, inside authentication:

1. ``Idempotency-Key``: required on rows marked so (400
   ``idempotency_key_required`` without it), honoured on any other
   POST/PUT/PATCH/DELETE that carries one; parsed (400 when malformed).
   Rows whose service deduplicates itself (``idempotency_in_service``, the
   click pipeline) stop here: the key is published, no record is kept.
2. One script call (:meth:`gateway.guard.Guard.check`) charges every tier of
   the route's policy and claims the idempotency record.
3. Refused by a tier → 429 ``rate_limited`` with ``Retry-After`` (shadow
   policies only count and log). Record finished with the same fingerprint →
   the stored answer with ``X-Idempotency: HIT``; another fingerprint → 422
   ``idempotency_key_reused``; still in flight → 409
   ``idempotency_key_in_flight`` with ``Retry-After``.
4. Claimed → the route runs (``X-Idempotency: MISS``); its answer is stored
   (2xx/4xx but 408/409/429) or the claim released (5xx) before the answer is
   sent, so a retry right after it sees the record.

Redis down or slower than ``GUARD_REDIS_TIMEOUT_MS``: a fail-open policy lets
the request through unprotected, a fail-closed one answers 503
``limits_unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from prometheus_client import Counter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors, idempotency
from gateway.clientip import TrustedProxies
from gateway.guard import Claim, ClaimOutcome, GuardUnavailable, Verdict, retry_after_header
from gateway.idempotency import StoredAnswer
from gateway.middleware.auth import principal_of
from gateway.ratelimit.buckets import (
    RequestFacts,
    caller_id,
    charges_for,
    needs_body,
    rate_limit_headers,
)
from gateway.ratelimit.policy import Policy
from gateway.state import gateway_of_scope
from runtime import context
from runtime.log import Throttle

__all__ = ["GuardMiddleware", "guards"]

log = logging.getLogger(__name__)
#: One warning per route (or policy tier) every few seconds, with the count held
#: back: an outage at launch-day traffic must not flood the logs.
_LOG_THROTTLE = Throttle(5.0)

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
def _decision(policy: str, tier: str, outcome: str) -> Any:
    return RATE_LIMIT_DECISIONS.labels(policy=policy, tier=tier, outcome=outcome)


@functools.cache
def _idempotency(outcome: str) -> Any:
    return IDEMPOTENCY_OUTCOMES.labels(outcome=outcome)


_OUTCOME = {
    ClaimOutcome.CLAIMED: "miss",
    ClaimOutcome.FINISHED: "hit",
    ClaimOutcome.MISMATCH: "reused",
    ClaimOutcome.IN_FLIGHT: "in_flight",
}


def honours_key(method: str, idempotency_required: bool) -> bool:
    """Rows that require an Idempotency-Key, and every POST/PUT/PATCH/DELETE."""
    return idempotency_required or method in idempotency.MUTATING_METHODS


def guards(method: str, policy: Policy | None, idempotency_required: bool) -> bool:
    """Whether a row needs this layer at all: a rate-limit policy or a key to honour."""
    return policy is not None or honours_key(method, idempotency_required)


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        method: str,
        route: str,
        policy: Policy | None,
        idempotency_required: bool,
        trusted_proxies: TrustedProxies,
        idempotency_in_service: bool = False,
    ) -> None:
        self.app = app
        self.method = method
        self.route = route
        self.policy = policy
        self.required = idempotency_required
        self.honours_key = honours_key(method, idempotency_required)
        #: The key is checked and published, but the service keeps the record.
        self.keeps_record = not idempotency_in_service
        self.needs_body = needs_body(policy)
        self.trusted = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_headers = Headers(scope=scope)
        raw_key = request_headers.get(idempotency.HEADER) if self.honours_key else None
        if raw_key is None and self.required:
            await _refuse(
                scope,
                receive,
                send,
                errors.ApiError(
                    400,
                    "idempotency_key_required",
                    "this route needs an Idempotency-Key header (a unique value per operation)",
                    field="Idempotency-Key",
                ),
            )
            return
        if raw_key is None and self.policy is None:
            await self.app(scope, receive, send)
            return
        try:
            key = idempotency.parse_key(raw_key) if raw_key is not None else None
        except errors.ApiError as error:
            await _refuse(scope, receive, send, error)
            return
        # Published for the logs and the route (a withdrawal passes it on), on
        # every path below, failing open included.
        context_token = context.idempotency_key.set(key)
        try:
            await self._guard(scope, receive, send, key=key, request_headers=request_headers)
        finally:
            context.idempotency_key.reset(context_token)

    async def _guard(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        key: str | None,
        request_headers: Headers,
    ) -> None:
        record_key = key if self.keeps_record else None
        body = b""
        if record_key is not None or self.needs_body:
            body, receive = await _buffer(receive)
        principal = principal_of(scope)
        user_id = principal.user_id if principal else None
        ip = self.trusted.client_ip(scope)
        claim = None
        if record_key is not None:
            caller = caller_id(user_id, ip)
            claim = Claim(
                idempotency.record_key(caller, self.method, self.route, record_key),
                idempotency.fingerprint(self.method, self.route, body),
                idempotency.claim_token(),
            )
        charges = []
        if self.policy is not None:
            facts = RequestFacts(
                user_id=user_id,
                ip=ip,
                headers=request_headers,
                body=body,
            )
            charges = charges_for(self.policy, facts)

        gateway = gateway_of_scope(scope)
        shadow = self.policy.shadow if self.policy else False
        try:
            verdict = await gateway.guard.check(charges, shadow=shadow, claim=claim)
        except GuardUnavailable as error:
            await self._unavailable(scope, receive, send, error, claim is not None)
            return

        limit_headers = rate_limit_headers(self.policy, verdict) if self.policy else []
        self._count(verdict)
        if not verdict.passed:
            tier = verdict.limited_by
            assert tier is not None
            assert self.policy is not None
            headers = _as_map(limit_headers)
            headers["Retry-After"] = retry_after_header(verdict.retry_after_seconds)
            await _refuse(
                scope,
                receive,
                send,
                errors.ApiError(
                    429,
                    "rate_limited",
                    f"too many requests: limit '{tier.name}' of policy '{self.policy.name}' "
                    f"({tier.describe()})",
                    headers=headers,
                ),
            )
            return
        if claim is None:
            await self.app(scope, receive, _adding(send, limit_headers))
            return

        await self._idempotent(
            scope, receive, send, verdict=verdict, claim=claim, limit_headers=limit_headers
        )

    async def _idempotent(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        verdict: Verdict,
        claim: Claim,
        limit_headers: list[tuple[bytes, bytes]],
    ) -> None:
        _idempotency(_OUTCOME[verdict.claim]).inc()
        if verdict.claim is ClaimOutcome.FINISHED:
            assert verdict.answer is not None
            await _replay(verdict.answer, limit_headers, send)
            return
        if verdict.claim is ClaimOutcome.MISMATCH:
            error = errors.ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key",
                headers=_as_map(limit_headers),
            )
            await _refuse(scope, receive, send, error)
            return
        if verdict.claim is ClaimOutcome.IN_FLIGHT:
            headers = _as_map(limit_headers)
            headers["Retry-After"] = retry_after_header(min(verdict.in_flight_seconds, 1.0))
            error = errors.ApiError(
                409,
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still being processed; retry shortly",
                headers=headers,
            )
            await _refuse(scope, receive, send, error)
            return

        extra = [*limit_headers, (b"x-idempotency", b"MISS")]
        start: Message | None = None
        chunks: list[bytes] = []
        finished = False

        async def capture(message: Message) -> None:
            nonlocal start, finished
            if message["type"] == "http.response.start":
                start = {**message, "headers": [*message.get("headers", ()), *extra]}
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status = int(start["status"])
            body = b"".join(chunks)
            answer = (
                StoredAnswer.capture(status, start["headers"], body)
                if idempotency.is_kept(status)
                else None
            )
            await gateway_of_scope(scope).guard.finish(claim, answer)
            finished = True
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        try:
            await self.app(scope, receive, capture)
        finally:
            if not finished:
                await gateway_of_scope(scope).guard.finish(claim, None)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, error: GuardUnavailable, keyed: bool
    ) -> None:
        fail_open = self.policy.fail_open if self.policy else not self.required
        outcome = "unavailable_open" if fail_open else "unavailable_closed"
        policy = self.policy.name if self.policy else ""
        _decision(policy, "", outcome).inc()
        if keyed:
            _idempotency(outcome).inc()
        held = _LOG_THROTTLE.allow(("unavailable", self.route))
        if held is not None:
            log.warning(
                "rate limits/idempotency unavailable, failing %s",
                "open" if fail_open else "closed",
                extra={"route": self.route, "policy": policy, "error": str(error), "held": held},
            )
        if fail_open:
            await self.app(scope, receive, send)
            return
        await _refuse(
            scope,
            receive,
            send,
            errors.ApiError(
                503,
                "limits_unavailable",
                "request protection is unavailable; retry shortly",
                headers={"Retry-After": "1"},
            ),
        )

    def _count(self, verdict: Verdict) -> None:
        if self.policy is None or not verdict.tiers:
            return
        if verdict.limited_by is not None:
            outcome = "shadow_limited" if verdict.passed else "limited"
            tier = verdict.limited_by.name
            held = (
                _LOG_THROTTLE.allow(("shadow", self.policy.name, tier)) if verdict.passed else None
            )
            if held is not None:
                log.warning(
                    "shadow rate limit exceeded",
                    extra={
                        "policy": self.policy.name,
                        "tier": tier,
                        "route": self.route,
                        "held": held,
                    },
                )
        else:
            outcome, tightest = "allowed", verdict.tightest()
            tier = tightest.tier.name if tightest else ""
        _decision(self.policy.name, tier, outcome).inc()


def _as_map(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in headers}


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (the body-limit middleware bounds it) and hand the
    route a ``receive`` that replays it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _adding(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    if not headers:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *headers]}
        await send(message)

    return sending


async def _replay(
    answer: StoredAnswer, limit_headers: list[tuple[bytes, bytes]], send: Send
) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    headers += [
        (b"content-length", str(len(answer.body)).encode()),
        *limit_headers,
        (b"x-idempotency", b"HIT"),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})


async def _refuse(scope: Scope, receive: Receive, send: Send, error: errors.ApiError) -> None:
    await errors.from_api_error(error)(scope, receive, send)
