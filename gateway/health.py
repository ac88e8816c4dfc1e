"""Probes behind ``GET /api/health``: every backend, concurrently, with a short deadline.

Each gRPC service answers the standard ``grpc.health.v1.Health/Check``;
Redis answers ``PING`` and MongoDB ``ping`` when they are configured. A
probe never raises: it reports ``ok`` or ``down`` with what went wrong.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.state import Backend, Gateway

PROBE_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    ok: bool
    latency_ms: float
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "down",
            "latencyMs": round(self.latency_ms, 2),
            **self.detail,
        }


async def _timed(name: str, check: Callable[[], Awaitable[dict[str, Any]]]) -> Probe:
    """Run one check; ``check`` returns details and raises when the component is down."""
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), PROBE_TIMEOUT_SECONDS)
        ok = detail.pop("ok", True)
    except TimeoutError:
        ok, detail = False, {"error": f"no answer within {PROBE_TIMEOUT_SECONDS}s"}
    except grpc.aio.AioRpcError as error:
        ok, detail = False, {"error": error.code().name}
    except Exception as error:  # a probe reports, it never fails the health route
        ok, detail = False, {"error": type(error).__name__}
    return Probe(name, bool(ok), (time.perf_counter() - started) * 1000, detail)


def _grpc_check(backend: Backend) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def check() -> dict[str, Any]:
        stub = health_pb2_grpc.HealthStub(backend.channel)
        reply = await stub.Check(
            health_pb2.HealthCheckRequest(service=backend.service), timeout=PROBE_TIMEOUT_SECONDS
        )
        serving = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return {"ok": reply.status == health_pb2.HealthCheckResponse.SERVING, "serving": serving}

    return check


async def probe_all(gateway: Gateway) -> list[Probe]:
    checks: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        (backend.name, _grpc_check(backend)) for backend in gateway.backends
    ]
    redis, mongo = gateway.redis, gateway.mongo
    if redis is not None:

        async def ping_redis() -> dict[str, Any]:
            await redis.ping()
            return {}

        checks.append(("redis", ping_redis))
    if mongo is not None:

        async def ping_mongo() -> dict[str, Any]:
            await mongo.admin.command("ping")
            return {}

        checks.append(("mongodb", ping_mongo))
    return list(await asyncio.gather(*(_timed(name, check) for name, check in checks)))


def memory() -> dict[str, int]:
    """Resident memory of this process: now (Linux) and at its peak."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    result = {"maxRssBytes": peak * scale}
    try:
        with open("/proc/self/statm", "rb") as statm:
            result["rssBytes"] = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    return result


async def report(gateway: Gateway) -> tuple[bool, dict[str, Any]]:
    """``(all_ok, body)`` for the health route."""
    probes = await probe_all(gateway)
    healthy = all(probe.ok for probe in probes)
    components: dict[str, Any] = {"gateway": {"status": "ok"}}
    components.update((probe.name, probe.as_json()) for probe in probes)
    return healthy, {
        "status": "ok" if healthy else "degraded",
        "version": gateway.version,
        "uptimeSeconds": round(time.monotonic() - gateway.started_at, 3),
        "memory": memory(),
        "components": components,
    }
