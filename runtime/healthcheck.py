"""``python -m runtime.healthcheck HOST:PORT``: exit 0 when the gRPC health
service there answers SERVING, 1 otherwise (container healthchecks).

It dials as the process whose environment it runs in: with ``GRPC_TLS_*``
set (a service's own container) it presents that certificate and expects
the server to be the same identity, so a service checks itself with its own
certificate; without, plaintext. ``--server NAME`` expects another identity.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.config import ConfigError, Env
from runtime.tls import channel_credentials, load_tls, target_options


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.healthcheck")
    parser.add_argument("address", help="host:port of the gRPC server")
    parser.add_argument("--server", help="the identity the server must prove (default: ours)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    try:
        tls = load_tls(Env())
    except ConfigError as error:
        print(f"healthcheck: configuration error: {error}", file=sys.stderr)
        return 2
    if tls is None:
        target = grpc.insecure_channel(args.address)
    else:
        server = args.server or tls.identity
        target = grpc.secure_channel(
            args.address, channel_credentials(tls), options=target_options(server)
        )
    with target:
        try:
            answer = health_pb2_grpc.HealthStub(target).Check(
                health_pb2.HealthCheckRequest(), timeout=args.timeout
            )
        except grpc.RpcError as error:
            print(f"healthcheck: {args.address}: {error.code().name}", file=sys.stderr)
            return 1
    serving = answer.status == health_pb2.HealthCheckResponse.SERVING
    if not serving:
        print(f"healthcheck: {args.address}: {answer.status}", file=sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    raise SystemExit(main())
