"""The assembled app in process, with no backend reachable.

Everything checked here is the gateway's own doing — request ids, body
limits, JSON errors, authentication, routing errors, metrics, CORS — so the
auth address points at a closed port and no service is needed (calls that do
reach for it must answer 503, never 500).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest

from gateway.app import create_app
from gateway.routes import ENDPOINTS
from gateway.routing import Endpoint, Incoming
from gateway.settings import GatewaySettings
from runtime.config import Env
from runtime.embedded import free_port


async def client_for(
    endpoints: tuple[Endpoint, ...] = ENDPOINTS, **environ: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings.from_env(
        Env(
            {
                "AUTH_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
                "MAX_BODY_BYTES": "1000",
                "GRPC_TIMEOUT_SECONDS": "1",
                **environ,
            }
        )
    )
    app = create_app(settings, endpoints)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            # what uvicorn does with the lifespan state: a copy per request
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for each in client_for():
        yield each


def assert_problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["error"] == error
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def test_request_id_is_echoed_or_minted(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    minted = await client.get("/nowhere", headers={"X-Request-ID": "bad id with spaces"})
    assert minted.headers["x-request-id"] != "bad id with spaces"
    assert len(minted.headers["x-request-id"]) == 32


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/nope"), 404, "not_found")
    response = await client.delete("/api/auth/me")
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}


async def test_body_over_the_limit(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register", content=b"x" * 1001, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_streamed_body_over_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    response = await client.post("/api/auth/register", content=chunks())
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_json_mistakes_are_400(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/api/auth/register", content=b"{nope"), 400, "invalid_json")
    body = assert_problem(
        await client.post("/api/auth/register", json={"walletAddress": 1}), 400, "invalid_field"
    )
    assert body["field"] == "walletAddress"
    body = assert_problem(
        await client.post("/api/auth/otp/verify", json={"challenge": "x"}), 400, "invalid_field"
    )
    assert body["field"] == "challenge"


async def test_authentication_comes_first(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/me")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = await client.patch(
        "/api/auth/me", content=b"{broken", headers={"Authorization": "Bearer not-a-jwt"}
    )
    assert_problem(response, 401, "unauthenticated")


async def test_unreachable_service_is_503(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/otp/request", json={"email": "a@example.com"})
    assert_problem(response, 503, "service_unavailable")


async def test_anonymous_health_says_only_whether_it_is_up(client: httpx.AsyncClient) -> None:
    """The component list, version and memory are for admins (tests/e2e)."""
    response = await client.get("/api/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded"}


async def test_metrics_label_routes_by_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/auth/me")
    await client.get("/some/random/path")
    # Served on the internal GATEWAY_METRICS_PORT, not by the app.
    assert (await client.get("/metrics")).status_code == 404
    text = generate_latest(REGISTRY).decode()
    assert 'http_requests_total{method="GET",route="/api/auth/me",status="401"}' in text
    assert 'route="unmatched"' in text
    assert "/some/random/path" not in text
    assert "http_request_duration_seconds_bucket" in text


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/openapi.json")).json()
    assert "/api/auth/register" in doc["paths"]


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_cors_when_configured() -> None:
    async for client in client_for(CORS_ALLOW_ORIGINS="https://app.example"):
        preflight = await client.options(
            "/api/auth/register",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        response = await client.get("/api/nope", headers={"Origin": "https://app.example"})
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_large_answers_are_gzipped(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"


async def test_unexpected_error_is_logged_and_hidden(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(incoming: Incoming) -> Any:
        raise LookupError("secret internals")

    row = Endpoint(
        "GET", "/api/broken", operation_id="broken", summary="x", handler=broken, tag="test"
    )
    async for client in client_for((*ENDPOINTS, row)):
        response = await client.get("/api/broken", headers={"X-Request-ID": "boom-1"})
        body = assert_problem(response, 500, "internal")
        assert "secret" not in response.text
        assert body["detail"] == "internal error"
    logged = [record for record in caplog.records if record.exc_info]
    assert logged
    assert "secret internals" in str(logged[0].exc_info[1])  # type: ignore[index]
