"""Auth settings that refuse unsafe combinations, SMTP_SECURITY, the SIWE
message and signature checks, verify-only JWT keys, what a code mail says,
and how a client IP becomes a cooldown requester."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from eth_account import Account
from eth_account.messages import encode_defunct

from runtime.config import ConfigError, Env
from runtime.errors import InvalidArgument
from services.auth import siwe
from services.auth.errors import InvalidWalletSignature
from services.auth.keys import load_signing_key, load_verify_keys
from services.auth.login import requester
from services.auth.mailer import CodeMail, email_message
from services.auth.settings import AuthDatabaseSettings, AuthSettings, SiweSettings

BASE = {"MONGODB_URI": "mongodb://x", "AUTH_JWT_PRIVATE_KEY_FILE": "/nonexistent/k.pem"}


def settings(**env: str) -> AuthSettings:
    return AuthSettings.from_env(Env({**BASE, **env}))


def refused(variable: str, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    assert caught.value.variable == variable
    return caught.value.problem


@pytest.mark.parametrize(
    ("env", "security"),
    [
        ({}, "starttls"),
        ({"SMTP_PORT": "465"}, "tls"),
        ({"SMTP_PORT": "25", "SMTP_SECURITY": "none"}, "none"),
        ({"SMTP_PORT": "465", "SMTP_SECURITY": "starttls"}, "starttls"),
    ],
)
def test_smtp_security_requires_starttls_unless_told_otherwise(env, security):
    smtp = settings(SMTP_HOST="mail.example.com", **env).smtp
    assert smtp is not None
    assert smtp.security == security


def test_an_unknown_smtp_security_is_refused():
    refused("SMTP_SECURITY", SMTP_HOST="mail.example.com", SMTP_SECURITY="opportunistic")


def test_the_dev_fallback_refuses_smtp_and_production():
    assert "SMTP_HOST" in refused(
        "ENABLE_DEV_OTP_FALLBACK", ENABLE_DEV_OTP_FALLBACK="true", SMTP_HOST="mail.example.com"
    )
    assert "production" in refused(
        "ENABLE_DEV_OTP_FALLBACK", ENABLE_DEV_OTP_FALLBACK="true", MINEQUEST_ENV="production"
    )
    assert settings(ENABLE_DEV_OTP_FALLBACK="true").dev_otp_fallback


def test_the_defaults_bound_guessing_and_mail():
    loaded = settings()
    guard = loaded.otp_guard
    assert (guard.free_failures, guard.backoff_base_seconds, guard.backoff_max_seconds) == (
        3,
        30,
        900,
    )
    assert (guard.daily_budget, guard.window_seconds) == (30, 86400)
    assert loaded.otp_mails_per_hour == 10
    assert loaded.session_max_lifetime_seconds == 90 * 86400
    assert loaded.login_link_url is None
    refused("AUTH_OTP_BACKOFF_MAX_SECONDS", AUTH_OTP_BACKOFF_MAX_SECONDS="10")


@pytest.mark.parametrize(
    "template",
    [
        "app.example.com/login?k={key}",
        "https://app.example.com/login?k={key}",
        "https://x/{challengeId}",
    ],
)
def test_a_login_link_needs_a_url_with_both_placeholders(template):
    refused("AUTH_LOGIN_LINK_URL", AUTH_LOGIN_LINK_URL=template)


def test_production_needs_the_siwe_domain_and_uri_and_checks_them():
    production = {"MINEQUEST_ENV": "production"}
    refused("SIWE_DOMAIN", **production)
    refused("SIWE_URI", **production, SIWE_DOMAIN="app.example.com")
    refused("SIWE_DOMAIN", SIWE_DOMAIN="https://app.example.com")
    refused("SIWE_URI", SIWE_URI="app.example.com")
    refused("SIWE_CHAIN_ID", SIWE_CHAIN_ID="0")
    loaded = settings(SIWE_DOMAIN="app.example.com:8443", SIWE_URI="https://app.example.com")
    assert loaded.siwe.domain == "app.example.com:8443"


def test_create_admin_settings_need_only_the_database():
    loaded = AuthDatabaseSettings.from_env(Env({"MONGODB_URI": "mongodb://x"}))
    assert (loaded.mongodb_uri, loaded.mongodb_database) == ("mongodb://x", "minequest_auth")
    with pytest.raises(ConfigError) as caught:
        AuthDatabaseSettings.from_env(Env({}))
    assert caught.value.variable == "MONGODB_URI"


SIWE = SiweSettings(
    domain="app.example.com",
    uri="https://app.example.com",
    chain_id=1,
    statement="Prove it.",
    challenge_ttl_seconds=600,
)


def test_a_personal_sign_signature_recovers_its_signer():
    account = Account.create()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    text = siwe.message_text(
        SIWE,
        address=account.address,
        nonce=siwe.new_nonce(),
        issued_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    assert "Issued At: 2026-12-01T00:00:00Z\nExpiration Time: 2026-12-01T00:10:00Z" in text
    signature = "0x" + account.sign_message(encode_defunct(text=text)).signature.hex()
    assert siwe.signer(text, signature) == account.address
    assert siwe.signer(text + " ", signature) != account.address


@pytest.mark.parametrize(
    "signature", ["", "0x", "0x" + "00" * 65, "0x" + "11" * 64 + "11", "1" * 132]
)
def test_malformed_signatures_are_domain_errors(signature):
    with pytest.raises(InvalidWalletSignature) as caught:
        siwe.signer("hello", signature)
    assert caught.value.field == "signature"


def test_verify_only_keys_load_from_private_or_public_pem_and_nothing_else(tmp_path: Path):
    signing = load_signing_key(tmp_path / "a.pem", generate=True)
    public = tmp_path / "a.pub"
    public.write_bytes(
        serialization.load_pem_private_key((tmp_path / "a.pem").read_bytes(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    keys = load_verify_keys((tmp_path / "a.pem", public))
    assert [k.kid for k in keys] == [signing.kid, signing.kid]
    ec = tmp_path / "ec.pem"
    ec.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    for bad in (ec, junk, tmp_path / "absent.pem"):
        with pytest.raises(ConfigError) as caught:
            load_verify_keys((bad,))
        assert caught.value.variable == "AUTH_JWT_VERIFY_KEY_FILES"


def test_a_code_mail_carries_the_code_the_key_and_the_link():
    mail = CodeMail("email", "ada@example.com", "123456", "K" * 32, "https://app/x#k=KKK", 300)
    message = email_message(mail, "no-reply@example.com")
    body = message.get_content()
    assert message["Subject"] == "Your Minequest code: 123456"
    assert "login key: " + "K" * 32 in body
    assert "https://app/x#k=KKK" in body
    assert "5 minutes" in body


@pytest.mark.parametrize(
    ("client_ip", "key"),
    [
        ("", ""),
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ],
)
def test_a_client_ip_becomes_a_requester(client_ip, key):
    assert requester(client_ip) == key


def test_a_bad_client_ip_is_refused():
    with pytest.raises(InvalidArgument):
        requester("10.0.0.300")
