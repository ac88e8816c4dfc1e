"""Prometheus metrics shared by every process, and the metrics port.

gRPC metric names follow go-grpc-prometheus so that stock dashboards work:
``grpc_server_handled_total{grpc_service,grpc_method,grpc_code}``,
``grpc_server_handling_seconds`` and their ``grpc_client_*`` twins.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

GRPC_SERVER_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Server-side RPC latency.",
    ["grpc_service", "grpc_method"],
    buckets=_BUCKETS,
)
GRPC_SERVER_DENIED = Counter(
    "grpc_server_access_denied_total",
    "Internal calls refused by the access tables (runtime.access), by caller and reason.",
    ["grpc_service", "grpc_method", "caller", "reason"],
)
GRPC_CLIENT_HANDLED = Counter(
    "grpc_client_handled_total",
    "RPCs completed by clients, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "grpc_client_handling_seconds",
    "Client-side RPC latency.",
    ["grpc_service", "grpc_method"],
    buckets=_BUCKETS,
)


def split_method(full_method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> ``("pkg.Service", "Method")``."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service, method


def start_metrics_server(port: int | None, host: str) -> None:
    """Serve ``/metrics`` on ``host:port`` (port None disables it). Services bind
    it on the same host as their gRPC port: loopback in dev, all interfaces in
    containers."""
    if port:
        start_http_server(port, addr=host)


REDIS_LATENCY_MS = Histogram(
    "redis_latency_ms",
    "Redis round-trip latency in milliseconds, by operation.",
    ["operation"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000),
)

#: DESIGN.md's cache counters, shared by every process that caches (one
#: definition, so services that run in one test process never register twice).
CACHE_HITS = Counter("cache_hits_total", "Cache lookups answered from the cache.", ["cache"])
CACHE_MISSES = Counter("cache_misses_total", "Cache lookups that missed.", ["cache"])

#: The monitoring guide's store metrics, observed by the clients that
#: :mod:`runtime.stores` makes (so every process reports them the same way).
DB_QUERY_SECONDS = Histogram(
    "db_query_duration_seconds",
    "MongoDB command latency as the driver saw it (PyMongo command monitoring), "
    "by database, command and outcome (ok or error).",
    ["database", "command", "outcome"],
    buckets=_BUCKETS,
)
DB_POOL = Gauge(
    "db_connection_pool_size",
    "MongoDB driver connections by state: active (checked out), idle (open, "
    "not checked out) and waiting (callers queued for a connection), per client.",
    ["client", "state"],
    # the gateway's worker processes (prometheus_client multiprocess mode) add up
    multiprocess_mode="livesum",
)
REDIS_OPERATION_SECONDS = Histogram(
    "redis_operation_duration_seconds",
    "Redis command (or pipeline) latency as the client saw it, by command.",
    ["operation"],
    buckets=_BUCKETS,
)
EVENT_LOOP_LAG = Gauge(
    "asyncio_eventloop_lag_seconds",
    "How late the event loop ran a timer, last measured (the asyncio analogue "
    "of nodejs_eventloop_lag_seconds): high means callbacks hog the loop.",
    multiprocess_mode="livemax",  # the worst of the gateway's worker processes
)

#: Seconds between two event-loop lag probes.
LAG_PROBE_SECONDS = 0.5


async def watch_event_loop_lag(interval: float = LAG_PROBE_SECONDS) -> None:
    """Keep :data:`EVENT_LOOP_LAG` current until cancelled: sleep ``interval``
    and record how much later than asked the loop woke this task up."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        EVENT_LOOP_LAG.set(max(0.0, loop.time() - started - interval))
