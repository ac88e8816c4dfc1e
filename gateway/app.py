"""The Starlette application: middleware, routes, error handlers and the lifespan.

Middleware, outermost first: tracing (when an OTLP endpoint is set), the
edge (request id, metrics and access line in one layer), CORS (when origins
are configured), gzip, body limit. The lifespan opens every client — the
gRPC channel to each service, Redis and MongoDB when configured — hands them
to requests as :class:`gateway.state.Gateway`, keeps the JWK set fresh, and
closes them on shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from importlib import metadata

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from gateway import errors
from gateway.auth import TokenVerifier
from gateway.click_batcher import ClickBatcher
from gateway.middleware import BodyLimitMiddleware, EdgeMiddleware, TracingMiddleware
from gateway.openapi import build_openapi
from gateway.protection.clientip import TrustedProxies
from gateway.protection.store import Guard
from gateway.routes import ENDPOINTS
from gateway.routes.auth import fetch_jwk_set
from gateway.routing import Endpoint, Protection, build_routes
from gateway.settings import GatewaySettings
from gateway.state import Backend, Gateway, State
from gateway.web_app import web_app_routes
from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from minequest.mining.v1 import mining_pb2, mining_pb2_grpc
from minequest.quests.v1 import quests_pb2, quests_pb2_grpc
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.grpc_client import channel
from runtime.metrics import watch_event_loop_lag
from runtime.redis_pipe import PipelinedRedis
from runtime.stores import mongo_client, redis_client
from runtime.tasks import background

log = logging.getLogger(__name__)

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
WALLET_SERVICE = wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name
QUESTS_SERVICE = quests_pb2.DESCRIPTOR.services_by_name["QuestsService"].full_name
MINING_SERVICE = mining_pb2.DESCRIPTOR.services_by_name["MiningService"].full_name
EXPOSED_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "Location",
    "X-Idempotency",
    "X-Cache",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"]


def version() -> str:
    try:
        return metadata.version("minequest")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def create_app(settings: GatewaySettings, endpoints: Iterable[Endpoint] = ENDPOINTS) -> Starlette:
    rows = tuple(endpoints)
    openapi = build_openapi(rows, version=version())
    for pattern in settings.rate_limit_policies.unmatched_patterns(
        (row.method, row.path) for row in rows
    ):
        log.warning("rate-limit route pattern matches no route", extra={"pattern": pattern})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # Mutual TLS as "gateway" (settings.grpc_tls); each server must prove its name.
        tls, timeout = settings.grpc_tls, settings.grpc_timeout_seconds
        auth_channel = channel(settings.auth_service_addr, "auth", tls, default_timeout=timeout)
        auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
        wallet_channel = channel(
            settings.wallet_service_addr, "wallet", tls, default_timeout=timeout
        )
        quests_channel = channel(
            settings.quests_service_addr, "quests", tls, default_timeout=timeout
        )
        mining_channel = channel(
            settings.mining_service_addr, "mining", tls, default_timeout=timeout
        )

        verifier = TokenVerifier(
            lambda: fetch_jwk_set(auth),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            cache_size=settings.token_cache_size,
        )
        redis = redis_client(settings.redis_url) if settings.redis_url else None
        # Its own pipelined connection with the guard's short timeout: the hot
        # path must not queue behind slower calls or wait on a dead Redis.
        guard_redis = (
            PipelinedRedis(settings.redis_url, timeout_seconds=settings.guard_redis_timeout_seconds)
            if settings.redis_url
            else None
        )
        if guard_redis is None:
            log.warning(
                "REDIS_URL is unset: rate limits and idempotency cannot work; "
                "fail-open routes run unprotected, fail-closed routes answer 503"
            )
        mongo = (
            mongo_client(settings.mongodb_uri, app_name="gateway", server_selection_timeout_ms=1000)
            if settings.mongodb_uri
            else None
        )
        mining = mining_pb2_grpc.MiningServiceStub(mining_channel)
        clicks = ClickBatcher(
            mining,
            max_clicks=settings.click_batch_max,
            window_seconds=settings.click_batch_window_seconds,
        )
        gateway = Gateway(
            settings=settings,
            auth=auth,
            wallet=wallet_pb2_grpc.WalletServiceStub(wallet_channel),
            quests=quests_pb2_grpc.QuestsServiceStub(quests_channel),
            mining=mining,
            clicks=clicks,
            backends=(
                Backend("auth", AUTH_SERVICE, auth_channel),
                Backend("wallet", WALLET_SERVICE, wallet_channel),
                Backend("quests", QUESTS_SERVICE, quests_channel),
                Backend("mining", MINING_SERVICE, mining_channel),
            ),
            verifier=verifier,
            guard=Guard(
                guard_redis,
                lease_ms=int(settings.idempotency_lease_seconds * 1000),
                retention_ms=settings.idempotency_retention_seconds * 1000,
            ),
            redis=redis,
            mongo=mongo,
            openapi=openapi,
            version=version(),
            started_at=time.monotonic(),
        )
        log.info(
            "gateway ready",
            extra={
                "auth_service": settings.auth_service_addr,
                "wallet_service": settings.wallet_service_addr,
                "quests_service": settings.quests_service_addr,
                "mining_service": settings.mining_service_addr,
                "redis": redis is not None,
                "mongodb": mongo is not None,
            },
        )
        try:
            async with (
                background(verifier.keep_fresh(settings.jwks_refresh_seconds), "jwks-refresh"),
                background(watch_event_loop_lag(), "event-loop-lag"),
            ):
                yield {"gateway": gateway}
        finally:
            await clicks.close()
            await auth_channel.close()
            await wallet_channel.close()
            await quests_channel.close()
            await mining_channel.close()
            if redis is not None:
                await redis.aclose()
            if guard_redis is not None:
                await guard_redis.close()
            if mongo is not None:
                await mongo.close()
            log.info("gateway clients closed")

    middleware = [Middleware(EdgeMiddleware)]
    if settings.otlp_endpoint:  # HTTP server spans, around everything else
        middleware.insert(0, Middleware(TracingMiddleware))
    if settings.cors_allow_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_allow_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=ALLOWED_HEADERS,
                expose_headers=EXPOSED_HEADERS,
                max_age=600,
            )
        )
    middleware += [
        Middleware(GZipMiddleware, minimum_size=1024),
        Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes),
    ]
    return Starlette(
        routes=[
            *build_routes(
                rows,
                Protection(settings.rate_limit_policies, TrustedProxies(settings.trusted_proxies)),
            ),
            *web_app_routes(settings.web_dir),
        ],
        middleware=middleware,
        exception_handlers={
            HTTPException: errors.handle_http_exception,
            Exception: errors.handle_unexpected,
        },
        lifespan=lifespan,
    )
