"""Signed webhooks: HMAC-SHA256 over ``<timestamp>.<raw body>`` with a shared secret.

The deposit provider sends::

    X-Webhook-Timestamp: 1767225600              (Unix seconds)
    X-Webhook-Signature: sha256=<64 hex digits>  (several, comma-separated, during a
                                                  secret rotation: any one may match)

The gateway recomputes the MAC over the exact bytes received, compares in
constant time (:func:`hmac.compare_digest`), then requires the timestamp to
be within the tolerance of its clock, so a captured request cannot be
replayed later. A replay inside the window is harmless: deposits are
idempotent on (chain, tx hash, log index) below.

    headers missing              401 webhook_signature_missing
    malformed or wrong signature 401 webhook_signature_invalid
    timestamp outside the window 401 webhook_timestamp_expired
"""

from __future__ import annotations

import hashlib
import hmac

from gateway.errors import ApiError

TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
SCHEME = "sha256="


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value a sender computes: ``sha256=<hex>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def _refuse(error: str, detail: str) -> ApiError:
    return ApiError(401, error, detail)


def verify(
    secret: str,
    *,
    timestamp: str | None,
    signatures: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: float,
) -> None:
    """Return if the request is authentic and fresh; else raise 401 :class:`ApiError`."""
    if not timestamp or not signatures:
        raise _refuse(
            "webhook_signature_missing",
            f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required",
        )
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise _refuse("webhook_signature_invalid", f"{TIMESTAMP_HEADER} must be Unix seconds")
    expected = signature(secret, timestamp, body)
    offered = [value.strip() for value in signatures.split(",")]
    if not any(hmac.compare_digest(expected.encode(), value.encode()) for value in offered):
        raise _refuse("webhook_signature_invalid", "the webhook signature does not match")
    if abs(now - int(timestamp)) > tolerance_seconds:
        raise _refuse(
            "webhook_timestamp_expired",
            f"the webhook timestamp is more than {int(tolerance_seconds)} s from now",
        )
