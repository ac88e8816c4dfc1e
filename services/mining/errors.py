"""The mining service's domain errors (each maps to gRPC status in runtime.errors).

DomainError
├── InvalidArgument
│   ├── InvalidClick            invalid_click
│   ├── IdempotencyKeyRequired  idempotency_key_required (runtime.idempotency)
│   └── InvalidIdempotencyKey   invalid_idempotency_key (runtime.idempotency)
├── NotFound
│   └── ClickNotFound           click_not_found
├── AlreadyExists
│   └── IdempotencyKeyReused    idempotency_key_reused (HTTP 422)
└── ResourceExhausted           (all with retry_after)
    ├── QueueFull               queue_full (HTTP 503: backpressure, not the user's fault)
    └── Throttled               energy_exhausted | tap_rate_exceeded | daily_cap_reached
"""

from __future__ import annotations

from minequest.mining.v1 import mining_pb2
from runtime.errors import (
    AlreadyExists,
    DomainError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    error_info,
)


class InvalidClick(InvalidArgument):
    reason = "invalid_click"


class ClickNotFound(NotFound):
    reason = "click_not_found"


class IdempotencyKeyReused(AlreadyExists):
    reason = "idempotency_key_reused"


class QueueFull(ResourceExhausted):
    reason = "queue_full"


class Throttled(ResourceExhausted):
    reason = "energy_exhausted"


def click_error(error: DomainError) -> mining_pb2.ClickError:
    """One refused click of a ``SubmitClicks`` call, as the status SubmitClick raises."""
    info = error_info(error)
    reply = mining_pb2.ClickError(
        code=info.code.value[0], message=info.message, reason=error.reason, field=info.field or ""
    )
    if info.retry_after is not None:
        reply.retry_after.seconds = info.retry_after
    return reply
