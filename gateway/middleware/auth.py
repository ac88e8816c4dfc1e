"""Authentication per route: verify the bearer token the route's access needs.

A token the verified-token cache knows is accepted at once; any other is
first charged to the ``token`` rate-limit policy (one Redis round trip, see
:mod:`gateway.protection.tokens`), then verified. The verified
:class:`~gateway.auth.Principal` goes into the scope under
:data:`gateway.auth.PRINCIPAL` for the layers inside (rate limits per user,
idempotency scoped to the caller, the route table's server fields) and into
the log context. A request that fails is answered here, before any of the
route's own limits or service is touched.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors
from gateway.auth import PRINCIPAL, Access, Principal, authorize, bearer_token
from gateway.protection.tokens import TokenGate
from gateway.state import gateway_of_scope
from runtime import context

__all__ = ["AuthMiddleware"]


class AuthMiddleware:
    def __init__(self, app: ASGIApp, access: Access, gate: TokenGate) -> None:
        self.app = app
        self.access = access
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = (
            Headers(scope=scope).get("authorization") if self.access is not Access.PUBLIC else None
        )
        if authorization is None and self.access in (Access.PUBLIC, Access.OPTIONAL):
            scope[PRINCIPAL] = None
            await self.app(scope, receive, send)
            return
        try:
            principal = authorize(await self._principal(scope, authorization), self.access)
        except Exception as error:
            await errors.response_for(error)(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        # Logged, and forwarded to the services as the asserted principal
        # (they believe it only from the gateway's certificate).
        user_token = context.user_id.set(principal.user_id)
        role_token = context.role.set(principal.role)
        try:
            await self.app(scope, receive, send)
        finally:
            context.role.reset(role_token)
            context.user_id.reset(user_token)

    async def _principal(self, scope: Scope, authorization: str | None) -> Principal:
        verifier = gateway_of_scope(scope).verifier
        token = bearer_token(authorization)
        cached = verifier.cached(token)
        if cached is not None:
            return cached
        await self.gate.admit(scope)
        return await verifier.verify(token)
