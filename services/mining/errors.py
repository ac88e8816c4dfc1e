"""The mining service's domain errors (each maps to gRPC status in runtime.errors).

DomainError
├── InvalidArgument
│   ├── InvalidClick            invalid_click
│   ├── IdempotencyKeyRequired  idempotency_key_required (runtime.idempotency)
│   └── InvalidIdempotencyKey   invalid_idempotency_key (runtime.idempotency)
├── NotFound
│   ├── ClickNotFound           click_not_found
│   ├── BoostNotFound           boost_not_found
│   └── SuspectNotFound         suspect_not_found (ClearSuspect of an unflagged account)
├── AlreadyExists
│   └── IdempotencyKeyReused    idempotency_key_reused (HTTP 422)
├── Aborted
│   └── PurchaseInFlight        boost_purchase_in_flight (retry_after: another purchase
│                               of that level is being settled)
├── FailedPrecondition          (boost purchases; HTTP 412)
│   ├── InsufficientFunds       insufficient_funds (nothing was debited or bought)
│   ├── BoostMaxLevel           boost_max_level
│   ├── BoostLevelChanged       boost_level_changed (the request's level guard missed)
│   └── PurchaseRefused         boost_purchase_refused (the wallet refused the debit
│                               for another reason; nothing was debited)
├── Unavailable
│   ├── AuthUnavailable         auth_unavailable (leaderboard usernames; retry_after)
│   └── WalletUnavailable       wallet_unavailable (retry_after; the purchase is settled
│                               by a retry or the sweeper)
└── ResourceExhausted           (all with retry_after)
    ├── QueueFull               queue_full (HTTP 503: backpressure, not the user's fault)
    └── Throttled               energy_exhausted | tap_rate_exceeded | daily_cap_reached
"""

from __future__ import annotations

from minequest.mining.v1 import mining_pb2
from runtime.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    error_info,
)


class InvalidClick(InvalidArgument):
    reason = "invalid_click"


class ClickNotFound(NotFound):
    reason = "click_not_found"


class IdempotencyKeyReused(AlreadyExists):
    reason = "idempotency_key_reused"


class BoostNotFound(NotFound):
    reason = "boost_not_found"


class PurchaseInFlight(Aborted):
    reason = "boost_purchase_in_flight"


class InsufficientFunds(FailedPrecondition):
    reason = "insufficient_funds"


class BoostMaxLevel(FailedPrecondition):
    reason = "boost_max_level"


class BoostLevelChanged(FailedPrecondition):
    reason = "boost_level_changed"


class PurchaseRefused(FailedPrecondition):
    reason = "boost_purchase_refused"


class WalletUnavailable(Unavailable):
    reason = "wallet_unavailable"


class SuspectNotFound(NotFound):
    reason = "suspect_not_found"


class AuthUnavailable(Unavailable):
    reason = "auth_unavailable"


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
