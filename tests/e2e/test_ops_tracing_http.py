"""Tracing over OTLP/HTTP (``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``): one
registration is one trace from the gateway's HTTP server span through its
gRPC call to the auth service and auth's MongoDB commands; Redis commands are
spans too. The receiver is a real HTTP server decoding the OTLP protobuf."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_auth_flow import new_email, new_wallet

pytestmark = pytest.mark.e2e

SPAN_SERVER, SPAN_CLIENT, SPAN_CONSUMER = 2, 3, 5


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: bytes
    attributes: dict[str, Any]


class Collector:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.paths: set[str] = set()
        self.lock = threading.Lock()

    def add(self, path: str, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.lock:
            self.paths.add(path)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        attributes = {
                            a.key: a.value.string_value or a.value.int_value
                            for a in span.attributes
                        }
                        self.spans.append(
                            Span(
                                resource.get("service.name", ""),
                                span.name,
                                span.kind,
                                span.trace_id,
                                attributes,
                            )
                        )

    def snapshot(self) -> list[Span]:
        with self.lock:
            return list(self.spans)


@pytest.fixture
def otlp_http() -> Iterator[tuple[Collector, int]]:
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            collector.add(self.path, body)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield collector, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_is_one_trace_over_otlp_http(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    otlp_http: tuple[Collector, int],
) -> None:
    collector, port = otlp_http
    stacks = start_stack(
        request,
        tmp_path_factory,
        "traced-http",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        },
    )
    stack: Stack = next(stacks)
    try:
        with stack.client() as http:
            answer = http.post(
                "/api/auth/register", json={"walletAddress": new_wallet(), "email": new_email()}
            )
        assert answer.status_code == 201, answer.text
    finally:
        stacks.close()  # SIGTERM: the span processors flush on the way out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = collector.snapshot()
        servers = [s for s in spans if s.name == "POST /api/auth/register"]
        if servers and any(s.service == "minequest-auth" for s in spans):
            break
        time.sleep(0.1)
    assert collector.paths == {"/v1/traces"}
    [http_span] = [s for s in spans if s.name == "POST /api/auth/register"]
    assert (http_span.service, http_span.kind) == ("minequest-gateway", SPAN_SERVER)
    assert http_span.attributes["http.route"] == "/api/auth/register"
    trace = [s for s in spans if s.trace_id == http_span.trace_id]
    method = "/minequest.auth.v1.AuthService/Register"
    assert {(s.service, s.kind) for s in trace if s.name == method} == {
        ("minequest-gateway", SPAN_CLIENT),
        ("minequest-auth", SPAN_SERVER),
    }
    mongo = [s for s in trace if s.attributes.get("db.system.name") == "mongodb"]
    assert mongo, "auth's MongoDB commands belong to the request's trace"
    assert {s.service for s in mongo} == {"minequest-auth"}
    assert all(s.kind == SPAN_CLIENT for s in mongo)
    redis = [
        s
        for s in spans
        if "redis" in (s.attributes.get("db.system"), s.attributes.get("db.system.name"))
    ]
    assert redis, "redis-py commands are spans"


def test_a_click_is_one_trace_from_the_gateway_to_the_wallet(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    otlp_http: tuple[Collector, int],
) -> None:
    """The click's HTTP span, the gateway's SubmitClicks call, the worker's
    batch (the click's traceparent rode in its stream entry) and the wallet's
    Credit are one trace."""
    collector, port = otlp_http
    stacks = start_stack(
        request,
        tmp_path_factory,
        "traced-click",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        },
    )
    stack: Stack = next(stacks)
    key = uuid.uuid4().hex
    try:
        token = stack.token_for(uuid.uuid4().hex)
        headers = {"Authorization": f"Bearer {token}"}
        with stack.client() as http:
            answer = http.post(
                "/api/mining/click", json={"count": 2}, headers={**headers, "Idempotency-Key": key}
            )
            assert answer.status_code == 202, answer.text
            deadline = time.monotonic() + 30
            while (
                http.get(
                    "/api/mining/click/status", params={"key": key}, headers=headers
                ).status_code
                != 200
            ):
                assert time.monotonic() < deadline, "the click was never credited"
                time.sleep(0.1)
    finally:
        stacks.close()  # SIGTERM: the span processors flush on the way out
    credit = "/minequest.wallet.v1.WalletService/Credit"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = collector.snapshot()
        if any(s.name == credit and s.kind == SPAN_SERVER for s in spans):
            break
        time.sleep(0.1)
    [http_span] = [s for s in spans if s.name == "POST /api/mining/click"]
    trace = [s for s in spans if s.trace_id == http_span.trace_id]
    names = {(s.name, s.kind) for s in trace}
    submit = "/minequest.mining.v1.MiningService/SubmitClicks"
    assert {(submit, SPAN_CLIENT), (submit, SPAN_SERVER)} <= names, names
    [batch] = [s for s in trace if s.name == "mining.worker.batch"]
    assert batch.kind == SPAN_CONSUMER
    assert {(credit, SPAN_CLIENT), (credit, SPAN_SERVER)} <= names, names
    assert {s.service for s in trace if s.name == credit} >= {"minequest-wallet"}
