"""Wiring of the mining service process: its clients and its gRPC registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from minequest.mining.v1 import mining_pb2, mining_pb2_grpc
from runtime.grpc_server import Registrar
from runtime.redis_pipe import PipelinedRedis
from runtime.stores import mongo_client
from services.mining.clicks import ClickGate
from services.mining.service import MiningService
from services.mining.settings import MiningSettings
from services.mining.store import MiningStore

SERVICE_NAME = mining_pb2.DESCRIPTOR.services_by_name["MiningService"].full_name


@asynccontextmanager
async def mining_lifespan(settings: MiningSettings) -> AsyncIterator[Registrar]:
    """Open Redis (one pipelined connection: the hot path) and MongoDB, yield
    the registrar, close both on exit."""
    assert settings.service.redis_url is not None  # required by MiningSettings
    redis = PipelinedRedis(
        settings.service.redis_url, timeout_seconds=settings.redis_timeout_seconds
    )
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-mining")
    try:
        store = MiningStore(client, settings.service.mongodb_database)
        gate = ClickGate(
            redis,
            settings.rules,
            settings.reward,
            max_depth=settings.queue_max_depth,
            status_ttl_seconds=settings.status_ttl_seconds,
            throttled_ttl_seconds=settings.throttled_status_ttl_seconds,
        )
        service = MiningService(gate, store)

        def register(server: grpc.aio.Server) -> list[str]:
            mining_pb2_grpc.add_MiningServiceServicer_to_server(service, server)
            return [SERVICE_NAME]

        yield register
    finally:
        await redis.close()
        await client.close()
