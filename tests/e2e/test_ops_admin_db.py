"""The admin database statistics, the access lines and the new metrics,
through the real gateway in front of the real services (MongoDB-wire server:
SecantusDB)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_auth_flow import Session, make_admin
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e

ROUTES = ("slow-queries", "pool-stats", "size", "table-sizes", "index-usage")


@pytest.fixture(scope="module")
def admin(stack: Stack, mailbox: Mailbox) -> Session:
    return make_admin(stack, mailbox)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def get(http: httpx.Client, admin: Session, route: str, **params: str) -> dict[str, Any]:
    answer = http.get(f"/api/admin/db/{route}", headers=admin.auth, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    return body


def suite_databases(stack: Stack) -> list[str]:
    return [
        stack.env[f"{name}_MONGODB_DATABASE"] for name in ("AUTH", "WALLET", "MINING", "QUESTS")
    ]


def test_database_statistics_are_for_admins_only(
    http: httpx.Client, stack: Stack, admin: Session
) -> None:
    user = {"Authorization": f"Bearer {stack.token_for('not-an-admin')}"}
    for route in ROUTES:
        assert http.get(f"/api/admin/db/{route}").status_code == 401
        assert http.get(f"/api/admin/db/{route}", headers=user).status_code == 403
    assert http.post("/api/admin/db/reset-stats", headers=user).status_code == 403


def test_sizes_cover_every_database_of_the_suite(
    http: httpx.Client, stack: Stack, admin: Session
) -> None:
    body = get(http, admin, "size")
    assert body["databases"] == suite_databases(stack)
    auth = body["sizes"][stack.env["AUTH_MONGODB_DATABASE"]]
    assert auth["supported"] is True
    assert auth["objects"] >= 1, "the admin's own user is there"
    assert body["total"]["dataSize"] >= auth["dataSize"] > 0
    assert body["unit"] == "bytes"

    tables = get(http, admin, "table-sizes")["collections"]
    users = [row for row in tables if row["database"] == stack.env["AUTH_MONGODB_DATABASE"]]
    assert users, tables
    assert all(row["supported"] for row in tables), tables
    assert [row["size"] for row in tables] == sorted((row["size"] for row in tables), reverse=True)


def test_index_usage_lists_each_collections_indexes(
    http: httpx.Client, stack: Stack, admin: Session
) -> None:
    body = get(http, admin, "index-usage")
    rows = [row for row in body["collections"] if row["supported"]]
    assert rows
    names = {index["name"] for row in rows for index in row["indexes"]}
    assert "_id_" in names
    assert len(names) > 1, "the services' own indexes are there"
    assert all(isinstance(index["ops"], int) for row in rows for index in row["indexes"])
    assert isinstance(body["unused"], list)


def test_slow_queries_answer_each_source_or_say_why_not(http: httpx.Client, admin: Session) -> None:
    body = get(http, admin, "slow-queries", limit="3")
    assert body["limit"] == 3
    for part in (body["inProgress"], body["byCollection"], *body["profiler"].values()):
        assert isinstance(part["supported"], bool)
        assert part["supported"] or part["error"]
    if body["byCollection"]["supported"]:
        assert len(body["byCollection"]["operations"]) <= 3
    for bad in ("0", "101", "ten", "-1"):
        answer = http.get("/api/admin/db/slow-queries", headers=admin.auth, params={"limit": bad})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_field"


def test_pool_stats_show_the_gateways_pool_and_the_server(
    http: httpx.Client, admin: Session
) -> None:
    # Each gateway process has its own pool: ask the one that just used it
    # (the same keep-alive connection, so the same process).
    get(http, admin, "size")
    body = get(http, admin, "pool-stats")
    pool = body["gateway"]
    assert set(pool) >= {"active", "idle", "waiting", "maxPoolSize"}
    assert pool["idle"] + pool["active"] >= 1, "the gateway has talked to MongoDB by now"
    assert body["server"]["supported"] is True
    assert body["server"]["connections"]["current"] >= 1


def test_reset_stats_clears_the_profiler_and_says_what_it_cannot_reset(
    http: httpx.Client, stack: Stack, admin: Session
) -> None:
    answer = http.post("/api/admin/db/reset-stats", headers=admin.auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body["profiler"]) == set(suite_databases(stack))
    assert all(part["supported"] for part in body["profiler"].values()), body
    assert body["indexUsage"] == {"supported": False, "error": body["indexUsage"]["error"]}
    assert "restart" in body["top"]["error"]


def test_each_request_leaves_one_json_access_line(
    http: httpx.Client, stack: Stack, admin: Session
) -> None:
    request_id = "ops-access-line-1"
    get_answer = http.get("/api/admin/db/size", headers={**admin.auth, "X-Request-ID": request_id})
    assert get_answer.status_code == 200
    lines = [
        json.loads(line)
        for line in stack.log("gateway").splitlines()
        if line.startswith("{") and request_id in line
    ]
    access = [line for line in lines if line.get("logger") == "gateway.access"]
    assert len(access) == 1, lines
    [line] = access
    assert line["route"] == "/api/admin/db/size"
    assert (line["method"], line["status"]) == ("GET", 200)
    assert line["userId"] == admin.user["id"]
    assert line["duration_ms"] > 0


def test_the_gateway_exports_errors_pool_and_event_loop_lag(
    http: httpx.Client, stack: Stack, admin: Session
) -> None:
    assert http.get("/api/admin/db/size").status_code == 401
    get(http, admin, "pool-stats")
    text = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text
    assert (
        'http_request_errors_total{method="GET",route="/api/admin/db/size",type="client_error"}'
        in text
    )
    assert 'db_connection_pool_size{client="gateway",state="idle"}' in text
    assert 'db_query_duration_seconds_count{command="serverStatus",database="admin"' in text
    assert "asyncio_eventloop_lag_seconds " in text
