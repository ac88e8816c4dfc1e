"""Operational routes: health, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import JSONResponse, Response

from gateway import health
from gateway.routing import Endpoint, Incoming

TAG = "system"

HEALTH_SCHEMA = {
    "type": "object",
    "required": ["status", "version", "uptimeSeconds", "memory", "components"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "version": {"type": "string"},
        "uptimeSeconds": {"type": "number"},
        "memory": {
            "type": "object",
            "properties": {"rssBytes": {"type": "integer"}, "maxRssBytes": {"type": "integer"}},
        },
        "components": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "down"]},
                    "latencyMs": {"type": "number"},
                    "serving": {"type": "string"},
                    "error": {"type": "string"},
                },
            },
        },
    },
}


async def get_health(incoming: Incoming) -> Response:
    """200 when every component answers, 503 (same body) when any is down."""
    healthy, body = await health.report(incoming.gateway)
    return JSONResponse(
        body, status_code=200 if healthy else 503, headers={"Cache-Control": "no-store"}
    )


async def get_metrics(incoming: Incoming) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def get_openapi(incoming: Incoming) -> Response:
    return JSONResponse(incoming.gateway.openapi)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/health",
        handler=get_health,
        operation_id="getHealth",
        summary="Gateway, services, Redis and MongoDB health (503 when any is down)",
        tag=TAG,
        response_schema=HEALTH_SCHEMA,
        other_statuses={503: "A component is down (same body, per-component status)"},
    ),
    Endpoint(
        "GET",
        "/metrics",
        handler=get_metrics,
        operation_id="getMetrics",
        summary="Prometheus metrics (text format)",
        tag=TAG,
        response_schema={"type": "string"},
        media_type="text/plain",
    ),
    Endpoint(
        "GET",
        "/api/openapi.json",
        handler=get_openapi,
        operation_id="getOpenApi",
        summary="This document (OpenAPI 3.1)",
        tag=TAG,
        response_schema={"type": "object"},
    ),
)
