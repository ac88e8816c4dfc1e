"""The shared gRPC bootstrap over real sockets: draining on shutdown, error
mapping, request-id propagation and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from runtime import context
from runtime.embedded import free_port
from runtime.errors import InvalidArgument, decode_rpc_error
from runtime.grpc_client import insecure_channel
from runtime.grpc_server import create_server
from runtime.stores import mongo_client

pytestmark = pytest.mark.integration

SERVICE = "minequest.test.v1.ProbeService"


def _identity(value: bytes) -> bytes:
    return value


class Probe:
    """A tiny real service with methods that sleep, fail and echo metadata."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.seen_request_ids: list[str | None] = []

    async def slow(self, request: bytes, ctx: Any) -> bytes:
        self.started.set()
        await asyncio.sleep(0.5)
        return b"done"

    async def invalid(self, request: bytes, ctx: Any) -> bytes:
        raise InvalidArgument("bad thing", reason="bad_thing", field="thing", retry_after=3)

    async def crash(self, request: bytes, ctx: Any) -> bytes:
        raise RuntimeError("secret internals")

    async def store_down(self, request: bytes, ctx: Any) -> bytes:
        client = mongo_client(
            f"mongodb://127.0.0.1:{free_port()}", app_name="probe", server_selection_timeout_ms=100
        )
        try:
            await client.admin.command("ping")
        finally:
            await client.close()
        return b"unreachable"

    async def whoami(self, request: bytes, ctx: Any) -> bytes:
        self.seen_request_ids.append(context.request_id.get())
        return (context.request_id.get() or "").encode()

    def register(self, server: grpc.aio.Server) -> list[str]:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                getattr(self, name), request_deserializer=_identity, response_serializer=_identity
            )
            for name in ("slow", "invalid", "crash", "store_down", "whoami")
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        return [SERVICE]


async def call(channel: grpc.aio.Channel, name: str, **kwargs: Any) -> bytes:
    method = channel.unary_unary(
        f"/{SERVICE}/{name}", request_serializer=_identity, response_deserializer=_identity
    )
    result: bytes = await method(b"", **kwargs)
    return result


@pytest.fixture
async def probe() -> Any:
    service = Probe()
    running = await create_server(service.register, port=0)
    channel = insecure_channel(f"127.0.0.1:{running.port}")
    yield service, running, channel
    await channel.close()
    await running.stop(0.5)


async def test_stop_drains_in_flight_calls_and_marks_not_serving(probe: Any):
    service, running, channel = probe
    in_flight = asyncio.create_task(call(channel, "slow"))
    await service.started.wait()
    health = health_pb2_grpc.HealthStub(channel)
    stopping = asyncio.create_task(running.stop(5))
    await asyncio.sleep(0.05)
    assert await in_flight == b"done", "an in-flight call must finish within the grace period"
    await stopping
    with pytest.raises(grpc.aio.AioRpcError):
        await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1)


async def test_not_serving_is_visible_before_the_server_goes(probe: Any):
    _, running, channel = probe
    health = health_pb2_grpc.HealthStub(channel)
    await running.health.enter_graceful_shutdown()
    answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


def client_handled(method: str, code: str) -> float:
    labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_code": code}
    return REGISTRY.get_sample_value("grpc_client_handled_total", labels) or 0.0


async def test_domain_errors_become_rich_statuses(probe: Any):
    _, _, channel = probe
    before = client_handled("invalid", "INVALID_ARGUMENT")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(channel, "invalid")
    info = decode_rpc_error(caught.value)
    assert info.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.reason, info.field, info.retry_after) == ("bad_thing", "thing", 3)
    assert info.message == "bad thing"
    assert client_handled("invalid", "INVALID_ARGUMENT") == before + 1


async def test_unexpected_errors_are_internal_without_details(probe: Any):
    _, _, channel = probe
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(channel, "crash")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (caught.value.details() or "")
    handled = REGISTRY.get_sample_value(
        "grpc_server_handled_total",
        {"grpc_service": SERVICE, "grpc_method": "crash", "grpc_code": "INTERNAL"},
    )
    assert handled is not None
    assert handled >= 1


async def test_a_store_outage_is_unavailable_with_retry_after(probe: Any):
    _, _, channel = probe
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(channel, "store_down")
    info = decode_rpc_error(caught.value)
    assert info.code == grpc.StatusCode.UNAVAILABLE
    assert info.reason == "store_unavailable"
    assert info.retry_after == 1


async def test_request_id_travels_from_client_context_to_server(probe: Any):
    _, _, channel = probe
    token = context.request_id.set("req-123")
    try:
        assert await call(channel, "whoami") == b"req-123"
    finally:
        context.request_id.reset(token)
    minted = await call(channel, "whoami")
    assert len(minted) == 32, "a call without a request id gets a fresh one"


async def test_client_default_deadline_applies(probe: Any):
    _, running, _ = probe
    channel = insecure_channel(f"127.0.0.1:{running.port}", default_timeout=0.1)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(channel, "slow")
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await channel.close()
