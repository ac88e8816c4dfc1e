"""What the observing middleware (edge, tracing) read of a request's answer:
the matched route's template."""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["route_template"]

#: The route label when no route matched (a 404 or 405 of the router).
UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/quests/{id}/complete``), never
    the raw path, so labels and span names stay few."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED
