"""One JSON access line per request, on the ``gateway.access`` logger.

Each line (see :mod:`runtime.log`) carries the request id, ``method``,
``route`` (the route template, ``unmatched`` when none matched), ``status``,
``duration_ms`` and, where known, ``userId`` (the verified caller) and
``idempotencyKey`` (as request protection parsed it) — the names of the
mining observability guide, so its log queries work unchanged — and, for a
queued click, ``queueDepth``: the click stream's length once it was queued.

``LOG_LEVEL=WARNING`` turns the lines off (and their cost with them).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth import PRINCIPAL, Principal
from gateway.middleware.answer import StatusRecorder, route_template
from gateway.protection.middleware import KEY

__all__ = ["QUEUE_DEPTH", "AccessLogMiddleware"]

#: Scope key where the click route leaves the queue depth its answer carried.
QUEUE_DEPTH = "minequest.queue_depth"

log = logging.getLogger("gateway.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = StatusRecorder(send)
        try:
            await self.app(scope, receive, answer)
        finally:
            fields: dict[str, object] = {
                "method": scope["method"],
                "route": route_template(scope),
                "status": answer.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            principal = scope.get(PRINCIPAL)
            if isinstance(principal, Principal):
                fields["userId"] = principal.user_id
            depth = scope.get(QUEUE_DEPTH)
            if depth:
                fields["queueDepth"] = depth
            key = scope.get(KEY)
            if isinstance(key, str):
                fields["idempotencyKey"] = key
            log.info("request", extra=fields)
