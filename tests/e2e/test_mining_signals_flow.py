"""Bot signals and the mined-coin leaderboards through the real gateway, mining
service, worker, wallet, auth, Redis and MongoDB: a flagged account clicks in
the shadow (202, credited 0) until an admin clears it; the day and week boards
answer the caller's standing and the players around them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
import redis.asyncio as aioredis

from runtime.stores import redis_client
from services.mining import leaderboards, suspects
from services.mining.leaderboards import Period
from tests.e2e.conftest import Stack
from tests.e2e.test_auth_flow import Session, login, make_admin, problem
from tests.e2e.test_mining_flow import click, wait_done
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e

T = TypeVar("T")


@pytest.fixture(scope="module")
def admin(stack: Stack, mailbox: Mailbox) -> Session:
    return make_admin(stack, mailbox)


def on_redis(stack: Stack, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    """Run ``work`` against the stack's Redis."""

    async def run() -> T:
        redis = redis_client(stack.env["REDIS_URL"])
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def mined(client: httpx.Client, session: Session, taps: int = 2) -> dict[str, Any]:
    key = uuid.uuid4().hex
    response = click(client, session.access_token, key, {"count": taps})
    assert response.status_code == 202, response.text
    return wait_done(client, session.access_token, key)


def test_a_flagged_account_earns_nothing_until_an_admin_clears_it(
    stack: Stack, client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    me = login(client, mailbox)
    uid = me.user["id"]
    why = suspects.Flag(
        "fixed_interval", "interval 100.0 ms ± 0.2 ms over 30 intervals", datetime.now(UTC)
    )
    assert on_redis(stack, lambda r: suspects.flag(r, {uid: [why]}, why.at)) == [uid]

    shadowed = mined(client, me)
    assert shadowed["acceptedTaps"] == 2
    assert shadowed["reward"]["units"] == "0"

    listed = client.get("/api/admin/mining/suspects", params={"pageSize": 100}, headers=admin.auth)
    assert listed.status_code == 200, listed.text
    assert listed.headers["cache-control"] == "no-store"
    mine = next(s for s in listed.json()["suspects"] if s["userId"] == uid)
    assert mine["shadowed"] is True
    assert mine["reasons"][0]["code"] == "fixed_interval"
    assert mine["reasons"][0]["text"] == why.text

    problem(client.get("/api/admin/mining/suspects", headers=me.auth), 403)
    problem(client.get("/api/admin/mining/suspects"), 401)
    problem(client.post(f"/api/admin/mining/suspects/{uid}/clear", headers=me.auth), 403)

    cleared = client.post(f"/api/admin/mining/suspects/{uid}/clear", headers=admin.auth)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["suspect"]["userId"] == uid
    earning = mined(client, me)
    assert earning["reward"]["units"] != "0"
    again = client.post(f"/api/admin/mining/suspects/{uid}/clear", headers=admin.auth)
    problem(again, 404, "suspect_not_found")


def test_the_day_and_week_boards_rank_what_was_posted_with_usernames(
    stack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    players = [login(client, mailbox) for _ in range(3)]
    now = datetime.now(UTC)
    # Far more than any other test mines, so these three lead today's board.
    units = {p.user["id"]: 10**15 * (3 - i) for i, p in enumerate(players)}
    posted = on_redis(stack, lambda r: leaderboards.post_batch(r, uuid.uuid4().hex, units, now))
    assert posted is True

    board = client.get("/api/mining/leaderboard", params={"period": "day", "limit": 3})
    assert board.status_code == 200, board.text
    assert board.headers["cache-control"].startswith("public, max-age=")
    body = board.json()
    assert body["periodKey"] == leaderboards.period_id(Period.DAY, now)
    assert [e["userId"] for e in body["entries"]] == [p.user["id"] for p in players]
    assert [e["username"] for e in body["entries"]] == [p.user["username"] for p in players]
    assert body["entries"][0]["mined"]["units"] == str(3 * 10**15)
    assert "own" not in body

    second = players[1]
    week = client.get("/api/mining/leaderboard", params={"period": "week"}, headers=second.auth)
    assert week.status_code == 200, week.text
    assert week.headers["cache-control"].startswith("private, max-age=")
    assert week.json()["own"]["rank"] == "2"

    around = client.get(
        "/api/mining/leaderboard/around-me",
        params={"period": "day", "count": 1},
        headers=second.auth,
    )
    assert around.status_code == 200, around.text
    assert [e["userId"] for e in around.json()["around"]] == [p.user["id"] for p in players]

    problem(client.get("/api/mining/leaderboard/around-me"), 401)
    problem(client.get("/api/mining/leaderboard", params={"period": "year"}), 400)
    problem(client.get("/api/mining/leaderboard", params={"limit": 101}), 400)


def test_mined_coins_reach_the_day_board_once_the_worker_credits_them(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    me = login(client, mailbox)
    done = mined(client, me, taps=3)
    deadline = time.monotonic() + 10
    own = None
    while own is None and time.monotonic() < deadline:
        response = client.get("/api/mining/leaderboard", params={"period": "day"}, headers=me.auth)
        assert response.status_code == 200, response.text
        own = response.json().get("own")
        time.sleep(0.2)
    assert own is not None, "the credited batch never reached the day board"
    assert own["units"] == done["reward"]["units"]
