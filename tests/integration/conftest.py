"""Fixtures for service integration tests: a real SMTP server; the real Redis
and MongoDB-wire servers come from the session fixtures in tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from runtime.config import Env
from runtime.grpc_server import create_server
from services.auth.server import auth_lifespan
from services.auth.service import Clock, utcnow
from services.auth.settings import AuthSettings
from tests.mail import Mailbox, smtp_server


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


@pytest.fixture(name="smtp_server")
def _smtp_server() -> Iterator[SmtpServer]:
    with smtp_server() as mailbox:
        yield SmtpServer("127.0.0.1", mailbox.port, mailbox)


def auth_settings(
    tmp_path: Path, mongodb_uri: str, database: str, smtp_port: int, **extra: str
) -> AuthSettings:
    """Auth settings on the test's database, mailing a local SMTP server."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "AUTH_MONGODB_DATABASE": database,
        "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "keys" / "jwt.pem"),
        "AUTH_JWT_GENERATE_KEY": "true",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_FROM": "no-reply@minequest.test",
        **extra,
    }
    return AuthSettings.from_env(Env(env))


@asynccontextmanager
async def auth_channel(
    settings: AuthSettings, clock: Clock = utcnow
) -> AsyncIterator[grpc.aio.Channel]:
    """The real auth service on a free port, and a channel to it."""
    async with auth_lifespan(settings, clock=clock) as register:
        running = await create_server(register, port=0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                yield channel
        finally:
            await running.stop(1)
