"""The auth service over real gRPC (port 0) with a real MongoDB-wire server
and a real SMTP server. Nothing is mocked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import jwt
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from grpc_health.v1 import health_pb2, health_pb2_grpc

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.errors import decode_rpc_error
from runtime.stores import mongo_client
from services.auth.admin import create_admin
from services.auth.server import SERVICE_NAME
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore
from tests.integration.conftest import SmtpServer, auth_channel, auth_settings
from tests.mail import delivery_failures, until

pytestmark = pytest.mark.integration

WALLET = "0x52908400098527886e0f7030069857d2e4169ee7"
WALLET_CHECKSUMMED = "0x52908400098527886E0F7030069857D2E4169EE7"
OTHER_WALLET = "0xde709f2102306220921060314715629080e2fb77"


class Clock:
    """A clock the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Auth:
    stub: auth_pb2_grpc.AuthServiceAsyncStub
    channel: grpc.aio.Channel
    settings: AuthSettings
    clock: Clock
    smtp: SmtpServer


def make_settings(
    tmp_path: Path, mongodb_uri: str, database: str, smtp: SmtpServer, **extra: str
) -> AuthSettings:
    return auth_settings(tmp_path, mongodb_uri, database, smtp.port, **extra)


async def start_auth(settings: AuthSettings, clock: Clock, smtp: SmtpServer) -> AsyncIterator[Auth]:
    async with auth_channel(settings, clock) as channel:
        yield Auth(auth_pb2_grpc.AuthServiceStub(channel), channel, settings, clock, smtp)


@pytest.fixture
async def auth(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
) -> AsyncIterator[Auth]:
    settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server)
    async for value in start_auth(settings, Clock(), smtp_server):
        yield value


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def register(
    auth: Auth, wallet: str = WALLET, email: str = "ada@example.com", **fields: str
) -> auth_pb2.User:
    response = await auth.stub.Register(
        auth_pb2.RegisterRequest(wallet_address=wallet, email=email, **fields)
    )
    return response.user


async def login(
    auth: Auth, email: str = "ada@example.com", nth_mail: int = 1
) -> auth_pb2.VerifyOtpResponse:
    challenge = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email=email))
    mail = await auth.smtp.mailbox.arrival(email, count=nth_mail)
    code = auth.smtp.mailbox.code_in(mail)
    return await auth.stub.VerifyOtp(
        auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=code)
    )


async def test_register_checksums_a_lowercase_wallet_and_gives_a_referral_code(auth: Auth):
    user = await register(auth, username="ada_l")
    assert user.wallet_address == WALLET_CHECKSUMMED
    assert user.email == "ada@example.com"
    assert user.role == auth_pb2.ROLE_USER
    assert len(user.referral_code) == 8
    assert user.created_at.seconds > 0


async def test_register_refuses_a_bad_checksum_naming_the_field(auth: Auth):
    bad = "0x52908400098527886E0F7030069857D2E4169Ee7"
    error = await rpc_error(
        auth.stub.Register(auth_pb2.RegisterRequest(wallet_address=bad, email="x@example.com"))
    )
    info = decode_rpc_error(error)
    assert info.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.reason, info.field) == ("invalid_wallet_address", "walletAddress")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"wallet_address": "0x1234"}, "invalid_wallet_address"),
        ({"email": "not-an-email"}, "invalid_email"),
        ({"email": "", "phone": "12345"}, "invalid_phone"),
        ({"email": "", "phone": ""}, "contact_required"),
        ({"username": "a b"}, "invalid_username"),
        ({"referral_code": "AAAAAAAA"}, "invalid_referral_code"),
    ],
)
async def test_register_rejects_bad_input(auth: Auth, fields: dict[str, str], reason: str):
    request = {"wallet_address": WALLET, "email": "bob@example.com", **fields}
    error = await rpc_error(auth.stub.Register(auth_pb2.RegisterRequest(**request)))
    info = decode_rpc_error(error)
    assert info.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == reason


async def test_unique_wallet_email_phone_and_username(auth: Auth):
    await register(auth, username="Ada", phone="+14155550123")
    cases = [
        ({"wallet_address": WALLET_CHECKSUMMED, "email": "new@example.com"}, "wallet_taken"),
        ({"wallet_address": OTHER_WALLET, "email": "ADA@example.com"}, "email_taken"),
        ({"wallet_address": OTHER_WALLET, "phone": "+1 415 555 0123"}, "phone_taken"),
        (
            {"wallet_address": OTHER_WALLET, "email": "n@example.com", "username": "ada"},
            "username_taken",
        ),
    ]
    for request, reason in cases:
        error = await rpc_error(auth.stub.Register(auth_pb2.RegisterRequest(**request)))
        info = decode_rpc_error(error)
        assert (info.code, info.reason) == (grpc.StatusCode.ALREADY_EXISTS, reason)


async def test_referral_code_links_the_inviter(auth: Auth):
    inviter = await register(auth)
    invited = await register(
        auth,
        wallet=OTHER_WALLET,
        email="bob@example.com",
        referral_code=inviter.referral_code.lower(),
    )
    assert invited.referred_by == inviter.id


async def test_otp_login_by_email_issues_verifiable_tokens(auth: Auth):
    user = await register(auth)
    result = await login(auth)
    assert result.user.id == user.id
    assert result.tokens.token_type == "Bearer"
    assert result.tokens.expires_in == 900
    jwks = await auth.stub.GetJwks(auth_pb2.GetJwksRequest())
    (key,) = jwks.keys
    header = jwt.get_unverified_header(result.tokens.access_token)
    assert header == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    public = jwt.PyJWK({"kty": key.kty, "crv": key.crv, "x": key.x}, algorithm="EdDSA")
    claims = jwt.decode(
        result.tokens.access_token,
        public,
        algorithms=["EdDSA"],
        audience="minequest-api",
        issuer="minequest",
    )
    assert claims["sub"] == user.id
    assert claims["role"] == "user"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sid"]
    assert claims["jti"]


async def test_otp_request_for_an_unknown_account_looks_like_a_known_one(auth: Auth):
    await register(auth)
    known = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    unknown = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="nobody@example.com"))
    assert {f.name for f, _ in unknown.ListFields()} == {f.name for f, _ in known.ListFields()}
    assert (unknown.channel, unknown.resend_after_seconds) == ("email", 60)
    assert len(unknown.challenge_id) == len(known.challenge_id)
    for email in ("ada@example.com", "nobody@example.com"):
        again = decode_rpc_error(
            await rpc_error(auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email=email)))
        )
        assert (again.code, again.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "otp_cooldown")
    await auth.smtp.mailbox.arrival("ada@example.com")
    assert not [m for rcpts, m in auth.smtp.mailbox.messages if "nobody@example.com" in rcpts]
    guess = auth_pb2.VerifyOtpRequest(challenge_id=unknown.challenge_id, code="123456")
    info = decode_rpc_error(await rpc_error(auth.stub.VerifyOtp(guess)))
    assert (info.reason, info.metadata["attempts_left"]) == ("invalid_code", "4")


async def test_resend_cooldown_answers_retry_after(auth: Auth):
    await register(auth)
    await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    error = await rpc_error(
        auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    )
    info = decode_rpc_error(error)
    assert (info.code, info.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "otp_cooldown")
    assert info.retry_after is not None
    assert 1 <= info.retry_after <= 60
    auth.clock.offset += timedelta(seconds=61)
    await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    await auth.smtp.mailbox.arrival("ada@example.com", count=2)


async def test_five_wrong_codes_lock_the_challenge(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
):
    """The per-challenge limit alone (the account's guess guard set out of the way)."""
    settings = make_settings(
        tmp_path, mongodb_uri, database_name, smtp_server, AUTH_OTP_FREE_FAILURES="20"
    )
    async for auth in start_auth(settings, Clock(), smtp_server):
        await check_five_wrong_codes_lock_the_challenge(auth)


async def check_five_wrong_codes_lock_the_challenge(auth: Auth) -> None:
    await register(auth)
    challenge = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    code = auth.smtp.mailbox.code_in(await auth.smtp.mailbox.arrival("ada@example.com"))
    wrong = "000000" if code != "000000" else "111111"
    request = auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=wrong)
    for attempt in range(1, 6):
        info = decode_rpc_error(await rpc_error(auth.stub.VerifyOtp(request)))
        assert (info.code, info.reason) == (grpc.StatusCode.UNAUTHENTICATED, "invalid_code")
        assert info.metadata["attempts_left"] == str(5 - attempt)
    info = decode_rpc_error(await rpc_error(auth.stub.VerifyOtp(request)))
    assert (info.code, info.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_attempts")
    right = auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=code)
    info = decode_rpc_error(await rpc_error(auth.stub.VerifyOtp(right)))
    assert info.reason == "too_many_attempts"


async def test_expired_code_is_refused(auth: Auth):
    await register(auth)
    challenge = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    code = auth.smtp.mailbox.code_in(await auth.smtp.mailbox.arrival("ada@example.com"))
    auth.clock.offset += timedelta(seconds=301)
    info = decode_rpc_error(
        await rpc_error(
            auth.stub.VerifyOtp(
                auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=code)
            )
        )
    )
    assert (info.code, info.reason) == (grpc.StatusCode.UNAUTHENTICATED, "otp_expired")


async def test_a_code_works_once(auth: Auth):
    await register(auth)
    challenge = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    code = auth.smtp.mailbox.code_in(await auth.smtp.mailbox.arrival("ada@example.com"))
    request = auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=code)
    await auth.stub.VerifyOtp(request)
    info = decode_rpc_error(await rpc_error(auth.stub.VerifyOtp(request)))
    assert info.reason == "challenge_not_found"


async def test_refresh_rotates_and_reuse_revokes_the_family(auth: Auth):
    await register(auth)
    first = (await login(auth)).tokens
    second = (
        await auth.stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
        )
    ).tokens
    assert second.refresh_token != first.refresh_token
    assert (
        jwt.decode(second.access_token, options={"verify_signature": False})["sid"]
        == jwt.decode(first.access_token, options={"verify_signature": False})["sid"]
    )
    reused = decode_rpc_error(
        await rpc_error(
            auth.stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token))
        )
    )
    assert (reused.code, reused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "refresh_token_reused")
    revoked = decode_rpc_error(
        await rpc_error(
            auth.stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=second.refresh_token))
        )
    )
    assert revoked.reason == "session_revoked"


async def test_unknown_refresh_token_is_refused(auth: Auth):
    info = decode_rpc_error(
        await rpc_error(
            auth.stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token="made-up"))
        )
    )
    assert info.reason == "invalid_refresh_token"


async def test_logout_revokes_the_session(auth: Auth):
    user = await register(auth)
    tokens = (await login(auth)).tokens
    sid = jwt.decode(tokens.access_token, options={"verify_signature": False})["sid"]
    await auth.stub.Logout(auth_pb2.LogoutRequest(user_id=user.id, session_id=sid))
    info = decode_rpc_error(
        await rpc_error(
            auth.stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token))
        )
    )
    assert info.reason == "session_revoked"


async def test_logout_cannot_touch_another_users_session(auth: Auth):
    await register(auth)
    tokens = (await login(auth)).tokens
    sid = jwt.decode(tokens.access_token, options={"verify_signature": False})["sid"]
    await auth.stub.Logout(auth_pb2.LogoutRequest(user_id="someone-else", session_id=sid))
    await auth.stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token))


async def test_profile_get_and_patch(auth: Auth):
    user = await register(auth)
    await register(auth, wallet=OTHER_WALLET, email="bob@example.com", username="bob")
    got = (await auth.stub.GetProfile(auth_pb2.GetProfileRequest(user_id=user.id))).user
    assert got.wallet_address == WALLET_CHECKSUMMED
    patched = (
        await auth.stub.UpdateProfile(
            auth_pb2.UpdateProfileRequest(user_id=user.id, username="ada_99")
        )
    ).user
    assert patched.username == "ada_99"
    assert patched.updated_at.ToDatetime() >= got.updated_at.ToDatetime()
    taken = decode_rpc_error(
        await rpc_error(
            auth.stub.UpdateProfile(auth_pb2.UpdateProfileRequest(user_id=user.id, username="BOB"))
        )
    )
    assert taken.reason == "username_taken"
    missing = decode_rpc_error(
        await rpc_error(auth.stub.GetProfile(auth_pb2.GetProfileRequest(user_id="nope")))
    )
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "user_not_found")


async def test_create_admin_promotes_a_verified_wallet_and_the_token_says_admin(auth: Auth):
    owner = Account.create()
    user = await register(auth, wallet=owner.address)
    challenge = await auth.stub.CreateWalletChallenge(
        auth_pb2.CreateWalletChallengeRequest(user_id=user.id)
    )
    signed = Account.sign_message(encode_defunct(text=challenge.message), owner.key)
    await auth.stub.VerifyWallet(
        auth_pb2.VerifyWalletRequest(
            user_id=user.id, message=challenge.message, signature="0x" + signed.signature.hex()
        )
    )
    client = mongo_client(auth.settings.service.mongodb_uri, app_name="tests")
    try:
        store = AuthStore(client, auth.settings.service.mongodb_database)
        user_id, changed = await create_admin(store, email="ADA@example.com")
    finally:
        await client.close()
    assert (user_id, changed) == (user.id, True)
    tokens = (await login(auth)).tokens
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["role"] == "admin"


async def test_code_is_never_logged_or_returned_without_dev_fallback(
    auth: Auth, caplog: pytest.LogCaptureFixture
):
    await register(auth)
    with caplog.at_level(logging.DEBUG):
        response = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
    code = auth.smtp.mailbox.code_in(await auth.smtp.mailbox.arrival("ada@example.com"))
    assert not response.HasField("dev_code")
    ours = [r for r in caplog.records if r.name != "mail.log"]  # mail.log: the test SMTP server
    assert ours, "the service logged nothing at all; the check would prove nothing"
    assert all(code not in str(vars(record)) for record in ours)


async def test_dev_fallback_returns_the_code_without_smtp(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
):
    settings = make_settings(
        tmp_path,
        mongodb_uri,
        database_name,
        smtp_server,
        ENABLE_DEV_OTP_FALLBACK="true",
        SMTP_HOST="",
    )
    async for auth in start_auth(settings, Clock(), smtp_server):
        await register(auth, phone="+14155550123")
        challenge = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(phone="+14155550123"))
        assert challenge.channel == "sms"
        assert len(challenge.dev_code) == 6
        await auth.stub.VerifyOtp(
            auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=challenge.dev_code)
        )


async def test_no_delivery_and_no_fallback_is_unavailable(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
):
    settings = replace(make_settings(tmp_path, mongodb_uri, database_name, smtp_server), smtp=None)
    async for auth in start_auth(settings, Clock(), smtp_server):
        await register(auth)
        info = decode_rpc_error(
            await rpc_error(
                auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
            )
        )
        assert (info.code, info.reason) == (grpc.StatusCode.UNAVAILABLE, "delivery_unavailable")


async def test_unreachable_smtp_is_counted_and_releases_the_cooldown(
    tmp_path: Path,
    mongodb_uri: str,
    database_name: str,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
):
    settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server)
    assert settings.smtp is not None
    dead = replace(settings, smtp=replace(settings.smtp, port=1, timeout_seconds=1))
    failures = delivery_failures("connection")
    async for auth in start_auth(dead, Clock(), smtp_server):
        await register(auth)
        request = auth_pb2.RequestOtpRequest(email="ada@example.com")
        with caplog.at_level(logging.WARNING, logger="services.auth.delivery"):
            await auth.stub.RequestOtp(request)  # answered at once, like any other
            await until(lambda: delivery_failures("connection") == failures + 1)
        logged = [vars(r) for r in caplog.records if r.msg == "otp delivery failed"]
        assert [line["reason"] for line in logged] == ["connection"]
        await auth.stub.RequestOtp(request)  # a failed send does not hold the cooldown


async def test_health_answers_serving(auth: Auth):
    """Reflection (off unless GRPC_REFLECTION=true) is tested in test_internal_auth.py."""
    health = health_pb2_grpc.HealthStub(auth.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_concurrent_registrations_of_one_wallet_create_one_account(auth: Auth):
    requests = [
        auth.stub.Register(
            auth_pb2.RegisterRequest(wallet_address=WALLET, email=f"u{i}@example.com")
        )
        for i in range(20)
    ]
    results = await asyncio.gather(*requests, return_exceptions=True)
    created = [r for r in results if isinstance(r, auth_pb2.RegisterResponse)]
    refused = [decode_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert len(refused) == 19
    assert {info.reason for info in refused} == {"wallet_taken"}


async def test_concurrent_otp_requests_send_one_code(auth: Auth):
    await register(auth)
    request = auth_pb2.RequestOtpRequest(email="ada@example.com")
    results = await asyncio.gather(
        *(auth.stub.RequestOtp(request) for _ in range(10)), return_exceptions=True
    )
    sent = [r for r in results if isinstance(r, auth_pb2.RequestOtpResponse)]
    refused = [decode_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(sent) == 1
    assert {info.reason for info in refused} == {"otp_cooldown"}
    await auth.smtp.mailbox.arrival("ada@example.com")
    await asyncio.sleep(0.2)
    mails = [m for rcpts, m in auth.smtp.mailbox.messages if "ada@example.com" in rcpts]
    assert len(mails) == 1


async def test_concurrent_refreshes_of_one_token_rotate_once(auth: Auth):
    await register(auth)
    tokens = (await login(auth)).tokens
    request = auth_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token)
    results = await asyncio.gather(
        *(auth.stub.RefreshToken(request) for _ in range(10)), return_exceptions=True
    )
    rotated = [r for r in results if isinstance(r, auth_pb2.RefreshTokenResponse)]
    assert len(rotated) == 1, "a refresh token is used exactly once"
    refused = {decode_rpc_error(r).reason for r in results if isinstance(r, grpc.aio.AioRpcError)}
    assert refused == {"refresh_token_reused"}
