"""The gRPC server bootstrap every service uses.

``create_server`` builds and starts a ``grpc.aio`` server with our
interceptors and the standard health service (server reflection only when
asked: ``GRPC_REFLECTION=true``), and returns it with the port it bound
(tests pass port 0 and dial the real port). With TLS settings it serves
mutual TLS only (clients need a certificate from our CA) and authorises
every call by the caller's identity (:mod:`runtime.access`); without, it is
plaintext and lets everyone call everything.
``serve`` runs a whole service process: logging, tracing, the metrics port,
the service's own resources (its ``lifespan``), then waits for SIGTERM or
SIGINT, marks health NOT_SERVING, drains in-flight calls within the grace
period, and closes pools on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from runtime.access import ACCESS, is_open
from runtime.config import ServiceSettings, load_or_exit
from runtime.interceptors import AccessTable, ServerInterceptor
from runtime.metrics import watch_event_loop_lag
from runtime.process import MetricsPortUnavailable, start_process
from runtime.tasks import background
from runtime.tls import TlsSettings, announce, require_identity, server_credentials

log = logging.getLogger(__name__)

#: Registers servicers on a server and returns their full service names.
Registrar = Callable[[grpc.aio.Server], Sequence[str]]

_SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class PortInUse(OSError):
    """The gRPC port could not be bound."""


@dataclass(slots=True)
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    service_names: Sequence[str]

    async def stop(self, grace: float) -> None:
        """Mark every service NOT_SERVING, then drain in-flight calls."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def create_server(
    register: Registrar,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TlsSettings | None = None,
    reflection_on: bool = False,
    access: AccessTable = ACCESS,
) -> RunningServer:
    """Build, bind and start a server; port 0 picks a free port.

    ``tls``: serve mutual TLS and check each caller against ``access``;
    None: plaintext, no identities, nothing checked.
    """
    announce(tls)
    server = grpc.aio.server(
        interceptors=[ServerInterceptor(None if tls is None else access)],
        options=_SERVER_OPTIONS,
    )
    names = list(register(server))
    if tls is not None:
        for name in names:
            if name not in access and not is_open(name):
                log.error("%s has no access table in runtime.access: every call is refused", name)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if reflection_on:
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
    address = f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, server_credentials(tls))
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise PortInUse(f"cannot listen on {host}:{port} (is another process using it?)")
    await server.start()
    for name in ["", *names]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=bound, health=health, service_names=names)


async def serve(
    settings: ServiceSettings, lifespan: Callable[[], AbstractAsyncContextManager[Registrar]]
) -> None:
    """Run one service process until SIGTERM/SIGINT, then shut down gracefully.

    ``lifespan`` opens the service's resources (database and Redis clients)
    and yields the registrar; leaving it closes them, after the server has
    drained.
    """
    prefix = settings.service.upper()
    # A certificate made for another process would be refused by every peer.
    load_or_exit(lambda: require_identity(settings.tls, settings.service))
    try:
        shutdown_tracing = start_process(
            settings.service,
            log_level=settings.log_level,
            metrics_port=settings.metrics_port,
            metrics_host=settings.grpc_host,
            metrics_variable=f"{prefix}_METRICS_PORT",
            otlp_endpoint=settings.otlp_endpoint,
            gc_threshold=settings.gc_threshold,
        )
    except MetricsPortUnavailable as error:
        raise SystemExit(str(error)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with lifespan() as register:
            try:
                running = await create_server(
                    register,
                    host=settings.grpc_host,
                    port=settings.grpc_port,
                    tls=settings.tls,
                    reflection_on=settings.reflection,
                )
            except PortInUse as error:
                raise SystemExit(f"{prefix}_GRPC_PORT: {error}") from None
            log.info(
                "serving",
                extra={
                    "port": running.port,
                    "services": running.service_names,
                    "metrics_port": settings.metrics_port,
                    "tls_identity": settings.tls.identity if settings.tls else None,
                    "reflection": settings.reflection,
                },
            )
            async with background(watch_event_loop_lag(), "event-loop-lag"):
                await stop.wait()
            log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
            await running.stop(settings.shutdown_grace_seconds)
    except (PyMongoError, RedisError) as error:
        log.error("a store is unreachable", extra={"error": str(error)})
        raise SystemExit(
            f"{settings.service}: a store is unreachable ({type(error).__name__}); "
            "check MONGODB_URI / REDIS_URL"
        ) from None
    finally:
        shutdown_tracing()
        log.info("stopped")
