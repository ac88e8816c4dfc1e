"""OTP login hardening over real gRPC, a real MongoDB-wire server and a real
SMTP server: the per-account guess guard, the mail's login key, retired
challenges, per-requester cooldowns and the hourly mail cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from minequest.auth.v1 import auth_pb2
from runtime.errors import decode_rpc_error
from tests.integration.conftest import SmtpServer, fails
from tests.integration.test_auth_service import Auth, Clock, make_settings, register, start_auth

pytestmark = pytest.mark.integration

ADA = "ada@example.com"
LOCKED = grpc.StatusCode.RESOURCE_EXHAUSTED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture
def serve(tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer):
    """The auth service with extra settings."""

    @asynccontextmanager
    async def start(**extra: str) -> AsyncIterator[Auth]:
        settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server, **extra)
        async for auth in start_auth(settings, Clock(), smtp_server):
            yield auth

    return start


async def ask(auth: Auth, email: str = ADA, ip: str = "") -> auth_pb2.RequestOtpResponse:
    return await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email=email, client_ip=ip))


async def mail_parts(auth: Auth, nth: int, email: str = ADA) -> tuple[str, str]:
    """The code and the login key of the ``nth`` mail to ``email``."""
    mail = await auth.smtp.mailbox.arrival(email, count=nth)
    return auth.smtp.mailbox.code_in(mail), auth.smtp.mailbox.key_in(mail)


def verify(auth: Auth, challenge_id: str, code: str) -> Awaitable[Any]:
    return auth.stub.VerifyOtp(auth_pb2.VerifyOtpRequest(challenge_id=challenge_id, code=code))


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_wrong_codes_back_off_and_a_locked_code_is_not_even_checked(serve):
    async with serve() as auth:
        await register(auth)
        challenge = await ask(auth)
        code, _ = await mail_parts(auth, 1)
        for left in (4, 3, 2, 1):  # three free, the fourth starts a 30 s lock
            info = await fails(
                verify(auth, challenge.challenge_id, wrong(code)), UNAUTH, "invalid_code"
            )
            assert info.metadata["attempts_left"] == str(left)
        locked = await fails(verify(auth, challenge.challenge_id, code), LOCKED, "otp_locked")
        assert locked.retry_after is not None
        assert 25 <= locked.retry_after <= 30
        auth.clock.offset += timedelta(seconds=31)
        # the right code during the lock was neither checked nor counted: it still works
        result = await auth.stub.VerifyOtp(
            auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=code)
        )
        assert result.tokens.access_token
        # a login resets the guard: the next wrong code is free again
        auth.clock.offset += timedelta(seconds=61)
        second = await ask(auth)
        code, _ = await mail_parts(auth, 2)
        await fails(verify(auth, second.challenge_id, wrong(code)), UNAUTH, "invalid_code")
        await fails(verify(auth, second.challenge_id, wrong(code)), UNAUTH, "invalid_code")


async def test_the_guard_counts_across_challenges_up_to_the_daily_budget(serve):
    async with serve(
        AUTH_OTP_RESEND_COOLDOWN_SECONDS="0",
        AUTH_OTP_FREE_FAILURES="1",
        AUTH_OTP_BACKOFF_BASE_SECONDS="2",
        AUTH_OTP_BACKOFF_MAX_SECONDS="4",
        AUTH_OTP_DAILY_FAILURE_BUDGET="4",
    ) as auth:
        await register(auth)
        for nth in range(1, 5):  # a new challenge for every guess
            challenge = await ask(auth)
            code, _ = await mail_parts(auth, nth)
            await fails(verify(auth, challenge.challenge_id, wrong(code)), UNAUTH, "invalid_code")
            auth.clock.offset += timedelta(seconds=5)  # past each back-off
        challenge = await ask(auth)
        code, _ = await mail_parts(auth, 5)
        spent = await fails(verify(auth, challenge.challenge_id, code), LOCKED, "otp_locked")
        assert spent.retry_after is not None
        assert 86_000 < spent.retry_after <= 86_400, "the budget holds for the rest of the day"
        auth.clock.offset += timedelta(days=1)
        challenge = await ask(auth)
        code, _ = await mail_parts(auth, 6)
        await auth.stub.VerifyOtp(
            auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=code)
        )


async def test_the_mails_login_key_works_while_short_codes_are_locked(serve):
    async with serve(AUTH_OTP_DAILY_FAILURE_BUDGET="5", AUTH_OTP_FREE_FAILURES="5") as auth:
        await register(auth)
        challenge = await ask(auth)
        code, key = await mail_parts(auth, 1)
        for _ in range(5):
            await fails(verify(auth, challenge.challenge_id, wrong(code)), UNAUTH, "invalid_code")
        await fails(verify(auth, challenge.challenge_id, code), LOCKED)  # budget spent, tries spent
        assert len(key) >= 22, "at least 128 bits"
        result = await auth.stub.VerifyOtp(
            auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=key)
        )
        assert result.user.email == ADA
        await fails(verify(auth, challenge.challenge_id, key), NOT_FOUND, "challenge_not_found")


async def test_a_wrong_key_is_refused_without_counting_and_an_old_key_expires(serve):
    async with serve() as auth:
        await register(auth)
        challenge = await ask(auth)
        code, key = await mail_parts(auth, 1)
        forged = key[:-1] + ("B" if key.endswith("A") else "A")
        for _ in range(10):
            info = await fails(verify(auth, challenge.challenge_id, forged), UNAUTH, "invalid_code")
            assert "attempts_left" not in info.metadata
        await fails(verify(auth, challenge.challenge_id, wrong(code)), UNAUTH, "invalid_code")
        auth.clock.offset += timedelta(seconds=301)
        await fails(verify(auth, challenge.challenge_id, key), UNAUTH, "otp_expired")


async def test_a_new_challenge_retires_the_older_ones(serve):
    async with serve() as auth:
        await register(auth)
        first = await ask(auth, ip="198.51.100.1")
        old_code, old_key = await mail_parts(auth, 1)
        second = await ask(auth, ip="198.51.100.2")
        code, _ = await mail_parts(auth, 2)
        for guess in (old_code, old_key):
            await fails(verify(auth, first.challenge_id, guess), NOT_FOUND, "challenge_superseded")
        await auth.stub.VerifyOtp(
            auth_pb2.VerifyOtpRequest(challenge_id=second.challenge_id, code=code)
        )


async def test_the_resend_cooldown_is_per_requester(serve):
    async with serve() as auth:
        await register(auth)
        await ask(auth, ip="203.0.113.7")
        held = await fails(ask(auth, ip="203.0.113.7"), LOCKED, "otp_cooldown")
        assert held.retry_after is not None
        await ask(auth, ip="203.0.113.8")  # someone else cannot hold the owner's cooldown
        await ask(auth)  # internal callers (no client_ip) are one more requester
        await fails(ask(auth), LOCKED, "otp_cooldown")
        await ask(auth, ip="2001:db8:1:2::1")
        await fails(ask(auth, ip="2001:db8:1:2::99"), LOCKED, "otp_cooldown")  # one /64
        await fails(ask(auth, ip="not-an-ip"), grpc.StatusCode.INVALID_ARGUMENT)


async def test_the_hourly_cap_bounds_mails_to_a_contact_known_or_not(serve):
    async with serve(AUTH_OTP_MAILS_PER_HOUR="3") as auth:
        await register(auth)
        for email in (ADA, "nobody@example.com"):  # the same answers either way
            for n in range(3):
                await ask(auth, email, ip=f"192.0.2.{n}")
            capped = await fails(ask(auth, email, ip="192.0.2.99"), LOCKED, "too_many_codes")
            assert capped.retry_after is not None
            assert 3500 < capped.retry_after <= 3600
        auth.clock.offset += timedelta(seconds=3601)
        await ask(auth, ip="192.0.2.99")


async def test_the_mail_carries_a_link_that_logs_in(serve):
    template = "https://app.example.com/login#challenge={challengeId}&key={key}"
    async with serve(AUTH_LOGIN_LINK_URL=template) as auth:
        await register(auth)
        challenge = await ask(auth)
        mail = await auth.smtp.mailbox.arrival(ADA)
        link = auth.smtp.mailbox.link_in(mail)
        key = auth.smtp.mailbox.key_in(mail)
        assert link == template.format(challengeId=challenge.challenge_id, key=key)
        await auth.stub.VerifyOtp(
            auth_pb2.VerifyOtpRequest(challenge_id=challenge.challenge_id, code=key)
        )


async def test_concurrent_guesses_cannot_slip_past_the_lock(serve):
    async with serve(AUTH_OTP_FREE_FAILURES="0", AUTH_OTP_MAX_ATTEMPTS="20") as auth:
        await register(auth)
        challenge = await ask(auth)
        code, _ = await mail_parts(auth, 1)
        guesses = [verify(auth, challenge.challenge_id, wrong(code)) for _ in range(10)]
        results = await asyncio.gather(*guesses, return_exceptions=True)
        reasons = [
            decode_rpc_error(r).reason for r in results if isinstance(r, grpc.aio.AioRpcError)
        ]
        assert reasons.count("invalid_code") == 1, reasons
        assert reasons.count("otp_locked") == 9
