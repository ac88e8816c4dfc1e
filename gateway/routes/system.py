"""Operational routes: health and the OpenAPI document.

``GET /api/health`` answers anyone ``{"status": "ok"|"degraded"}`` (200 or
503): enough for a load balancer, nothing for a scout. With an admin's
bearer token it also answers the version, uptime, memory and every
component's probe. Prometheus metrics are not on this port: the gateway
serves them on ``GATEWAY_METRICS_PORT`` (internal, see ``python -m gateway``).
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from gateway import health
from gateway.routing import Access, Endpoint, Incoming

TAG = "system"

HEALTH_SCHEMA = {
    "type": "object",
    "required": ["status"],
    "description": "Anonymous callers get status only; an admin token adds the rest.",
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
    """200 when every component answers, 503 when any is down; details for admins."""
    healthy, body = await health.report(incoming.gateway)
    if incoming.principal is None or not incoming.principal.is_admin:
        body = {"status": body["status"]}
    return JSONResponse(
        body, status_code=200 if healthy else 503, headers={"Cache-Control": "no-store"}
    )


async def get_openapi(incoming: Incoming) -> Response:
    return JSONResponse(incoming.gateway.openapi)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/health",
        handler=get_health,
        operation_id="getHealth",
        summary="Health (503 when any part is down); an admin token adds every component",
        tag=TAG,
        access=Access.OPTIONAL,
        response_schema=HEALTH_SCHEMA,
        other_statuses={503: "A component is down (same body, per-component status)"},
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
