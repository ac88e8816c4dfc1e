"""One-time codes and login keys: generation and constant-time checks of a
salted hash.

Every code mail carries two secrets for one challenge: the 6-digit code a
person types, and a long login key (192 random bits, URL-safe) for a link
or a paste. Only their HMAC-SHA256 (keyed by a per-challenge salt) is
stored. A code has 10^6 values, so its safety comes from the expiry, the
per-challenge attempt limit and the per-account guess guard
(:mod:`services.auth.guard`); the key cannot be guessed and needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CODE_LENGTH = 6
#: Bytes of randomness in a login key (at least 16, i.e. 128 bits).
KEY_BYTES = 24


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def new_salt() -> bytes:
    return secrets.token_bytes(16)


def hash_code(code: str, salt: bytes) -> str:
    return hmac.new(salt, code.encode(), hashlib.sha256).hexdigest()


def code_matches(code: str, salt: bytes, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_code(code, salt), expected_hash)


def well_formed(code: str) -> bool:
    """Whether ``code`` is a short code (6 digits); anything else is taken as a key."""
    return len(code) == CODE_LENGTH and code.isascii() and code.isdigit()
