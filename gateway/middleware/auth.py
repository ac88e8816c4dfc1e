"""Authentication per route: verify the bearer token the route's access needs.

The verified :class:`~gateway.auth.Principal` goes into the scope under
:data:`PRINCIPAL` for the layers inside (rate limits per user, idempotency
scoped to the caller, the handler) and into the log context. A request that
fails is answered here, before any rate limit or service is touched.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors
from gateway.auth import Access, Principal, authenticate
from gateway.state import gateway_of_scope
from runtime import context

__all__ = ["PRINCIPAL", "AuthMiddleware", "principal_of"]

PRINCIPAL = "minequest.principal"


def principal_of(scope: Scope) -> Principal | None:
    principal = scope.get(PRINCIPAL)
    return principal if isinstance(principal, Principal) else None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.access is Access.PUBLIC:
            scope[PRINCIPAL] = None
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        try:
            principal = await authenticate(
                gateway_of_scope(scope).verifier, self.access, authorization
            )
        except Exception as error:
            await errors.response_for(error)(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        token = context.user_id.set(principal.user_id if principal else None)
        try:
            await self.app(scope, receive, send)
        finally:
            context.user_id.reset(token)
