"""Give every request an id: the caller's ``X-Request-ID`` when valid, else a new one.

The id is bound to :data:`runtime.context.request_id` (logs and outgoing gRPC
metadata pick it up), kept in the request state for handlers that run after
the context is gone, and echoed in the response's ``X-Request-ID`` header.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime import context

HEADER = "X-Request-ID"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER)
        request_id = given if given and context.valid_request_id(given) else None
        request_id = request_id or context.new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if HEADER not in headers:
                    headers.append(HEADER, request_id)
            await send(message)

        token = context.request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            context.request_id.reset(token)
