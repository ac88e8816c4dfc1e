"""Wiring of the auth service process: its resources and its gRPC registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.grpc_server import Registrar
from runtime.stores import mongo_client
from services.auth.delivery import BackgroundDelivery
from services.auth.keys import PublicJwk, SigningKey, jwk_set, load_signing_key, load_verify_keys
from services.auth.mailer import CodeSender, SmtpCodeSender
from services.auth.service import AuthService, Clock, utcnow
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


@asynccontextmanager
async def auth_lifespan(
    settings: AuthSettings,
    key: SigningKey | None = None,
    clock: Clock = utcnow,
    sender: CodeSender | None = None,
    verify_keys: tuple[PublicJwk, ...] | None = None,
) -> AsyncIterator[Registrar]:
    """Open the MongoDB client and the background mail sender (and the keys,
    unless given), yield the registrar; on exit let the mails in flight finish
    within the grace period, then close."""
    key = key or load_signing_key(settings.jwt_private_key_file, generate=settings.jwt_generate_key)
    if verify_keys is None:
        verify_keys = load_verify_keys(settings.jwt_verify_key_files)
    published = jwk_set(key, verify_keys)
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-auth")
    delivery = BackgroundDelivery(
        sender or SmtpCodeSender(settings.smtp),
        concurrency=settings.mail_concurrency,
        queue_size=settings.mail_queue_size,
    )
    try:
        store = AuthStore(client, settings.service.mongodb_database)
        await store.ensure_indexes()
        service = AuthService(settings, store, key, delivery, clock=clock, jwks=published)

        def register(server: grpc.aio.Server) -> list[str]:
            auth_pb2_grpc.add_AuthServiceServicer_to_server(service, server)
            return [SERVICE_NAME]

        yield register
    finally:
        await delivery.drain(settings.service.shutdown_grace_seconds)
        await client.close()
