"""Idempotency keys (IETF httpapi ``Idempotency-Key`` draft, Stripe's practice).

What is pure here — parsing the header, the request fingerprint, which answers
are kept and how a kept answer is encoded — is separate from the Redis side
(:mod:`gateway.guard`), which claims a key in the same script call as the rate
limits and stores the answer after the service replied.

A record lives under a key derived from caller + method + route + the client's
key, so two users (or two routes) never share one. It is first a *lease*
(``P`` + claim token + fingerprint, expiring after ``lease``), then the
finished answer (``D`` + fingerprint + JSON of status, headers and body, kept
for the retention period). A gateway that dies between the two leaves only the
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

from gateway.errors import ApiError

__all__ = [
    "FINGERPRINT_HEX",
    "HEADER",
    "MUTATING_METHODS",
    "TOKEN_HEX",
    "StoredAnswer",
    "claim_token",
    "fingerprint",
    "is_kept",
    "parse_key",
    "record_key",
]

HEADER = "idempotency-key"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
FINGERPRINT_HEX = 32
TOKEN_HEX = 16

#: Statuses that are not answers to keep: the client should simply retry.
_NOT_KEPT = frozenset({408, 409, 429})
#: Response headers replayed with a kept answer (the rest are per-response).
_REPLAYED_HEADERS = frozenset(
    {b"content-type", b"location", b"content-location", b"cache-control", b"etag", b"last-modified"}
)


def parse_key(raw: str) -> str:
    """The key from an ``Idempotency-Key`` header value.

    Accepts the draft's structured-field string (``"abc"``, with ``\\"`` and
    ``\\\\`` escapes) and a bare token (``abc``), as clients in the field send
    both. The key is 1-255 visible ASCII characters; anything else is a 400.
    """
    value = raw.strip(" \t")
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = _unquote(value[1:-1])
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters",
            field="Idempotency-Key",
        )
    if not all("\x21" <= char <= "\x7e" for char in value):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be visible ASCII characters (no spaces or controls)",
            field="Idempotency-Key",
        )
    return value


def _unquote(inner: str) -> str:
    out: list[str] = []
    chars = iter(inner)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                raise ApiError(
                    400,
                    "invalid_idempotency_key",
                    'a quoted Idempotency-Key may only escape " and \\',
                    field="Idempotency-Key",
                )
            out.append(escaped)
        elif char == '"':
            raise ApiError(
                400,
                "invalid_idempotency_key",
                'an unescaped " inside a quoted Idempotency-Key',
                field="Idempotency-Key",
            )
        else:
            out.append(char)
    return "".join(out)


def fingerprint(method: str, route: str, body: bytes) -> str:
    """A digest of what the request asks for: method, route template and body.

    A JSON body is canonicalised first (keys sorted, no whitespace), so a
    client that re-serialises the same object differently is not told it
    changed the request. Anything that is not JSON is hashed as sent.
    """
    canonical = body
    if body:
        try:
            canonical = json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
        except (ValueError, UnicodeDecodeError):
            canonical = body
    digest = hashlib.blake2b(digest_size=FINGERPRINT_HEX // 2)
    for part in (method.encode(), route.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def record_key(scope: str, method: str, route: str, key: str) -> str:
    """The Redis key of one record: fixed length whatever the client sent."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (scope, method, route, key):
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


def is_kept(status: int) -> bool:
    """2xx and 4xx answers are kept, except 408, 409 and 429; never 5xx."""
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
