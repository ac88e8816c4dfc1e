"""gRPC channels between processes: mutual TLS to a named peer, request-id and
end-user propagation, deadlines, metrics.

:func:`channel` is the one way a process dials another: give it the target,
the identity the server must prove (its certificate's name: ``"wallet"``)
and this process's TLS settings (``settings.service.tls``; None: plaintext).
"""

from __future__ import annotations

from typing import Any

import grpc

from runtime.interceptors import ClientInterceptor
from runtime.tls import TlsSettings, announce, channel_credentials, target_options

_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # With a dns:/// target naming several replicas, spread calls over all of them.
    ("grpc.lb_policy_name", "round_robin"),
    # A restarted peer is dialled again within 0.2-2 s (gRPC's defaults grow
    # to 120 s): until then its calls fail fast (UNAVAILABLE -> 503).
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


def channel(
    address: str, server: str, tls: TlsSettings | None, *, default_timeout: float = 5.0
) -> grpc.aio.Channel:
    """A channel to ``address`` (``host:port`` or ``dns:///host:port``) whose
    calls carry the current request id and end user, and get
    ``default_timeout`` seconds when the caller sets no deadline.

    With ``tls``, the connection is mutual TLS and the server's certificate
    must name ``server`` whatever address is dialled; without, plaintext.
    """
    announce(tls)
    interceptors = [ClientInterceptor(default_timeout)]
    if tls is None:
        return grpc.aio.insecure_channel(address, options=_OPTIONS, interceptors=interceptors)
    return grpc.aio.secure_channel(
        address,
        channel_credentials(tls),
        options=[*_OPTIONS, *target_options(server)],
        interceptors=interceptors,
    )
