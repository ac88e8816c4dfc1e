"""HTTP request metrics, labelled by route template (never the raw path).

``http_request_duration_seconds{route,method,status}`` (histogram),
``http_requests_total{route,method,status}`` (counter) and
``http_request_errors_total{route,method,type}`` (4xx ``client_error``, 5xx
``server_error``). ``route`` is the
matched route's path template (``/api/quests/{id}/complete``), or
``unmatched`` when no route matched, so label cardinality stays bounded.
:class:`gateway.middleware.edge.EdgeMiddleware` observes every answer.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import Scope

from gateway.middleware.answer import route_template

_LABELS = ("route", "method", "status")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency at the gateway.",
    _LABELS,
    buckets=_BUCKETS,
)
HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered by the gateway.", _LABELS)
HTTP_REQUEST_ERRORS = Counter(
    "http_request_errors_total",
    "HTTP requests answered with an error, by type: client_error (4xx) or server_error (5xx).",
    ("route", "method", "type"),
)


@functools.cache
def _children(template: str, method: str, status: int) -> tuple[Any, Any, Any | None]:
    """The series of one label set, looked up once (``labels()`` validates and
    locks on every call; the label sets are few and bounded): latency, count,
    and the error count for a 4xx/5xx (a flood of 429s is a hot path too)."""
    labels = (template, method, str(status))
    errors = None
    if status >= 400:
        kind = "server_error" if status >= 500 else "client_error"
        errors = HTTP_REQUEST_ERRORS.labels(template, method, kind)
    return HTTP_REQUEST_SECONDS.labels(*labels), HTTP_REQUESTS.labels(*labels), errors


def observe(scope: Scope, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    method = scope["method"] if scope["method"] in _METHODS else "OTHER"
    latency, count, errors = _children(route_template(scope), method, status)
    latency.observe(seconds)
    count.inc()
    if errors is not None:
        errors.inc()
