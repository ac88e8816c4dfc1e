"""Per-request context carried across logs, gRPC metadata and stream entries.

``user_id`` and ``role`` are the end user the gateway authenticated. The
gateway's auth middleware sets them; every gRPC call made while they are set
carries them as ``x-minequest-user-id`` / ``x-minequest-role`` metadata, and
a server binds them again for its handler when the caller may assert them
(``runtime.access``). ``caller`` is the verified identity of the process
that called this one (None without mutual TLS).
"""

from __future__ import annotations

import random
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
USER_ID_HEADER = "x-minequest-user-id"
ROLE_HEADER = "x-minequest-role"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
role: ContextVar[str | None] = ContextVar("role", default=None)
caller: ContextVar[str | None] = ContextVar("caller", default=None)
idempotency_key: ContextVar[str | None] = ContextVar("idempotency_key", default=None)


def new_request_id() -> str:
    """32 random hex digits, as ``uuid4().hex`` wrote them, from the process's
    PRNG: an id to find a request by, not a secret, so no system call per request."""
    return f"{random.getrandbits(128):032x}"


def valid_request_id(value: str | None) -> bool:
    """Accept a caller's id if it is short, visible ASCII (safe to log and echo)."""
    return (
        bool(value) and len(value or "") <= 128 and all(33 <= ord(ch) <= 126 for ch in value or "")
    )
