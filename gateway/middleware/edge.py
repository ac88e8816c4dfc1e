"""The gateway's outer layer: the request id, the HTTP metrics and the access line.

One ASGI layer with one wrapped ``send`` does what three did (every layer is
a coroutine frame and a ``send`` wrapper per message, on every request):

1. the request id (:mod:`gateway.middleware.request_id`) is bound to
   :data:`runtime.context.request_id` for the whole request, kept in the
   request state and echoed in ``X-Request-ID``;
2. the status is read off the answer as it starts (500 when the app raised
   before answering);
3. once the request is done, it is counted (:mod:`gateway.middleware.metrics`)
   and its access line written (:mod:`gateway.middleware.access_log`), with
   the request id still bound.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.middleware import access_log, metrics
from gateway.middleware.request_id import RAW_HEADER, request_id_of
from runtime import context

__all__ = ["EdgeMiddleware"]


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (RAW_HEADER, request_id.encode("latin-1"))
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = message.setdefault("headers", [])
                if not any(name.lower() == RAW_HEADER for name, _ in headers):
                    message["headers"] = [*headers, id_header]
            await send(message)

        token = context.request_id.set(request_id)
        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - started
            metrics.observe(scope, status, seconds)
            if access_log.enabled():
                access_log.write(scope, status, seconds)
            context.request_id.reset(token)
