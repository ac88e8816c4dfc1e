"""Pure logic of the auth service: validation, OTP hashing, keys and tokens."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.config import ConfigError
from services.auth import otp, validation
from services.auth.errors import InvalidEmail, InvalidPhone, InvalidWalletAddress
from services.auth.keys import load_signing_key

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize(
    "value", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper()]
)
def test_wallet_accepts_checksum_lower_and_upper(value):
    assert validation.wallet_address(value) == CHECKSUMMED


@pytest.mark.parametrize(
    "value",
    [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",  # one letter's case flipped
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # no 0x
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA",  # too short
        "0xZZAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "",
    ],
)
def test_wallet_rejects_bad_addresses(value):
    with pytest.raises(InvalidWalletAddress) as caught:
        validation.wallet_address(value)
    assert caught.value.field == "walletAddress"


def test_email_and_phone_are_normalised():
    assert validation.email(" Ada@Example.COM ") == "ada@example.com"
    assert validation.phone("+1 (415) 555-0123") == "+14155550123"
    with pytest.raises(InvalidEmail):
        validation.email("ada@")
    with pytest.raises(InvalidPhone):
        validation.phone("4155550123")


@given(st.text(alphabet="0123456789", min_size=6, max_size=6))
def test_code_hash_matches_only_its_code(code):
    salt = otp.new_salt()
    digest = otp.hash_code(code, salt)
    assert otp.code_matches(code, salt, digest)
    other = f"{(int(code) + 1) % 10**6:06d}"
    assert not otp.code_matches(other, salt, digest)
    assert code not in digest


def test_new_codes_are_six_digits():
    codes = {otp.new_code() for _ in range(200)}
    assert all(otp.well_formed(c) for c in codes)
    assert len(codes) > 150


def test_key_is_generated_once_with_private_permissions(tmp_path: Path):
    path = tmp_path / "keys" / "jwt.pem"
    key = load_signing_key(path, generate=True)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_signing_key(path, generate=False)
    assert again.kid == key.kid, "the kid is the key's thumbprint: stable across restarts"
    assert len(base64.urlsafe_b64decode(key.jwk.x + "=")) == 32


def test_missing_or_wrong_key_fails_naming_the_variable(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load_signing_key(tmp_path / "none.pem", generate=False)
    assert caught.value.variable == "AUTH_JWT_PRIVATE_KEY_FILE"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ConfigError):
        load_signing_key(junk, generate=False)


def test_access_token_claims_and_signature(tmp_path: Path):
    key = load_signing_key(tmp_path / "k.pem", generate=True)
    now = datetime.now(UTC)
    token = key.sign_access_token(
        user_id="u1",
        role="user",
        session_id="s1",
        issuer="minequest",
        audience="minequest-api",
        now=now,
        ttl_seconds=900,
    )
    public = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": key.jwk.x}, algorithm="EdDSA")
    claims = jwt.decode(
        token, public, algorithms=["EdDSA"], audience="minequest-api", issuer="minequest"
    )
    assert {k: claims[k] for k in ("sub", "role", "sid")} == {
        "sub": "u1",
        "role": "user",
        "sid": "s1",
    }
    assert claims["exp"] == int(now.timestamp()) + 900
    assert jwt.get_unverified_header(token)["kid"] == key.kid


def test_smtp_ca_file_must_exist(tmp_path: Path):
    from runtime.config import Env
    from services.auth.settings import AuthSettings

    base = {
        "MONGODB_URI": "mongodb://x",
        "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
        "SMTP_HOST": "mail.example.com",
    }
    with pytest.raises(ConfigError) as caught:
        AuthSettings.from_env(Env({**base, "SMTP_CA_FILE": str(tmp_path / "nope.pem")}))
    assert caught.value.variable == "SMTP_CA_FILE"
    settings = AuthSettings.from_env(Env(base))
    assert settings.smtp is not None
    assert (settings.smtp.port, settings.smtp.ca_file) == (587, None)
