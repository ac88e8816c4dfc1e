"""Fixtures for service integration tests: a real SMTP server, and the auth
and wallet services in process on free ports; the real Redis and
MongoDB-wire servers come from the session fixtures in tests/conftest.py."""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.config import Env
from runtime.errors import RpcErrorInfo, decode_rpc_error
from runtime.grpc_server import Registrar, create_server
from runtime.tls import TlsSettings, load_tls
from services.auth.server import auth_lifespan
from services.auth.service import Clock, utcnow
from services.auth.settings import AuthSettings
from services.mining.server import mining_lifespan
from services.mining.settings import MiningSettings
from services.quests.server import quests_lifespan
from services.quests.service import utcnow as quests_utcnow
from services.quests.settings import QuestsSettings
from services.wallet.server import wallet_lifespan
from services.wallet.settings import WalletSettings
from tests.mail import Mailbox, smtp_server
from tools import pki


async def refused(call: Any) -> RpcErrorInfo:
    """Await a gRPC call that must fail; what its status says."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return decode_rpc_error(caught.value)


async def fails(call: Any, code: grpc.StatusCode, reason: str | None = None) -> RpcErrorInfo:
    """Await ``call``; assert it failed with ``code`` (and ``reason``)."""
    info = await refused(call)
    assert info.code == code, info
    if reason is not None:
        assert info.reason == reason, info
    return info


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
    """Auth settings on the test's database, mailing a local SMTP server (the
    plaintext test server: ``SMTP_SECURITY=none`` unless ``extra`` says otherwise)."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "AUTH_MONGODB_DATABASE": database,
        "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "keys" / "jwt.pem"),
        "AUTH_JWT_GENERATE_KEY": "true",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_FROM": "no-reply@minequest.test",
        "SMTP_SECURITY": "none",
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


@asynccontextmanager
async def wallet_channel(settings: WalletSettings) -> AsyncIterator[grpc.aio.Channel]:
    """The real wallet service on a free port, and a channel to it; beside it a
    real auth service, which the wallet asks whose wallet a withdrawal goes to."""
    service = settings.service
    async with companion_auth(service.mongodb_uri, service.mongodb_database) as auth_addr:
        wired = dataclasses.replace(settings, auth_service_addr=auth_addr)
        async with served_channel(wallet_lifespan(wired)) as channel:
            yield channel


@asynccontextmanager
async def served_address(
    lifespan: AbstractAsyncContextManager[Registrar],
    tls: TlsSettings | None = None,
    *,
    reflection: bool = False,
) -> AsyncIterator[str]:
    """A real service (its lifespan's registrar) on a free port, and its address;
    with ``tls``, mutual TLS and the access tables."""
    async with lifespan as register:
        running = await create_server(register, port=0, tls=tls, reflection_on=reflection)
        try:
            yield f"127.0.0.1:{running.port}"
        finally:
            await running.stop(1)


@asynccontextmanager
async def companion_auth(mongodb_uri: str, database: str, **extra: str) -> AsyncIterator[str]:
    """A real auth service beside a service under test (the wallet asks it whose
    wallet a withdrawal goes to), on ``<database>_auth``; its address. ``extra``
    may carry a ``GRPC_TLS_*`` identity (then it serves mutual TLS)."""
    with tempfile.TemporaryDirectory() as keys:
        settings = AuthSettings.from_env(
            Env(
                {
                    "MONGODB_URI": mongodb_uri,
                    "AUTH_MONGODB_DATABASE": f"{database}_auth",
                    "AUTH_JWT_PRIVATE_KEY_FILE": str(Path(keys) / "jwt.pem"),
                    "AUTH_JWT_GENERATE_KEY": "true",
                    **extra,
                }
            )
        )
        async with served_address(auth_lifespan(settings), settings.service.tls) as address:
            yield address


def credit_request(user_id: str, amount: str = "50") -> wallet_pb2.CreditRequest:
    """One credit of ``amount`` MQC to ``user_id`` (as quests pays a reward)."""
    entry = wallet_pb2.CreditEntry(
        user_id=user_id,
        amount=common_pb2.Money(currency="MQC", amount=amount),
        source="quests.completion",
        source_id=uuid.uuid4().hex,
    )
    return wallet_pb2.CreditRequest(entries=[entry])


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An internal CA and a certificate for every identity (tools/pki.py)."""
    directory = tmp_path_factory.mktemp("pki")
    pki.ensure(directory)
    return directory


async def reflected(target: grpc.aio.Channel) -> set[str]:
    """The services a server lists through gRPC server reflection."""
    stub = reflection_pb2_grpc.ServerReflectionStub(target)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(ask(), timeout=5):
        names |= {service.name for service in reply.list_services_response.service}
    return names


def tls_of(directory: Path, name: str) -> TlsSettings:
    """The mutual-TLS settings of ``name``'s certificate in ``directory``."""
    tls = load_tls(Env(pki.identity_files(directory, name).env()))
    assert tls is not None
    return tls


def quests_settings(
    mongodb_uri: str,
    redis_url: str,
    database: str,
    *,
    auth_addr: str,
    wallet_addr: str,
    **extra: str,
) -> QuestsSettings:
    """Quests settings on the test's database, calling the given auth and wallet."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "REDIS_URL": redis_url,
        "QUESTS_MONGODB_DATABASE": database,
        "QUESTS_METRICS_PORT": "0",
        "AUTH_SERVICE_ADDR": auth_addr,
        "WALLET_SERVICE_ADDR": wallet_addr,
        **extra,
    }
    return QuestsSettings.from_env(Env(env))


def quests_channel(
    settings: QuestsSettings,
    clock: Callable[[], datetime] = quests_utcnow,
    *,
    sweep: bool = False,
) -> AbstractAsyncContextManager[grpc.aio.Channel]:
    """The real quests service on a free port (its sweeper off unless asked), and a
    channel to it."""
    return served_channel(quests_lifespan(settings, clock, sweep=sweep))


def mining_env(mongodb_uri: str, redis_url: str, database: str, **extra: str) -> Env:
    """Mining service and worker settings on the test's database and Redis."""
    return Env(
        {
            "MONGODB_URI": mongodb_uri,
            "REDIS_URL": redis_url,
            "MINING_MONGODB_DATABASE": database,
            "MINING_METRICS_PORT": "0",
            "MINING_WORKER_METRICS_PORT": "0",
            **extra,
        }
    )


def mining_channel(settings: MiningSettings) -> AbstractAsyncContextManager[grpc.aio.Channel]:
    """The real mining service on a free port, and a channel to it."""
    return served_channel(mining_lifespan(settings))
