"""Tracing end to end: with OTEL_EXPORTER_OTLP_ENDPOINT set, the gateway's
gRPC client span and the auth service's server span reach a real OTLP/gRPC
receiver in one trace."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from runtime.embedded import free_port
from tests.e2e.conftest import Stack, start_stack

pytestmark = pytest.mark.e2e

METHOD = "/minequest.auth.v1.AuthService/Register"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """A minimal OTLP trace receiver: keeps (service name, span name, kind, trace id)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, int, bytes]] = []
        self.lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                service = attributes.get("service.name", "")
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((service, span.name, span.kind, span.trace_id))
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    collector = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    try:
        yield collector, port
    finally:
        server.stop(0)


def test_one_request_is_one_trace_across_gateway_and_auth(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    receiver: tuple[Receiver, int],
    tmp_path: Path,
) -> None:
    collector, port = receiver
    stacks = start_stack(
        request,
        tmp_path_factory,
        "traced",
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
    )
    stack: Stack = next(stacks)
    try:
        with stack.client() as http:
            answer = http.post("/api/auth/register", json={"walletAddress": "0x12"})
        assert answer.status_code == 400
    finally:
        stacks.close()  # SIGTERM both: their span processors flush on the way out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with collector.lock:
            spans = [s for s in collector.spans if s[1] == METHOD]
        if {s[0] for s in spans} >= {"minequest-gateway", "minequest-auth"}:
            break
        time.sleep(0.1)
    by_service = {service: (kind, trace_id) for service, _, kind, trace_id in spans}
    assert set(by_service) == {"minequest-gateway", "minequest-auth"}, collector.spans
    client_kind, client_trace = by_service["minequest-gateway"]
    server_kind, server_trace = by_service["minequest-auth"]
    assert (client_kind, server_kind) == (3, 2)  # SPAN_KIND_CLIENT, SPAN_KIND_SERVER
    assert client_trace == server_trace, "the trace context must travel in gRPC metadata"
