"""Rate limits and idempotency for one route, in one Redis round trip before it.

Per request, inside authentication:

1. ``Idempotency-Key`` (see :class:`KeyMode`): required on rows marked so
   (400 ``idempotency_key_required`` without it), honoured on any other
   POST/PUT/PATCH/DELETE that carries one, and ignored on routes that issue
   credentials (their answers are never stored); parsed by the one rule in
   :mod:`runtime.idempotency` (400 when malformed) and published in the scope
   (:data:`KEY`) for the route table. Rows whose service deduplicates itself
   (the click pipeline) keep no record here.
2. One script call (:meth:`gateway.protection.store.Guard.check`) charges every
   tier of the route's policy and claims the idempotency record.
3. Refused by a tier → 429 ``rate_limited`` with ``Retry-After`` (shadow
   policies only count and log). Record finished with the same fingerprint →
   the stored answer with ``X-Idempotency: HIT``; another fingerprint → 422
   ``idempotency_key_reused``; still in flight → 409
   ``idempotency_key_in_flight`` with ``Retry-After``.
4. Claimed → the route runs (``X-Idempotency: MISS``); its answer is stored
   (see :func:`gateway.protection.idempotency.is_kept`) or the claim released
   before the answer is sent, so a retry right after it sees the record.

Redis down or slower than ``GUARD_REDIS_TIMEOUT_MS``: a fail-open policy lets
the request through unprotected, a fail-closed one answers 503
``limits_unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

import enum

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors
from gateway.auth import principal_of
from gateway.protection import idempotency, metrics
from gateway.protection.buckets import (
    RequestFacts,
    caller_id,
    charges_for,
    header_map,
    needs_body,
    rate_limit_headers,
)
from gateway.protection.clientip import TrustedProxies
from gateway.protection.idempotency import StoredAnswer
from gateway.protection.model import Policy
from gateway.protection.store import (
    Claim,
    ClaimOutcome,
    GuardUnavailable,
    Verdict,
    retry_after_header,
)
from gateway.protojson import RequestBody
from gateway.state import gateway_of_scope
from runtime import context
from runtime.clients import client_key
from runtime.errors import DomainError
from runtime.idempotency import check_key, from_header

__all__ = ["BODY", "KEY", "KeyMode", "ProtectionMiddleware", "guards"]

#: Scope keys this layer fills for the route table: the parsed Idempotency-Key
#: (or None) and the buffered :class:`~gateway.protojson.RequestBody`.
KEY = "minequest.idempotency_key"
BODY = "minequest.body"

_OUTCOME = {
    ClaimOutcome.CLAIMED: "miss",
    ClaimOutcome.FINISHED: "hit",
    ClaimOutcome.MISMATCH: "reused",
    ClaimOutcome.IN_FLIGHT: "in_flight",
}


class KeyMode(enum.Enum):
    """What a route does with an ``Idempotency-Key``."""

    #: Not read (GET, and routes that issue credentials: a refresh must reach
    #: the auth service every time, and tokens are never stored in Redis).
    IGNORED = "ignored"
    #: Deduplicated when sent (every other POST/PUT/PATCH/DELETE).
    HONOURED = "honoured"
    #: Required (400 without it) and deduplicated here.
    REQUIRED = "required"
    #: Required, checked and passed on; the service keeps the record itself,
    #: atomically with its write (the click pipeline).
    IN_SERVICE = "in_service"

    @classmethod
    def of(cls, method: str, *, required: bool, in_service: bool, credentials: bool) -> KeyMode:
        if credentials:
            return cls.IGNORED
        if in_service:
            return cls.IN_SERVICE
        if required:
            return cls.REQUIRED
        return cls.HONOURED if method in idempotency.MUTATING_METHODS else cls.IGNORED


def guards(policy: Policy | None, mode: KeyMode) -> bool:
    """Whether a row needs this layer at all: a rate-limit policy or a key to read."""
    return policy is not None or mode is not KeyMode.IGNORED


class ProtectionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        route: str,
        policy: Policy | None,
        mode: KeyMode,
        trusted_proxies: TrustedProxies,
    ) -> None:
        self.app = app
        self.route = route
        self.policy = policy
        self.mode = mode
        self.required = mode in (KeyMode.REQUIRED, KeyMode.IN_SERVICE)
        self.keeps_record = mode in (KeyMode.REQUIRED, KeyMode.HONOURED)
        self.needs_body = needs_body(policy)
        self.trusted = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_headers = Headers(scope=scope)
        raw_key = (
            request_headers.get(idempotency.HEADER) if self.mode is not KeyMode.IGNORED else None
        )
        try:
            if raw_key is not None:
                key: str | None = from_header(raw_key)
            elif self.required:
                key = check_key("")  # raises: 400 idempotency_key_required
            else:
                key = None
        except DomainError as error:
            await _refuse(scope, receive, send, errors.api_error_of(error))
            return
        scope[KEY] = key
        if key is None and self.policy is None:
            await self.app(scope, receive, send)
            return
        # Published for the logs on every path below, failing open included.
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
        body: RequestBody | None = None
        if record_key is not None or self.needs_body:
            raw, receive = await _buffer(receive)
            body = scope[BODY] = RequestBody(raw)
        principal = principal_of(scope)
        user_id = principal.user_id if principal else None
        client = client_key(self.trusted.client_ip(scope))
        claim = None
        if record_key is not None:
            assert body is not None
            caller = caller_id(user_id, client)
            path, query = scope["path"], scope.get("query_string", b"")
            method = scope["method"]
            claim = Claim(
                idempotency.record_key(caller, method, path, record_key),
                idempotency.fingerprint(method, path, query, body),
                idempotency.claim_token(),
            )
        charges = []
        if self.policy is not None:
            facts = RequestFacts(user_id=user_id, client=client, headers=request_headers, body=body)
            charges = charges_for(self.policy, facts)

        gateway = gateway_of_scope(scope)
        shadow = self.policy.shadow if self.policy else False
        try:
            verdict = await gateway.guard.check(charges, shadow=shadow, claim=claim)
        except GuardUnavailable as outage:
            await self._unavailable(scope, receive, send, outage, claim is not None)
            return

        limit_headers = rate_limit_headers(self.policy, verdict) if self.policy else []
        if self.policy is not None:
            metrics.count_verdict(self.policy, verdict, self.route)
            if not verdict.passed:
                refusal = metrics.rate_limited(self.policy, verdict, header_map(limit_headers))
                await _refuse(scope, receive, send, refusal)
                return
        if claim is None:
            await self.app(scope, receive, _adding(send, limit_headers))
            return

        await self._idempotent(
            scope,
            receive,
            send,
            verdict=verdict,
            claim=claim,
            limit_headers=limit_headers,
            anonymous=user_id is None,
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
        anonymous: bool,
    ) -> None:
        metrics.idempotency_outcome(_OUTCOME[verdict.claim]).inc()
        if verdict.claim is ClaimOutcome.FINISHED:
            assert verdict.answer is not None
            await _replay(verdict.answer, limit_headers, send)
            return
        if verdict.claim is ClaimOutcome.MISMATCH:
            error = errors.ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key",
                headers=header_map(limit_headers),
            )
            await _refuse(scope, receive, send, error)
            return
        if verdict.claim is ClaimOutcome.IN_FLIGHT:
            headers = header_map(limit_headers)
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
                if idempotency.is_kept(status, anonymous=anonymous)
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
        metrics.unavailable(self.policy, self.route, error, fail_open=fail_open)
        if keyed:
            metrics.idempotency_outcome(
                "unavailable_open" if fail_open else "unavailable_closed"
            ).inc()
        if fail_open:
            await self.app(scope, receive, send)
            return
        await _refuse(scope, receive, send, metrics.limits_unavailable())


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
