"""Refuse request bodies larger than ``MAX_BODY_BYTES`` with 413 ``payload_too_large``.

A declared ``Content-Length`` over the limit is refused before the body is
read; a streamed (chunked) body is counted as it arrives and refused the
moment it passes the limit. A request with a declared length within the
limit (the HTTP server holds the body to it), or with no body at all, passes
through untouched: the hot path pays nothing here.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ApiError, from_api_error, payload_too_large


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            error = (
                payload_too_large(limit)
                if declared.isdigit()
                else ApiError(400, "invalid_header", "Content-Length is not a number")
            )
            await from_api_error(error)(scope, receive, send)
            return
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise payload_too_large(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ApiError as error:
            if started or error.status != 413:
                raise
            await from_api_error(error)(scope, receive, tracking_send)
