"""One-time codes: generation and constant-time checks of a salted hash.

Only the HMAC-SHA256 of the code (keyed by a per-challenge salt) is stored.
A code has 10^6 values, so its safety comes from the 5-minute expiry and
the attempt limit, both enforced by the store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CODE_LENGTH = 6


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"


def new_salt() -> bytes:
    return secrets.token_bytes(16)


def hash_code(code: str, salt: bytes) -> str:
    return hmac.new(salt, code.encode(), hashlib.sha256).hexdigest()


def code_matches(code: str, salt: bytes, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_code(code, salt), expected_hash)


def well_formed(code: str) -> bool:
    return len(code) == CODE_LENGTH and code.isdigit()
