"""One JSON access line per request, on the ``gateway.access`` logger.

Each line (see :mod:`runtime.log`) carries the request id, ``method``,
``route`` (the route template, ``unmatched`` when none matched), ``status``,
``duration_ms`` and, where known, ``userId`` (the verified caller) and
``idempotencyKey`` (as request protection parsed it) — the names of the
mining observability guide, so its log queries work unchanged — and, for a
queued click, ``queueDepth``: the click stream's length once it was queued.

:class:`gateway.middleware.edge.EdgeMiddleware` writes it once the answer is
sent. ``LOG_LEVEL=WARNING`` turns the lines off (and their cost with them).
"""

from __future__ import annotations

import logging

from starlette.types import Scope

from gateway.auth import PRINCIPAL, Principal
from gateway.middleware.answer import route_template
from gateway.protection.middleware import KEY

__all__ = ["QUEUE_DEPTH", "enabled", "write"]

#: Scope key where the click route leaves the queue depth its answer carried.
QUEUE_DEPTH = "minequest.queue_depth"

log = logging.getLogger("gateway.access")


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def write(scope: Scope, status: int, seconds: float) -> None:
    """The access line of one answered request."""
    fields: dict[str, object] = {
        "method": scope["method"],
        "route": route_template(scope),
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
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
