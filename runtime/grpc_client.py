"""gRPC channels between processes: request-id propagation, deadlines, metrics."""

from __future__ import annotations

import grpc

from runtime.interceptors import ClientInterceptor

_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # With a dns:/// target naming several replicas, spread calls over all of them.
    ("grpc.lb_policy_name", "round_robin"),
]


def insecure_channel(address: str, *, default_timeout: float = 5.0) -> grpc.aio.Channel:
    """A channel to ``host:port`` whose calls carry the current request id and
    get ``default_timeout`` seconds when the caller sets no deadline."""
    return grpc.aio.insecure_channel(
        address, options=_OPTIONS, interceptors=[ClientInterceptor(default_timeout)]
    )
