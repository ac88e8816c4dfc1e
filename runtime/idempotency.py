"""The one rule for an ``Idempotency-Key``, shared by the gateway and the services.

A key is 1-255 visible ASCII characters (``!`` to ``~``: no spaces, no
controls, nothing a log line or a Redis key could trip on). The gateway reads
it from the header (:func:`from_header`, which also accepts the IETF draft's
quoted structured-field form); the mining and wallet services check the key
the gateway passed on (:func:`check_key`), so a caller inside the network is
held to the same rule.

    InvalidArgument
    ├── IdempotencyKeyRequired   idempotency_key_required
    └── InvalidIdempotencyKey    invalid_idempotency_key
"""

from __future__ import annotations

from runtime.errors import InvalidArgument

__all__ = [
    "HEADER",
    "MAX_KEY_LENGTH",
    "PATTERN",
    "IdempotencyKeyRequired",
    "InvalidIdempotencyKey",
    "check_key",
    "from_header",
]

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
#: The same rule as a regular expression, for the OpenAPI document.
PATTERN = "^[!-~]+$"


class IdempotencyKeyRequired(InvalidArgument):
    reason = "idempotency_key_required"


class InvalidIdempotencyKey(InvalidArgument):
    reason = "invalid_idempotency_key"


def check_key(key: str, field: str = HEADER) -> str:
    """``key`` if it follows the rule; else a domain error naming ``field``."""
    if not key:
        raise IdempotencyKeyRequired(
            f"an {HEADER} is required (a unique value per operation)", field=field
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(f"{HEADER} must be 1-{MAX_KEY_LENGTH} characters", field=field)
    if not all("!" <= char <= "~" for char in key):
        raise InvalidIdempotencyKey(
            f"{HEADER} must be visible ASCII characters (no spaces or controls)", field=field
        )
    return key


def from_header(raw: str) -> str:
    """The key in an ``Idempotency-Key`` header value.

    Accepts a bare token (``abc``) and the draft's structured-field string
    (``"abc"``, with ``\\"`` and ``\\\\`` escapes), as clients in the field
    send both; surrounding spaces and tabs are the header's, not the key's.
    """
    value = raw.strip(" \t")
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = _unquote(value[1:-1])
    if not value:
        raise InvalidIdempotencyKey(f"{HEADER} must be 1-{MAX_KEY_LENGTH} characters", field=HEADER)
    return check_key(value)


def _unquote(inner: str) -> str:
    out: list[str] = []
    chars = iter(inner)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                raise InvalidIdempotencyKey(
                    f'a quoted {HEADER} may only escape " and \\', field=HEADER
                )
            out.append(escaped)
        elif char == '"':
            raise InvalidIdempotencyKey(f'an unescaped " inside a quoted {HEADER}', field=HEADER)
        else:
            out.append(char)
    return "".join(out)
