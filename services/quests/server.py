"""Wiring of the quests service process: its resources and its gRPC registration."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from minequest.auth.v1 import auth_pb2_grpc
from minequest.quests.v1 import quests_pb2, quests_pb2_grpc
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime.grpc_client import channel
from runtime.grpc_server import Registrar
from runtime.stores import mongo_client, redis_client
from services.quests.credits import Credits
from services.quests.leaderboard import Leaderboard
from services.quests.peers import Auth, Wallet
from services.quests.service import Clock, QuestsService, utcnow
from services.quests.settings import QuestsSettings
from services.quests.store import QuestsStore

SERVICE_NAME = quests_pb2.DESCRIPTOR.services_by_name["QuestsService"].full_name


@dataclass(slots=True)
class Parts:
    """The service's collaborators, for the commands and the tests."""

    store: QuestsStore
    leaderboard: Leaderboard
    credits: Credits
    service: QuestsService


@asynccontextmanager
async def quests_parts(settings: QuestsSettings, clock: Clock = utcnow) -> AsyncIterator[Parts]:
    """Open MongoDB, Redis and the channels to auth and wallet; close them on exit."""
    if settings.service.redis_url is None:  # from_env requires it; a guard for hand-made settings
        raise ValueError("the quests service needs REDIS_URL")
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-quests")
    redis = redis_client(settings.service.redis_url)
    auth_channel = channel(settings.auth_service_addr, "auth", settings.service.tls)
    wallet_channel = channel(settings.wallet_service_addr, "wallet", settings.service.tls)
    try:
        store = QuestsStore(client, settings.service.mongodb_database)
        await store.ensure_indexes()
        leaderboard = Leaderboard(redis, store, cache_seconds=settings.leaderboard_cache_seconds)
        auth = Auth(auth_pb2_grpc.AuthServiceStub(auth_channel))
        wallet = Wallet(wallet_pb2_grpc.WalletServiceStub(wallet_channel))
        credits = Credits(
            store, wallet, leaderboard, clock, min_age_seconds=settings.sweep_min_age_seconds
        )
        service = QuestsService(
            settings,
            store,
            leaderboard=leaderboard,
            credits=credits,
            auth=auth,
            wallet=wallet,
            clock=clock,
        )
        yield Parts(store, leaderboard, credits, service)
    finally:
        with contextlib.suppress(Exception):
            await auth_channel.close()
            await wallet_channel.close()
        await redis.aclose()
        await client.close()


@asynccontextmanager
async def quests_lifespan(
    settings: QuestsSettings, clock: Clock = utcnow, *, sweep: bool = True
) -> AsyncIterator[Registrar]:
    """The service's resources and, while it runs, the credit sweeper."""
    async with quests_parts(settings, clock) as parts:

        def register(server: grpc.aio.Server) -> list[str]:
            quests_pb2_grpc.add_QuestsServiceServicer_to_server(parts.service, server)
            return [SERVICE_NAME]

        if not sweep:
            yield register
            return
        async with parts.credits.sweeping(settings.sweep_interval_seconds):
            yield register
