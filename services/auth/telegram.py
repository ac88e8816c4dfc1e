"""Telegram Mini App ``initData``: the check Telegram documents for Web Apps
("Validating data received via the Mini App"). Pure: no I/O.

1. ``initData`` is a URL query string: its ``key=value`` pairs, values
   percent-decoded. A key given twice, a pair without ``=``, bad encoding or
   no ``hash`` is malformed (``invalid_init_data``), as are an ``auth_date``
   that is not a Unix time and a ``user`` that is not a JSON object with an
   integer ``id``.
2. ``data_check_string``: every pair except ``hash``, sorted by key, written
   ``key=value`` (the decoded value), joined by ``"\\n"``.
3. ``secret_key = HMAC_SHA256(key=b"WebAppData", msg=bot_token)``.
4. ``hash`` must be ``hex(HMAC_SHA256(key=secret_key, msg=data_check_string))``,
   compared in constant time (``init_data_invalid_hash``).
5. Only signed data is trusted, so then: ``auth_date`` older than the max age
   is refused (``init_data_expired``).

A valid ``initData`` is a bearer credential for its lifetime (Telegram gives
no nonce): the max age bounds how long a leaked one can be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from services.auth.errors import InitDataExpired, InitDataInvalidHash, InvalidInitData

__all__ = ["MAX_INIT_DATA_LENGTH", "TelegramUser", "data_check_string", "sign", "verify"]

#: Longer initData is refused unread (Telegram's is well under 2 KiB).
MAX_INIT_DATA_LENGTH = 8192
_MAX_FIELDS = 64
FIELD = "initData"


@dataclass(frozen=True, slots=True)
class TelegramUser:
    """What a verified ``initData`` says about who opened the Mini App."""

    id: int
    username: str | None
    first_name: str | None
    start_param: str | None
    auth_date: datetime


def _malformed(problem: str) -> InvalidInitData:
    return InvalidInitData(f"initData {problem}", field=FIELD)


def _pairs(init_data: str) -> dict[str, str]:
    if not init_data:
        raise _malformed("is required")
    if len(init_data) > MAX_INIT_DATA_LENGTH:
        raise _malformed(f"is longer than {MAX_INIT_DATA_LENGTH} characters")
    try:
        pairs = parse_qsl(
            init_data,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError:
        raise _malformed("is not a URL query string") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise _malformed(f"has {key!r} twice")
        fields[key] = value
    return fields


def data_check_string(fields: dict[str, str]) -> str:
    """Every field but ``hash``, sorted by key, ``key=value`` lines."""
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def sign(fields: dict[str, str], bot_token: str) -> str:
    """The hex ``hash`` Telegram gives ``fields`` for the bot (also what tests sign with)."""
    secret_key = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    message = data_check_string(fields).encode()
    return hmac.new(secret_key, message, hashlib.sha256).hexdigest()


def _auth_date(value: str | None) -> datetime:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise _malformed("has no auth_date (a Unix time)")
    return datetime.fromtimestamp(int(value), UTC)


def _user(value: str | None) -> tuple[int, dict[str, object]]:
    try:
        user = json.loads(value) if value is not None else None
    except ValueError:
        user = None
    if not isinstance(user, dict):
        raise _malformed("has no user (a JSON object)")
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id < 2**63:
        raise _malformed("user has no integer id")
    return user_id, user


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def verify(init_data: str, bot_token: str, *, now: datetime, max_age_seconds: int) -> TelegramUser:
    """The user of ``init_data`` if Telegram signed it for ``bot_token`` no
    longer than ``max_age_seconds`` ago; else InvalidInitData (400),
    InitDataInvalidHash or InitDataExpired (401)."""
    fields = _pairs(init_data)
    received = fields.get("hash")
    if received is None:
        raise _malformed("has no hash")
    auth_date = _auth_date(fields.get("auth_date"))
    user_id, user = _user(fields.get("user"))
    expected = sign(fields, bot_token)
    if not hmac.compare_digest(expected.encode(), received.encode()):
        raise InitDataInvalidHash("initData is not signed by Telegram for this bot", field=FIELD)
    if (now - auth_date).total_seconds() > max_age_seconds:
        raise InitDataExpired(
            f"initData is older than {max_age_seconds} s: reopen the Mini App", field=FIELD
        )
    return TelegramUser(
        id=user_id,
        username=_text(user.get("username")),
        first_name=_text(user.get("first_name")),
        start_param=_text(fields.get("start_param")),
        auth_date=auth_date,
    )
