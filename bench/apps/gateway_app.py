"""(b) The full gateway stack: ``gateway.app.create_app`` with one benchmark row.

Settings come from the environment exactly as ``python -m gateway`` reads them
(REDIS_URL, AUTH_SERVICE_ADDR, RATE_LIMIT_POLICY_FILE, GUARD_REDIS_TIMEOUT_MS,
LOG_LEVEL, ...), logging is the production JSON logging and the garbage
collector is tuned the same way (:mod:`runtime.heap`). The row is an
authenticated (``Access.USER``), idempotency-required POST; the runner writes a
policy file with three tiers (global, user, ip) for it.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from bench.apps import COUNT_PATH, OP_PATH, Served, counted
from gateway.app import create_app
from gateway.routing import Access, Endpoint, Incoming
from gateway.settings import GatewaySettings
from runtime.heap import tune_gc
from runtime.log import configure_logging


async def operation(incoming: Incoming) -> Response:
    return JSONResponse({"ok": True, "user": incoming.user.user_id})


async def count(incoming: Incoming) -> Response:
    return JSONResponse({"served": Served.count})


ROWS = (
    Endpoint(
        "POST",
        OP_PATH,
        operation_id="benchOperation",
        summary="A trivial authenticated, idempotent, rate-limited operation",
        handler=operation,
        tag="bench",
        access=Access.USER,
        idempotency_required=True,
    ),
    Endpoint(
        "GET",
        COUNT_PATH,
        operation_id="benchCount",
        summary="How many operations the handler ran",
        handler=count,
        tag="bench",
    ),
)


def create() -> ASGIApp:
    settings = GatewaySettings.from_env()
    configure_logging("gateway", settings.log_level)
    app = counted(create_app(settings, ROWS))
    tune_gc(settings.gc_threshold)  # as python -m gateway does (runtime.process)
    return app
