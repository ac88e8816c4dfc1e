"""Wiring of the mining service process: its clients and its gRPC registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from minequest.auth.v1 import auth_pb2_grpc
from minequest.mining.v1 import mining_pb2, mining_pb2_grpc
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime.grpc_client import channel
from runtime.grpc_server import Registrar
from runtime.redis_pipe import PipelinedRedis
from runtime.stores import mongo_client, redis_client
from runtime.tasks import background
from services.mining.clicks import ClickGate
from services.mining.oversight import Oversight
from services.mining.purchases import Purchases
from services.mining.service import MiningService
from services.mining.settings import MiningSettings
from services.mining.store import MiningStore
from services.mining.suspects import SUSPECTS

#: How often the mining_suspect_accounts gauge is refreshed.
SUSPECT_GAUGE_SECONDS = 15.0

SERVICE_NAME = mining_pb2.DESCRIPTOR.services_by_name["MiningService"].full_name


@asynccontextmanager
async def mining_lifespan(settings: MiningSettings) -> AsyncIterator[Registrar]:
    """Open Redis (one pipelined connection: the hot path), MongoDB and the
    channel to the wallet (boost debits), a plain Redis client and a channel
    to auth for the suspects and leaderboards (services.mining.oversight), run
    the boost purchase sweeper and the suspect gauge, yield the registrar,
    close them all on exit."""
    assert settings.service.redis_url is not None  # required by MiningSettings
    redis = PipelinedRedis(
        settings.service.redis_url, timeout_seconds=settings.redis_timeout_seconds
    )
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-mining")
    boosts = settings.boosts
    wallet_channel = channel(boosts.wallet_service_addr, "wallet", settings.service.tls)
    # Suspects and leaderboards: off the hot path, on their own client; usernames from auth.
    reads = redis_client(settings.service.redis_url)
    auth_channel = channel(settings.leaderboards.auth_service_addr, "auth", settings.service.tls)
    try:
        store = MiningStore(client, settings.service.mongodb_database)
        gate = ClickGate(
            redis,
            settings.rules,
            settings.reward,
            max_depth=settings.queue_max_depth,
            status_ttl_seconds=settings.status_ttl_seconds,
            throttled_ttl_seconds=settings.throttled_status_ttl_seconds,
            boosts=boosts.catalogue.steps,
            shadow_key=SUSPECTS if settings.signals.shadow_mode else None,
        )
        purchases = Purchases(
            client,
            settings.service.mongodb_database,
            boosts.catalogue,
            wallet_pb2_grpc.WalletServiceStub(wallet_channel),
            redis,
            timeout_seconds=boosts.grpc_timeout_seconds,
        )
        await purchases.ensure_indexes()
        oversight = Oversight(
            reads,
            settings.signals,
            settings.leaderboards,
            settings.reward,
            auth=auth_pb2_grpc.AuthServiceStub(auth_channel),
        )
        service = MiningService(gate, store, purchases, oversight)
        sweeper = purchases.run_sweeper(boosts.sweep_seconds, boosts.sweep_age_seconds)

        def register(server: grpc.aio.Server) -> list[str]:
            mining_pb2_grpc.add_MiningServiceServicer_to_server(service, server)
            return [SERVICE_NAME]

        async with (
            background(sweeper, "boost-purchase-sweeper"),
            background(oversight.refresh_gauge(SUSPECT_GAUGE_SECONDS), "suspect-gauge"),
        ):
            yield register
    finally:
        await wallet_channel.close()
        await auth_channel.close()
        await reads.aclose()
        await redis.close()
        await client.close()
