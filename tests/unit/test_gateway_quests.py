"""The gateway's quest routes in process, with no quests service reachable:
who may call what, the gateway's own refusals, and 503 (never 500) when the
service is down."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.openapi import build_openapi
from gateway.routes import ENDPOINTS
from runtime.embedded import free_port
from tests.unit.test_gateway_app import assert_problem, client_for


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for each in client_for(ENDPOINTS, QUESTS_SERVICE_ADDR=f"127.0.0.1:{free_port()}"):
        yield each


async def test_user_and_admin_routes_need_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/quests"), 401, "unauthenticated")
    assert_problem(await client.post("/api/quests/q/complete"), 401, "unauthenticated")
    assert_problem(await client.post("/api/admin/quests", json={}), 401, "unauthenticated")
    assert_problem(await client.put("/api/admin/quests/q", json={}), 401, "unauthenticated")
    assert_problem(await client.post("/api/admin/quests/q/archive"), 401, "unauthenticated")


async def test_public_routes_answer_503_when_quests_is_down(client: httpx.AsyncClient) -> None:
    address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    for path in (
        "/api/quests/leaderboard",
        f"/api/public/users/interaction/{address}",
        f"/api/public/quests/q/eligible?address={address}",
    ):
        assert_problem(await client.get(path), 503, "service_unavailable")
    bad = await client.get("/api/quests/leaderboard?limit=ten")
    assert_problem(bad, 400, "invalid_field")


def test_the_routes_are_documented() -> None:
    paths = build_openapi(ENDPOINTS, version="test")["paths"]
    assert {"post"} <= set(paths["/api/quests/{questId}/complete"])
    assert set(paths["/api/admin/quests/{questId}"]) == {"put"}
    schema = paths["/api/public/users/interaction/{walletAddress}"]["get"]["responses"]["200"]
    properties = schema["content"]["application/json"]["schema"]["properties"]
    assert list(properties) == [
        "hasInteracted",
        "walletAddress",
        "username",
        "totalXP",
        "completedQuests",
        "questsCompleted",
    ]
