"""What the observing middleware (metrics, access log, tracing) read of a
request's answer: the matched route's template and the status sent."""

from __future__ import annotations

from starlette.types import Message, Scope, Send

__all__ = ["StatusRecorder", "route_template"]

#: The route label when no route matched (a 404 or 405 of the router).
UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/quests/{id}/complete``), never
    the raw path, so labels and span names stay few."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED


class StatusRecorder:
    """Wraps ``send``; :attr:`status` is the answer's status once it has started
    (500 when the app raised before answering)."""

    def __init__(self, send: Send) -> None:
        self.status = 500
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self._send(message)
