"""The Telegram Mini App initData check (services/auth/telegram.py), against
initData signed here as Telegram documents it for Web Apps, and its settings."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from gateway import constraints
from runtime.config import ConfigError, Env
from services.auth import telegram
from services.auth.errors import InitDataExpired, InitDataInvalidHash, InvalidInitData
from services.auth.settings import TelegramSettings
from services.auth.telegram_login import usernames

BOT_TOKEN = "123456789:AAE-unit-test-bot-token_0123456789"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = 86400


def telegram_hash(fields: dict[str, str], bot_token: str) -> str:
    """Telegram's hash, computed here from the documentation alone: the sorted
    ``key=value`` lines but ``hash``, HMAC-SHA-256 keyed by
    HMAC-SHA-256(key "WebAppData", message bot token), in hex."""
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()) if key != "hash")
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    return hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()


def signed_init_data(
    user: dict[str, Any],
    *,
    bot_token: str = BOT_TOKEN,
    auth_date: datetime | None = None,
    start_param: str | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """initData as a Mini App gets it: a query string Telegram signed for the bot."""
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
        "auth_date": str(int((auth_date or datetime.now(UTC)).timestamp())),
        **({"start_param": start_param} if start_param is not None else {}),
        **(extra or {}),
    }
    fields["hash"] = telegram_hash(fields, bot_token)
    return urlencode(fields, quote_via=quote)


ADA = {"id": 279058397, "first_name": "Ada", "username": "ada_l", "language_code": "en"}


def check(init_data: str, *, now: datetime = NOW, max_age: int = DAY) -> telegram.TelegramUser:
    return telegram.verify(init_data, BOT_TOKEN, now=now, max_age_seconds=max_age)


def test_initdata_signed_for_the_bot_gives_its_user() -> None:
    user = check(signed_init_data(ADA, auth_date=NOW, start_param="ABCDEFG2"))
    assert (user.id, user.username, user.first_name) == (279058397, "ada_l", "Ada")
    assert user.start_param == "ABCDEFG2"
    assert user.auth_date == NOW


def test_the_service_signs_exactly_as_telegram_documents() -> None:
    fields = {"auth_date": "1", "user": '{"id":1}', "query_id": "q", "hash": "ignored"}
    assert telegram.sign(fields, BOT_TOKEN) == telegram_hash(fields, BOT_TOKEN)
    assert telegram.data_check_string(fields) == 'auth_date=1\nquery_id=q\nuser={"id":1}'


def test_escaped_and_unicode_values_are_checked_decoded() -> None:
    user = {"id": 7, "first_name": 'Zoë & Co = "x"', "last_name": "😀", "username": "z_o"}
    signed = signed_init_data(user, auth_date=NOW, extra={"chat_type": "", "note": "a+b c"})
    assert check(signed).first_name == 'Zoë & Co = "x"'


def test_the_order_of_the_pairs_does_not_matter() -> None:
    pairs = signed_init_data(ADA, auth_date=NOW).split("&")
    assert check("&".join(reversed(pairs))).id == ADA["id"]


def test_a_tampered_field_fails_the_hash() -> None:
    signed = signed_init_data(ADA, auth_date=NOW)
    forged = signed.replace("279058397", "279058398")
    assert forged != signed
    with pytest.raises(InitDataInvalidHash):
        check(forged)


def test_a_tampered_signature_field_fails_the_hash_too() -> None:
    """Telegram's newer ``signature`` field is one of the checked fields."""
    signed = signed_init_data(ADA, auth_date=NOW, extra={"signature": "abc"})
    with pytest.raises(InitDataInvalidHash):
        check(signed.replace("signature=abc", "signature=abd"))


def test_initdata_signed_for_another_bot_fails_the_hash() -> None:
    other = signed_init_data(ADA, auth_date=NOW, bot_token="987654321:another-bot-token")
    with pytest.raises(InitDataInvalidHash) as caught:
        check(other)
    assert caught.value.reason == "init_data_invalid_hash"
    assert caught.value.field == "initData"


@pytest.mark.parametrize("bad_hash", ["", "00" * 32, "zz", "é" * 64])
def test_a_wrong_or_odd_hash_fails_the_hash(bad_hash: str) -> None:
    fields = {"auth_date": str(int(NOW.timestamp())), "user": json.dumps(ADA)}
    with pytest.raises(InitDataInvalidHash):
        check(urlencode({**fields, "hash": bad_hash}))


def test_initdata_older_than_the_max_age_is_expired() -> None:
    signed = signed_init_data(ADA, auth_date=NOW - timedelta(seconds=DAY))
    assert check(signed).id == ADA["id"]  # exactly the max age: still valid
    with pytest.raises(InitDataExpired) as caught:
        check(signed, now=NOW + timedelta(seconds=1))
    assert caught.value.reason == "init_data_expired"


def test_an_expired_initdata_with_a_bad_hash_is_a_bad_hash() -> None:
    """Nothing unsigned is trusted, its auth_date included."""
    old = signed_init_data(ADA, auth_date=NOW - timedelta(days=30), bot_token="1:other")
    with pytest.raises(InitDataInvalidHash):
        check(old)


@pytest.mark.parametrize(
    ("init_data", "problem"),
    [
        ("", "is required"),
        ("x" * (telegram.MAX_INIT_DATA_LENGTH + 1), "longer"),
        ("just some text", "query string"),
        ("a=1&&b=2", "query string"),
        ("user=%E9%ZZ&hash=1&auth_date=1", "query string"),
        ("auth_date=1&user=%7B%22id%22%3A1%7D", "no hash"),
        ("hash=00&user=%7B%22id%22%3A1%7D", "auth_date"),
        ("hash=00&auth_date=-5&user=%7B%22id%22%3A1%7D", "auth_date"),
        ("hash=00&auth_date=1", "no user"),
        ("hash=00&auth_date=1&user=not-json", "no user"),
        ("hash=00&auth_date=1&user=%5B1%5D", "no user"),
        ("hash=00&auth_date=1&user=%7B%22id%22%3A%22x%22%7D", "integer id"),
        ("hash=00&auth_date=1&user=%7B%22id%22%3Atrue%7D", "integer id"),
        ("hash=00&auth_date=1&user=%7B%22id%22%3A0%7D", "integer id"),
    ],
)
def test_malformed_initdata_is_refused_before_any_hash(init_data: str, problem: str) -> None:
    with pytest.raises(InvalidInitData) as caught:
        check(init_data)
    assert problem in caught.value.message
    assert (caught.value.reason, caught.value.field) == ("invalid_init_data", "initData")


def test_a_key_given_twice_is_malformed_even_when_signed() -> None:
    """Which of two values would count is ambiguous: refused, not guessed."""
    signed = signed_init_data(ADA, auth_date=NOW)
    with pytest.raises(InvalidInitData) as caught:
        check(signed + "&auth_date=" + str(int(NOW.timestamp())))
    assert "twice" in caught.value.message


def test_settings_read_the_bot_token_and_the_max_age() -> None:
    settings = TelegramSettings.from_env(
        Env({"TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_AUTH_MAX_AGE_SECONDS": "600"})
    )
    assert (settings.bot_token, settings.max_age_seconds) == (BOT_TOKEN, 600)
    assert BOT_TOKEN not in repr(settings)
    unset = TelegramSettings.from_env(Env({}))
    assert (unset.bot_token, unset.max_age_seconds) == (None, DAY)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TELEGRAM_BOT_TOKEN": "no-colon"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "12:has space"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_AUTH_MAX_AGE_SECONDS": "0"}, "TELEGRAM_AUTH_MAX_AGE_SECONDS"),
    ],
)
def test_bad_telegram_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TelegramSettings.from_env(Env(env))
    assert caught.value.variable == variable


def test_the_documented_length_is_the_services() -> None:
    assert constraints.MAX_INIT_DATA_LENGTH == telegram.MAX_INIT_DATA_LENGTH


def test_a_new_account_tries_telegrams_username_then_a_generated_one() -> None:
    def user(username: str | None) -> telegram.TelegramUser:
        return telegram.TelegramUser(42, username, "A", None, NOW)

    assert usernames(user("ada_l")) == ["ada_l", "tg_42", None]
    assert usernames(user("ab")) == ["tg_42", None]  # too short for ours
    assert usernames(user(None)) == ["tg_42", None]
