"""Fixtures for service integration tests: a real SMTP server, and the auth
and wallet services in process on free ports; the real Redis and
MongoDB-wire servers come from the session fixtures in tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from runtime.config import Env
from runtime.grpc_server import Registrar, create_server
from services.auth.server import auth_lifespan
from services.auth.service import Clock, utcnow
from services.auth.settings import AuthSettings
from services.wallet.server import wallet_lifespan
from services.wallet.settings import WalletSettings
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
async def served_channel(
    lifespan: AbstractAsyncContextManager[Registrar],
) -> AsyncIterator[grpc.aio.Channel]:
    """A real service (its lifespan's registrar) on a free port, and a channel to it."""
    async with lifespan as register:
        running = await create_server(register, port=0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                yield channel
        finally:
            await running.stop(1)


def auth_channel(
    settings: AuthSettings, clock: Clock = utcnow
) -> AbstractAsyncContextManager[grpc.aio.Channel]:
    """The real auth service on a free port, and a channel to it."""
    return served_channel(auth_lifespan(settings, clock=clock))


#: Deposit wallets of the wallet tests (the EIP-55 example address; a real tron address).
WALLET_TEST_ENV = {
    "WALLET_CURRENCIES": "MQC:8,USDT:6",
    "WALLET_MINED_CURRENCY": "MQC",
    "WALLET_DEPOSIT_WALLETS": (
        "USDT:ethereum:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed,"
        "USDT:tron:TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    ),
    "WALLET_WITHDRAWAL_CHAINS": "MQC:ethereum,USDT:ethereum,USDT:tron",
    "WALLET_WITHDRAWAL_LIMITS": "MQC:1:1000:100000,USDT:5:1000:2000",
}


def wallet_settings(mongodb_uri: str, database: str, **extra: str) -> WalletSettings:
    """Wallet settings on the test's database (no metrics port)."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "WALLET_MONGODB_DATABASE": database,
        "WALLET_METRICS_PORT": "0",
        **WALLET_TEST_ENV,
        **extra,
    }
    return WalletSettings.from_env(Env(env))


def wallet_channel(settings: WalletSettings) -> AbstractAsyncContextManager[grpc.aio.Channel]:
    """The real wallet service on a free port, and a channel to it."""
    return served_channel(wallet_lifespan(settings))
