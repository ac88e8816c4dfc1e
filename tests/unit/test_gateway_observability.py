"""The gateway's HTTP server spans (with the SDK's in-memory exporter), its
access lines, and the OTLP exporter each protocol setting picks."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from gateway.auth import PRINCIPAL, Principal
from gateway.middleware import EdgeMiddleware, TracingMiddleware
from gateway.protection.middleware import KEY
from runtime import context
from runtime.config import ConfigError, Env
from runtime.log import JsonFormatter
from runtime.tracing import otlp_protocol, span_exporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def item(request: Request) -> JSONResponse:
    request.scope[PRINCIPAL] = Principal(user_id="u-1", role="user", session_id="s", expires_at=0.0)
    request.scope[KEY] = "key-123"
    return JSONResponse({"id": request.path_params["id"]}, status_code=202)


def app() -> Starlette:
    return Starlette(routes=[Route("/api/items/{id}", item, methods=["POST"])])


async def call(asgi: object, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post(path, headers=headers)


async def test_each_request_is_a_server_span_named_by_its_route_template() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = TracingMiddleware(app(), tracer_provider=provider)

    answer = await call(
        traced, "/api/items/42", {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    )
    assert answer.status_code == 202
    assert (await call(traced, "/nowhere")).status_code == 404

    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["POST /api/items/{id}", "POST unmatched"]
    first = spans[0]
    assert first.kind is trace.SpanKind.SERVER
    assert first.attributes is not None
    assert first.attributes["http.route"] == "/api/items/{id}"
    status = first.attributes.get(
        "http.response.status_code", first.attributes.get("http.status_code")
    )
    assert status == 202
    assert format(first.context.trace_id, "032x") == TRACE_ID, "the caller's trace is continued"


async def test_each_request_is_one_json_access_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        await call(EdgeMiddleware(app()), "/api/items/7")
        await call(EdgeMiddleware(app()), "/nowhere")
    lines = [json.loads(JsonFormatter("gateway").format(r)) for r in caplog.records]
    assert len(lines) == 2
    first, second = lines
    assert first["msg"] == "request"
    assert {k: first[k] for k in ("method", "route", "status", "userId", "idempotencyKey")} == {
        "method": "POST",
        "route": "/api/items/{id}",
        "status": 202,
        "userId": "u-1",
        "idempotencyKey": "key-123",
    }
    assert first["duration_ms"] >= 0
    assert (second["route"], second["status"]) == ("unmatched", 404)
    assert "userId" not in second


async def test_the_edge_binds_the_request_id_and_counts_a_crash_as_500() -> None:
    seen: list[str | None] = []

    async def crashing(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(context.request_id.get())
        raise RuntimeError("boom")

    async def answering(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(context.request_id.get())
        headers = [(b"x-request-id", b"set-by-app")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message: Message) -> None:
        return None

    async def nothing() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    before = REGISTRY.get_sample_value(
        "http_requests_total", {"route": "unmatched", "method": "GET", "status": "500"}
    )
    lines: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(JsonFormatter("gateway"))
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    access = logging.getLogger("gateway.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        with pytest.raises(RuntimeError):
            await EdgeMiddleware(crashing)(dict(scope), nothing, ignore)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    after = REGISTRY.get_sample_value(
        "http_requests_total", {"route": "unmatched", "method": "GET", "status": "500"}
    )
    assert (after or 0) - (before or 0) == 1
    line = json.loads(lines[-1])
    assert (line["status"], line["request_id"]) == (500, seen[0])
    assert context.request_id.get() is None, "the id is unbound once the request is done"

    sent: list[Message] = []

    async def keep(message: Message) -> None:
        sent.append(message)

    given = [(b"x-request-id", b"caller-7")]
    await EdgeMiddleware(answering)({**scope, "headers": given}, nothing, keep)
    assert seen[1] == "caller-7"
    assert sent[0]["headers"] == [(b"x-request-id", b"set-by-app")], "an app's own id is kept"


def test_the_otlp_protocol_picks_the_exporter() -> None:
    assert otlp_protocol(Env({})) == "grpc"
    assert isinstance(span_exporter("http://collector:4317", "grpc"), GrpcExporter)
    http = span_exporter("http://collector:4318/", "http/protobuf")
    assert isinstance(http, HttpExporter)
    assert http._endpoint == "http://collector:4318/v1/traces"
    given = span_exporter("http://collector:4318/v1/traces", "http/protobuf")
    assert given._endpoint == "http://collector:4318/v1/traces"
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        otlp_protocol(Env({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}))
