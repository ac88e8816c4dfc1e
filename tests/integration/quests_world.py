"""The quests service on the real Redis and MongoDB-wire servers, with real
auth and wallet services beside it and an injected clock: what the quests
integration tests (the catalogue and completions, daily rewards) run on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from minequest.auth.v1 import auth_pb2_grpc
from minequest.quests.v1 import quests_pb2_grpc
from minequest.wallet.v1 import wallet_pb2_grpc
from services.auth.server import auth_lifespan
from services.quests.settings import QuestsSettings
from services.wallet.server import wallet_lifespan
from tests.integration.conftest import (
    SmtpServer,
    auth_settings,
    quests_channel,
    quests_settings,
    served_address,
    wallet_settings,
)

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from minequest.quests.v1.quests_pb2_grpc import QuestsServiceAsyncStub as Stub
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub

#: 10:00 UTC on a Sunday.
DAY1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


class Clock:
    """The service's clock, moved by the test (no sleeping)."""

    def __init__(self, now: datetime = DAY1) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Stores:
    """The test's databases and the auth and wallet services running on them."""

    mongodb_uri: str
    redis_url: str
    database: str
    auth_addr: str
    wallet_addr: str

    def settings(self, **extra: str) -> QuestsSettings:
        return quests_settings(
            self.mongodb_uri,
            self.redis_url,
            self.database,
            auth_addr=self.auth_addr,
            wallet_addr=self.wallet_addr,
            **extra,
        )


@dataclass
class World:
    quests: Stub
    wallet: WalletServiceAsyncStub
    auth: AuthServiceAsyncStub
    clock: Clock
    settings: QuestsSettings
    wallet_addr: str


@asynccontextmanager
async def open_stores(
    tmp_path: Path,
    mongodb_uri: str,
    redis_url: str,
    database_name: str,
    smtp_server: SmtpServer,
) -> AsyncIterator[Stores]:
    """Real auth and wallet services on the test's databases."""
    auth = auth_settings(tmp_path, mongodb_uri, f"{database_name}_auth", smtp_server.port)
    wallet = wallet_settings(mongodb_uri, f"{database_name}_wallet")
    async with (
        served_address(auth_lifespan(auth)) as auth_addr,
        served_address(wallet_lifespan(wallet)) as wallet_addr,
    ):
        yield Stores(mongodb_uri, redis_url, database_name, auth_addr, wallet_addr)


@asynccontextmanager
async def running(stores: Stores, clock: Clock, **extra: str) -> AsyncIterator[World]:
    """The quests service with ``extra`` settings, and stubs of all three."""
    settings = stores.settings(**extra)
    async with (
        quests_channel(settings, clock) as channel,
        grpc.aio.insecure_channel(stores.wallet_addr) as wallet_channel,
        grpc.aio.insecure_channel(stores.auth_addr) as auth_channel,
    ):
        yield World(
            quests_pb2_grpc.QuestsServiceStub(channel),
            wallet_pb2_grpc.WalletServiceStub(wallet_channel),
            auth_pb2_grpc.AuthServiceStub(auth_channel),
            clock,
            settings,
            stores.wallet_addr,
        )
