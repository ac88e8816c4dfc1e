"""Wiring of the wallet service process: its resources and its gRPC registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from minequest.auth.v1 import auth_pb2_grpc
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.grpc_client import channel
from runtime.grpc_server import Registrar
from runtime.stores import mongo_client
from services.wallet.metrics import PendingGauge
from services.wallet.owners import WalletOwners
from services.wallet.service import Clock, WalletService, utcnow
from services.wallet.settings import WalletSettings
from services.wallet.store import WalletStore

SERVICE_NAME = wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name


@asynccontextmanager
async def wallet_lifespan(
    settings: WalletSettings, clock: Clock = utcnow
) -> AsyncIterator[Registrar]:
    """Open the MongoDB client and the channel to auth (whose wallet is whose),
    keep the pending-withdrawals gauge fresh, yield the registrar, close on exit."""
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-wallet")
    auth_channel = channel(settings.auth_service_addr, "auth", settings.service.tls)
    try:
        store = WalletStore(client, settings.service.mongodb_database)
        await store.ensure_indexes()
        gauge = PendingGauge(
            store.pending_by_currency, settings.currencies, settings.metrics_refresh_seconds
        )
        owners = WalletOwners(auth_pb2_grpc.AuthServiceStub(auth_channel))
        service = WalletService(settings, store, owners, gauge, clock)

        def register(server: grpc.aio.Server) -> list[str]:
            wallet_pb2_grpc.add_WalletServiceServicer_to_server(service, server)
            return [SERVICE_NAME]

        async with gauge.running():
            yield register
    finally:
        await auth_channel.close()
        await client.close()
