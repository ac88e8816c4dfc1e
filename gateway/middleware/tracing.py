"""HTTP server spans: OpenTelemetry's ASGI middleware, spans named by route.

Registered by :func:`gateway.app.create_app` only when tracing is on
(``OTEL_EXPORTER_OTLP_ENDPOINT``). Each request gets a SERVER span, a child of
the caller's ``traceparent`` when it sends one; the gRPC, Redis and MongoDB
calls made for the request are its children. The span is named
``METHOD /route/{template}`` once the route is known (``unmatched`` when none
matched), never by the raw path, so names stay few.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.middleware.answer import route_template

__all__ = ["TracingMiddleware"]


class _NameByRoute:
    """Inside the server span: when the answer starts (the route is matched by
    then; the span ends with the last body message), name the span by the
    matched route's template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()

        async def send_naming(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = route_template(scope)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
            await send(message)

        await self.app(scope, receive, send_naming)


class TracingMiddleware:
    def __init__(self, app: ASGIApp, tracer_provider: Any = None) -> None:
        self.app = OpenTelemetryMiddleware(
            _NameByRoute(app),
            tracer_provider=tracer_provider,
            # the per-message receive/send spans say nothing an operator needs
            exclude_spans=["receive", "send"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
