"""(a) A bare Starlette JSON endpoint: no authentication, limits or idempotency."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.apps import COUNT_PATH, OP_PATH, Served, counted


async def operation(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def count(request: Request) -> JSONResponse:
    return JSONResponse({"served": Served.count})


def create() -> ASGIApp:
    return counted(
        Starlette(
            routes=[
                Route(OP_PATH, operation, methods=["POST"]),
                Route(COUNT_PATH, count, methods=["GET"]),
            ]
        )
    )
