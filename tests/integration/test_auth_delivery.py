"""Code mails leave the request path: the answer does not wait for SMTP (so
its timing says nothing about the account), shutdown lets mails in flight
finish, and a mail that cannot be queued is a counted failure that releases
the requester's cooldown. A real, deliberately slow aiosmtpd server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiosmtpd.controller import Controller

from minequest.auth.v1 import auth_pb2
from runtime.embedded import free_port
from tests.integration.conftest import SmtpServer, fails
from tests.integration.test_auth_service import Auth, Clock, make_settings, register, start_auth
from tests.mail import Mailbox, delivery_failures, until

pytestmark = pytest.mark.integration

#: How long the slow server takes to accept a message.
SLOW = 1.5


class SlowMailbox(Mailbox):
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(SLOW)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    mailbox = SlowMailbox(free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", mailbox.port, mailbox)
    finally:
        controller.stop()


@pytest.fixture
def serve(tmp_path: Path, mongodb_uri: str, database_name: str, slow_smtp: SmtpServer):
    @asynccontextmanager
    async def start(**extra: str) -> AsyncIterator[Auth]:
        settings = make_settings(tmp_path, mongodb_uri, database_name, slow_smtp, **extra)
        async for auth in start_auth(settings, Clock(), slow_smtp):
            yield auth

    return start


async def timed_request(auth: Auth, email: str, ip: str = "") -> float:
    started = time.perf_counter()
    await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email=email, client_ip=ip))
    return time.perf_counter() - started


async def test_a_known_contact_is_answered_before_the_slow_mail_is_sent(serve):
    async with serve() as auth:
        await register(auth)
        await timed_request(auth, "warm@example.com", ip="192.0.2.1")  # connections, indexes
        known = await timed_request(auth, "ada@example.com")
        unknown = await timed_request(auth, "nobody@example.com")
        assert known < SLOW / 3, f"the answer waited for SMTP ({known:.3f} s)"
        assert unknown < SLOW / 3
        assert auth.smtp.mailbox.messages == [], "the mail is still on its way"
        await auth.smtp.mailbox.arrival("ada@example.com")


async def test_stopping_the_service_lets_the_mails_in_flight_finish(serve):
    async with serve() as auth:
        await register(auth)
        await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
        mailbox = auth.smtp.mailbox
    assert [rcpts for rcpts, _ in mailbox.messages] == [["ada@example.com"]]


async def test_a_full_queue_is_a_counted_failure_that_releases_the_cooldown(serve):
    async with serve(AUTH_MAIL_QUEUE_SIZE="1", AUTH_MAIL_CONCURRENCY="1") as auth:
        await register(auth)
        await register(auth, wallet="0xde709f2102306220921060314715629080e2fb77", email="b@x.io")
        before = delivery_failures("queue_full")
        await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
        await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="b@x.io"))
        await until(lambda: delivery_failures("queue_full") == before + 1)
        await until(lambda: bool(auth.smtp.mailbox.messages))
        await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="b@x.io"))
        await auth.smtp.mailbox.arrival("b@x.io")
        held = auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="ada@example.com"))
        await fails(held, grpc.StatusCode.RESOURCE_EXHAUSTED, "otp_cooldown")


async def test_the_dev_fallback_answers_an_unknown_contact_alike_and_it_never_verifies(
    tmp_path: Path, mongodb_uri: str, database_name: str, slow_smtp: SmtpServer
):
    settings = make_settings(
        tmp_path,
        mongodb_uri,
        database_name,
        slow_smtp,
        ENABLE_DEV_OTP_FALLBACK="true",
        SMTP_HOST="",
    )
    async for auth in start_auth(settings, Clock(), slow_smtp):
        await register(auth, phone="+14155550123")
        known = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(phone="+14155550123"))
        unknown = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(phone="+14155550124"))
        assert len(known.dev_code) == len(unknown.dev_code) == 6
        assert unknown.channel == known.channel == "sms"
        guess = auth_pb2.VerifyOtpRequest(challenge_id=unknown.challenge_id, code=unknown.dev_code)
        await fails(auth.stub.VerifyOtp(guess), grpc.StatusCode.UNAUTHENTICATED, "invalid_code")


async def test_while_sends_fail_an_unknown_contacts_cooldown_is_released_too(
    tmp_path: Path, mongodb_uri: str, database_name: str, slow_smtp: SmtpServer
):
    """Else the released cooldown of a failed send would tell who has an account."""
    settings = make_settings(
        tmp_path, mongodb_uri, database_name, slow_smtp, SMTP_PORT="1", SMTP_TIMEOUT_SECONDS="1"
    )
    before = delivery_failures("connection")
    async for auth in start_auth(settings, Clock(), slow_smtp):
        await register(auth)
        known = auth_pb2.RequestOtpRequest(email="ada@example.com", client_ip="192.0.2.5")
        unknown = auth_pb2.RequestOtpRequest(email="nobody@example.com", client_ip="192.0.2.5")
        await auth.stub.RequestOtp(known)
        await until(lambda: delivery_failures("connection") == before + 1)
        await asyncio.sleep(0.3)
        await auth.stub.RequestOtp(known)  # released: no otp_cooldown
        await auth.stub.RequestOtp(unknown)
        await asyncio.sleep(0.3)
        await auth.stub.RequestOtp(unknown)  # released alike
