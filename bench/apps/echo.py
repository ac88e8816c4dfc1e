"""The ceiling of the click path in Python: one HTTP request, one gRPC call.

- ``python -m bench.apps.echo PORT``: a grpc.aio server whose only service is
  the standard gRPC health service (``Check`` is the echo: a tiny unary call
  that touches no store). With ``GRPC_TLS_*`` set (``runtime.tls``) it serves
  mutual TLS, as the services do, so a ceiling can pay what they pay.
- ``create()`` (for ``uvicorn --factory``): a bare Starlette app whose
  ``POST /api/mining/click`` reads the body, makes one ``Health.Check`` call to
  ``MQBENCH_ECHO_ADDR`` over one grpc.aio channel and answers 202 JSON; no
  authentication, limits or idempotency. Plus :data:`COUNT_PATH`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.apps import COUNT_PATH, Served, counted
from runtime.config import Env
from runtime.tls import load_tls, server_credentials

CLICK_PATH = "/api/mining/click"


async def serve(port: int) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    tls = load_tls(Env())
    if tls is None:
        server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        server.add_secure_port(f"127.0.0.1:{port}", server_credentials(tls))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def create() -> ASGIApp:
    address = os.environ["MQBENCH_ECHO_ADDR"]
    stub: list[health_pb2_grpc.HealthStub] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub.append(health_pb2_grpc.HealthStub(channel))
            yield

    async def click(request: Request) -> Response:
        await request.body()
        reply = await stub[0].Check(health_pb2.HealthCheckRequest(), timeout=5.0)
        return JSONResponse({"status": "queued", "serving": reply.status}, status_code=202)

    async def count(request: Request) -> Response:
        return JSONResponse({"served": Served.count})

    app = Starlette(
        routes=[Route(CLICK_PATH, click, methods=["POST"]), Route(COUNT_PATH, count)],
        lifespan=lifespan,
    )
    return counted(app, path=CLICK_PATH)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
