"""Prometheus metrics shared by every process, and the metrics port.

gRPC metric names follow go-grpc-prometheus so that stock dashboards work:
``grpc_server_handled_total{grpc_service,grpc_method,grpc_code}``,
``grpc_server_handling_seconds`` and their ``grpc_client_*`` twins.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

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
