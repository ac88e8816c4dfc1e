"""Per-request context carried across logs, gRPC metadata and stream entries."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
idempotency_key: ContextVar[str | None] = ContextVar("idempotency_key", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> bool:
    """Accept a caller's id if it is short, visible ASCII (safe to log and echo)."""
    return (
        bool(value) and len(value or "") <= 128 and all(33 <= ord(ch) <= 126 for ch in value or "")
    )
