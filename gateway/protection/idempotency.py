"""Idempotency records (IETF httpapi ``Idempotency-Key`` draft, Stripe's practice).

What is pure here — the request fingerprint, where a record lives, which
answers are kept and how a kept answer is encoded — is separate from the
Redis side (:mod:`gateway.protection.store`), which claims a key in the same
script call as the rate limits and stores the answer after the service
replied. The key itself follows the one rule in :mod:`runtime.idempotency`.

A record lives under a key derived from caller + method + the concrete path
(``/api/quests/a/complete``, not the route template), so two users, two
routes, or two quests (or withdrawals) on one route never share one. The
fingerprint covers method, path, query string and the canonical JSON body,
so the same key sent with anything else is 422. A record is first a *lease*
(``P`` + claim token + fingerprint, expiring after ``lease``), then the
finished answer (``D`` + fingerprint + status, headers and body, kept for the
retention period). A gateway that dies between the two leaves only the
lease, which expires, so the client's retry runs again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.protojson import RequestBody

__all__ = [
    "FINGERPRINT_HEX",
    "HEADER",
    "MUTATING_METHODS",
    "TOKEN_HEX",
    "StoredAnswer",
    "claim_token",
    "fingerprint",
    "is_kept",
    "record_key",
]

HEADER = "idempotency-key"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FINGERPRINT_HEX = 32
TOKEN_HEX = 16

#: Statuses that are not answers to keep: the client should simply retry
#: (or, for 401, authenticate: an answer to no one is no answer to keep).
_NOT_KEPT = frozenset({401, 408, 409, 429})
#: Response headers replayed with a kept answer (the rest are per-response).
_REPLAYED_HEADERS = frozenset(
    {b"content-type", b"location", b"content-location", b"cache-control", b"etag", b"last-modified"}
)


def fingerprint(method: str, path: str, query: bytes, body: RequestBody) -> str:
    """A digest of what the request asks for: method, concrete path, query and body.

    A JSON body is canonicalised first (keys sorted, no whitespace), so a
    client that re-serialises the same object differently is not told it
    changed the request. Anything that is not acceptable JSON is hashed as sent.
    """
    canonical = body.raw
    data = body.json_or_none() if body.raw else None
    if data is not None:
        canonical = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    digest = hashlib.blake2b(digest_size=FINGERPRINT_HEX // 2)
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def record_key(scope: str, method: str, path: str, key: str) -> str:
    """The Redis key of one record: fixed length whatever the client sent."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (scope, method, path, key):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    return f"mq:idem:{digest.hexdigest()}"


_PROCESS = secrets.token_hex(TOKEN_HEX // 4)
_CLAIMS = itertools.count()


def _new_process_prefix() -> None:
    global _PROCESS  # noqa: PLW0603 - a forked worker must not reuse its parent's tokens
    _PROCESS = secrets.token_hex(TOKEN_HEX // 4)


os.register_at_fork(after_in_child=_new_process_prefix)


def claim_token() -> str:
    """Who holds a lease: only its holder may store or release the record.

    Unique per claim: a random prefix per process and a counter (cheaper on
    the hot path than fresh random bytes each time)."""
    return f"{_PROCESS}{next(_CLAIMS) & 0xFFFFFFFF:08x}"


def is_kept(status: int, *, anonymous: bool) -> bool:
    """Which answers a retry is given back. A signed-in caller's 2xx and 4xx,
    except 401, 408, 409 and 429; an anonymous caller's 2xx only (a stranger's
    failures are not worth 24 hours of Redis); never 5xx."""
    if anonymous:
        return 200 <= status < 300
    return 200 <= status < 500 and status not in _NOT_KEPT and not 300 <= status < 400


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A finished answer, as replayed to a retry."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def capture(
        cls, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> StoredAnswer:
        kept = []
        for name, value in headers:
            lowered = name.lower()
            if lowered in _REPLAYED_HEADERS:
                kept.append((lowered.decode("latin-1"), value.decode("latin-1")))
        return cls(status, tuple(kept), body)

    def encode(self) -> bytes:
        """For Redis: ``<status>\n`` + ``<name>:<value>\n`` per header + ``\n`` +
        the body as sent (header lines never hold a newline; the body may be
        any bytes)."""
        head = "".join(f"{name}:{value}\n" for name, value in self.headers)
        return f"{self.status}\n{head}\n".encode("latin-1") + self.body

    @classmethod
    def decode(cls, payload: bytes) -> StoredAnswer:
        head, _, body = payload.partition(b"\n\n")
        status, *lines = head.decode("latin-1").split("\n")
        headers = tuple((name, value) for name, _, value in (line.partition(":") for line in lines))
        return cls(int(status), headers, body)
