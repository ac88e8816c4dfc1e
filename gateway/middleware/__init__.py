"""Pure ASGI middleware, one concern per module, per-request state kept in ``__call__``."""

from gateway.middleware.access_log import AccessLogMiddleware
from gateway.middleware.body_limit import BodyLimitMiddleware
from gateway.middleware.metrics import MetricsMiddleware
from gateway.middleware.request_id import RequestIdMiddleware
from gateway.middleware.tracing import TracingMiddleware

__all__ = [
    "AccessLogMiddleware",
    "BodyLimitMiddleware",
    "MetricsMiddleware",
    "RequestIdMiddleware",
    "TracingMiddleware",
]
