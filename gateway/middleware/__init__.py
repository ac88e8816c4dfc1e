"""Pure ASGI middleware, per-request state kept in ``__call__``: the edge
(request id, metrics, access line: one layer), the body limit and tracing."""

from gateway.middleware.body_limit import BodyLimitMiddleware
from gateway.middleware.edge import EdgeMiddleware
from gateway.middleware.tracing import TracingMiddleware

__all__ = ["BodyLimitMiddleware", "EdgeMiddleware", "TracingMiddleware"]
