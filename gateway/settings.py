"""The gateway's configuration, read once from the environment.

A bad value raises :class:`runtime.config.ConfigError` naming the variable;
``python -m gateway`` turns that into one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gateway.protection.clientip import Network, parse_networks
from gateway.protection.model import PolicySet
from gateway.protection.policy import load_policies
from gateway.web_app import DEFAULT_WEB_DIR
from runtime.config import LOG_LEVELS, ConfigError, Env, default_service_addr, gc_threshold
from runtime.tls import TlsSettings, load_tls


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str
    port: int
    auth_service_addr: str
    redis_url: str | None
    mongodb_uri: str | None
    cors_allow_origins: tuple[str, ...]
    max_body_bytes: int
    grpc_timeout_seconds: float
    jwt_issuer: str
    jwt_audience: str
    jwks_min_refresh_seconds: float
    token_cache_size: int
    log_level: str
    otlp_endpoint: str | None
    shutdown_grace_seconds: float
    gc_threshold: int
    rate_limit_policies: PolicySet
    trusted_proxies: tuple[Network, ...]
    guard_redis_timeout_seconds: float
    idempotency_lease_seconds: float
    idempotency_retention_seconds: int
    wallet_service_addr: str = default_service_addr("wallet")
    quests_service_addr: str = default_service_addr("quests")
    mining_service_addr: str = default_service_addr("mining")
    #: Shared secret of the deposit provider's webhook; None: the route answers 503.
    deposit_webhook_secret: str | None = None
    deposit_webhook_tolerance_seconds: int = 300
    #: Prometheus ``/metrics``, on an internal address (None: off).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9100
    #: How often the JWK set is re-read, so a withdrawn key stops working.
    jwks_refresh_seconds: float = 15.0
    #: The request line and headers together, and how many headers (431 above).
    max_header_bytes: int = 16_384
    max_header_count: int = 100
    #: The gateway's mTLS identity to the services (``GRPC_TLS_*``); None: plaintext.
    grpc_tls: TlsSettings | None = None
    #: The web app's build, served at /app/ (``make web``; absent: /app/ says so).
    web_dir: Path = DEFAULT_WEB_DIR
    #: Clicks sent to the mining service in one call at most (1: one call each).
    click_batch_max: int = 100
    #: How long a click waits for others to join its call (0: one loop turn).
    click_batch_window_seconds: float = 0.002
    #: Gateway processes sharing the port (SO_REUSEPORT).
    workers: int = 1
    #: The suite's MongoDB databases (``<SERVICE>_MONGODB_DATABASE``), which
    #: the admin DB-stats routes report on (gateway/routes/admin_db.py).
    service_databases: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewaySettings:
        env = env or Env()
        return cls(
            host=env.string("GATEWAY_HOST", "127.0.0.1"),
            port=env.integer("GATEWAY_PORT", 8080, minimum=0, maximum=65535),
            auth_service_addr=env.service_addr("AUTH_SERVICE_ADDR", "auth"),
            redis_url=_url(env, "REDIS_URL", ("redis://", "rediss://", "unix://")),
            mongodb_uri=_url(env, "MONGODB_URI", ("mongodb://", "mongodb+srv://")),
            cors_allow_origins=_origins(env, "CORS_ALLOW_ORIGINS"),
            max_body_bytes=env.integer("MAX_BODY_BYTES", 1_048_576, minimum=1),
            grpc_timeout_seconds=env.number("GRPC_TIMEOUT_SECONDS", 5.0, minimum=0.01),
            jwt_issuer=env.string("JWT_ISSUER", "minequest"),
            jwt_audience=env.string("JWT_AUDIENCE", "minequest-api"),
            jwks_min_refresh_seconds=env.number("JWKS_MIN_REFRESH_SECONDS", 30.0, minimum=0),
            token_cache_size=env.integer("TOKEN_CACHE_SIZE", 100_000, minimum=0),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            otlp_endpoint=env.optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0),
            gc_threshold=gc_threshold(env),
            rate_limit_policies=load_policies(env),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
            guard_redis_timeout_seconds=env.integer("GUARD_REDIS_TIMEOUT_MS", 50, minimum=1) / 1000,
            idempotency_lease_seconds=env.number("IDEMPOTENCY_LEASE_SECONDS", 30.0, minimum=1),
            idempotency_retention_seconds=env.integer(
                "IDEMPOTENCY_RETENTION_SECONDS", 86_400, minimum=60
            ),
            wallet_service_addr=env.service_addr("WALLET_SERVICE_ADDR", "wallet"),
            quests_service_addr=env.service_addr("QUESTS_SERVICE_ADDR", "quests"),
            mining_service_addr=env.service_addr("MINING_SERVICE_ADDR", "mining"),
            deposit_webhook_secret=_secret(env, "DEPOSIT_WEBHOOK_SECRET"),
            deposit_webhook_tolerance_seconds=env.integer(
                "DEPOSIT_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1, maximum=3600
            ),
            metrics_host=env.string("GATEWAY_METRICS_HOST", "127.0.0.1"),
            metrics_port=env.integer("GATEWAY_METRICS_PORT", 9100, minimum=0, maximum=65535)
            or None,
            jwks_refresh_seconds=env.number("JWKS_REFRESH_SECONDS", 15.0, minimum=1),
            max_header_bytes=env.integer("MAX_HEADER_BYTES", 16_384, minimum=1024),
            max_header_count=env.integer("MAX_HEADER_COUNT", 100, minimum=10),
            grpc_tls=load_tls(env),
            web_dir=Path(env.string("GATEWAY_WEB_DIR", str(DEFAULT_WEB_DIR))),
            click_batch_max=env.integer("GATEWAY_CLICK_BATCH_MAX", 100, minimum=1, maximum=500),
            click_batch_window_seconds=env.number(
                "GATEWAY_CLICK_BATCH_WINDOW_MS", 2.0, minimum=0, maximum=50
            )
            / 1000,
            workers=env.integer("GATEWAY_WORKERS", os.cpu_count() or 1, minimum=1, maximum=64),
            service_databases=tuple(
                env.string(f"{name.upper()}_MONGODB_DATABASE", f"minequest_{name}")
                for name in ("auth", "wallet", "mining", "quests")
            ),
        )


def _url(env: Env, name: str, schemes: tuple[str, ...]) -> str | None:
    value = env.optional(name)
    if value is not None and not value.startswith(schemes):
        raise ConfigError(name, f"must start with one of {', '.join(schemes)}")
    return value


def _origins(env: Env, name: str) -> tuple[str, ...]:
    origins = tuple(env.csv(name, []))
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(name, f"origins must be '*' or start with http(s)://, got {origin!r}")
    return origins


def _networks(env: Env, name: str) -> tuple[Network, ...]:
    try:
        return parse_networks(env.csv(name, []))
    except ValueError as error:
        raise ConfigError(name, str(error)) from None


def _secret(env: Env, name: str) -> str | None:
    """An optional shared secret; when set, long enough not to be guessed."""
    value = env.optional(name)
    if value is not None and len(value) < 16:
        raise ConfigError(name, "must be at least 16 characters (or unset)")
    return value
