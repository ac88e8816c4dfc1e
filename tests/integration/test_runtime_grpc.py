"""The shared gRPC bootstrap over real sockets: draining on shutdown, error
mapping, request-id and end-user propagation, metrics, reflection, and the
access tables' refusals (logged once per caller and method)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from runtime import context
from runtime.access import allow
from runtime.embedded import free_port
from runtime.errors import InvalidArgument, decode_rpc_error
from runtime.grpc_client import channel
from runtime.grpc_server import RunningServer, create_server
from runtime.stores import mongo_client
from tests.integration.conftest import reflected, tls_of

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

    async def principal(self, request: bytes, ctx: Any) -> bytes:
        """Who the server believes is calling: caller identity, user, role."""
        seen = (context.caller.get(), context.user_id.get(), context.role.get())
        return "|".join(value or "-" for value in seen).encode()

    def register(self, server: grpc.aio.Server) -> list[str]:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                getattr(self, name), request_deserializer=_identity, response_serializer=_identity
            )
            for name in ("slow", "invalid", "crash", "store_down", "whoami", "principal", "secret")
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        return [SERVICE]

    async def secret(self, request: bytes, ctx: Any) -> bytes:
        return b"nobody is allowed here"


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
    plaintext = channel(f"127.0.0.1:{running.port}", "probe", None)
    yield service, running, plaintext
    await plaintext.close()
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
    labels = {"grpc_service": SERVICE, "grpc_method": "crash", "grpc_code": "INTERNAL"}
    # The server counts the call as its handler unwinds, which may be just
    # after the client has its answer: wait for it (bounded), don't race it.
    for _ in range(100):
        handled = REGISTRY.get_sample_value("grpc_server_handled_total", labels)
        if handled is not None:
            break
        await asyncio.sleep(0.02)
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
    hasty = channel(f"127.0.0.1:{running.port}", "probe", None, default_timeout=0.1)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(hasty, "slow")
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await hasty.close()


def as_user(user_id: str | None, role: str | None) -> tuple[Any, Any]:
    return context.user_id.set(user_id), context.role.set(role)


def reset_user(tokens: tuple[Any, Any]) -> None:
    context.user_id.reset(tokens[0])
    context.role.reset(tokens[1])


async def test_the_end_user_travels_with_the_call_in_plaintext(probe: Any):
    _, _, plaintext = probe
    assert await call(plaintext, "principal") == b"-|-|-"
    tokens = as_user("u-1", "admin")
    try:
        assert await call(plaintext, "principal") == b"-|u-1|admin"
    finally:
        reset_user(tokens)


async def test_reflection_is_off_unless_asked_for(probe: Any):
    _, _, plaintext = probe
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reflected(plaintext)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    running = await create_server(Probe().register, port=0, reflection_on=True)
    try:
        async with channel(f"127.0.0.1:{running.port}", "probe", None) as target:
            assert {SERVICE, "grpc.health.v1.Health"} <= await reflected(target)
    finally:
        await running.stop(0)


#: The probe's own access table: principal for gateway and quests, secret for nobody.
PROBE_ACCESS = {SERVICE: {"principal": allow("gateway", "quests"), "whoami": allow("quests")}}


@pytest.fixture
async def secured(pki_dir: Path) -> AsyncIterator[RunningServer]:
    running = await create_server(
        Probe().register, port=0, tls=tls_of(pki_dir, "wallet"), access=PROBE_ACCESS
    )
    yield running
    await running.stop(0)


async def test_with_mtls_only_the_gateways_end_user_is_believed(
    secured: RunningServer, pki_dir: Path
):
    address = f"127.0.0.1:{secured.port}"
    tokens = as_user("u-1", "admin")
    try:
        async with channel(address, "wallet", tls_of(pki_dir, "gateway")) as gateway:
            assert await call(gateway, "principal") == b"gateway|u-1|admin"
        async with channel(address, "wallet", tls_of(pki_dir, "quests")) as quests:
            assert await call(quests, "principal") == b"quests|-|-"
    finally:
        reset_user(tokens)


async def test_methods_missing_from_the_table_are_refused_to_everyone(
    secured: RunningServer, pki_dir: Path
):
    for name in ("gateway", "quests"):
        async with channel(f"127.0.0.1:{secured.port}", "wallet", tls_of(pki_dir, name)) as peer:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(peer, "secret")
        info = decode_rpc_error(caught.value)
        assert (info.code, info.reason) == (grpc.StatusCode.PERMISSION_DENIED, "caller_not_allowed")


async def test_refusals_are_counted_each_and_logged_once_per_caller_and_method(
    secured: RunningServer, pki_dir: Path, caplog: pytest.LogCaptureFixture
):
    labels = {
        "grpc_service": SERVICE,
        "grpc_method": "whoami",
        "caller": "gateway",
        "reason": "caller_not_allowed",
    }
    before = REGISTRY.get_sample_value("grpc_server_access_denied_total", labels) or 0.0
    caplog.set_level(logging.WARNING, logger="runtime.interceptors")
    async with channel(f"127.0.0.1:{secured.port}", "wallet", tls_of(pki_dir, "gateway")) as peer:
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError):
                await call(peer, "whoami")
    lines = [r for r in caplog.records if "whoami" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].getMessage() == f"refused {SERVICE}/whoami to gateway: caller_not_allowed"
    assert REGISTRY.get_sample_value("grpc_server_access_denied_total", labels) == before + 5
