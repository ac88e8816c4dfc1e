"""Wiring of the auth service process: its resources and its gRPC registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.grpc_server import Registrar
from runtime.stores import mongo_client
from services.auth.keys import SigningKey, load_signing_key
from services.auth.mailer import SmtpCodeSender
from services.auth.service import AuthService, Clock, utcnow
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


@asynccontextmanager
async def auth_lifespan(
    settings: AuthSettings, key: SigningKey | None = None, clock: Clock = utcnow
) -> AsyncIterator[Registrar]:
    """Open the MongoDB client (and the key, unless given), yield the registrar,
    close on exit."""
    key = key or load_signing_key(settings.jwt_private_key_file, generate=settings.jwt_generate_key)
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-auth")
    try:
        store = AuthStore(client, settings.service.mongodb_database)
        await store.ensure_indexes()
        service = AuthService(settings, store, key, SmtpCodeSender(settings.smtp), clock)

        def register(server: grpc.aio.Server) -> list[str]:
            auth_pb2_grpc.add_AuthServiceServicer_to_server(service, server)
            return [SERVICE_NAME]

        yield register
    finally:
        await client.close()
