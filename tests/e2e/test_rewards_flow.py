"""Daily rewards and the around-me leaderboard through the real gateway, auth,
wallet and quests processes: concurrent claims paid once with the rest
refused naming the claim, a key's replay, the coins in the wallet under
``rewards.daily``; neighbours on the XP leaderboard with their ranks, and a
caller not on it answered ``entries: []``, ``own: null``."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_auth_flow import Session, login, make_admin, problem
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e

DAILY = "/api/rewards/daily"
AROUND = "/api/quests/leaderboard/around-me"
#: The default reward table's first day (DAILY_REWARDS), in MQC's 8 decimals.
FIRST_DAY = {"currency": "MQC", "units": "10000000", "amount": "0.10000000"}


def claim(stack: Stack, auth: dict[str, str], key: str | None = None) -> httpx.Response:
    with stack.client() as http:
        return http.post(DAILY, headers={**auth, "Idempotency-Key": key or uuid.uuid4().hex})


def next_midnight() -> str:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return f"{tomorrow.isoformat()}T00:00:00Z"


def test_concurrent_daily_claims_pay_once_and_the_rest_are_already_claimed(
    stack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    user = login(client, mailbox)
    before = client.get(DAILY, headers=user.auth)
    assert before.status_code == 200, before.text
    assert before.headers["cache-control"] == "private, no-cache"
    status = before.json()
    assert (status["streak"], status["claimedToday"]) == (0, False)
    assert status["todayReward"] == status["nextReward"] == FIRST_DAY
    assert [m["amount"] for m in status["rewardTable"]] == [
        "0.10000000",
        "0.20000000",
        "0.30000000",
        "0.50000000",
        "0.80000000",
        "1.30000000",
        "2.10000000",
    ]
    assert "claim" not in status
    problem(client.post(DAILY, headers=user.auth), 400, "idempotency_key_required")
    problem(client.get(DAILY), 401, "unauthenticated")

    keys = [uuid.uuid4().hex for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda key: claim(stack, user.auth, key), keys))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 7, [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200)
    body = won.json()
    claimed = body["claim"]
    today = claimed["day"]
    assert claimed["id"] == f"{user.user['id']}:{today}"
    assert (claimed["streak"], claimed["reward"], claimed["creditPending"]) == (1, FIRST_DAY, False)
    assert body["nextReward"]["units"] == "20000000"
    assert body["nextClaimAt"] == next_midnight()
    for lost in (a for a in answers if a.status_code == 409):
        refused = problem(lost, 409, "already_claimed")
        assert refused["claim"] == {
            "id": claimed["id"],
            "day": today,
            "streak": 1,
            "claimedAt": claimed["claimedAt"],
            "reward": FIRST_DAY,
        }

    replay = claim(stack, user.auth, keys[answers.index(won)])
    assert replay.status_code == 200
    assert replay.headers["x-idempotency"] == "HIT"
    assert replay.json() == body
    problem(claim(stack, user.auth), 409, "already_claimed")

    after = client.get(DAILY, headers=user.auth).json()
    assert (after["streak"], after["claimedToday"], after["today"]) == (1, True, today)
    assert after["todayReward"] == FIRST_DAY
    assert after["nextReward"]["units"] == "20000000"
    assert after["nextClaimAt"] == next_midnight()
    assert after["claim"] == claimed

    balance = client.get("/api/wallet/balance", headers=user.auth).json()["balances"]
    assert {row["currency"]: row["available"] for row in balance}["MQC"] == "0.10000000"
    history = client.get("/api/wallet/history", headers=user.auth).json()["entries"]
    assert [(e["source"], e["sourceId"]) for e in history] == [("rewards.daily", claimed["id"])]


@pytest.fixture(scope="module")
def admin(stack: Stack, mailbox: Mailbox) -> Session:
    return make_admin(stack, mailbox)


def test_around_me_answers_the_neighbours_with_ranks(
    stack: Stack, client: httpx.Client, admin: Session
) -> None:
    # An XP no other test's user has (and below the top score another test
    # sets): the three players are side by side, ranked in the order they reached it.
    xp = str(10_000 + uuid.uuid4().int % 89_000)
    quest = {
        "id": f"e2e-{uuid.uuid4().hex[:10]}",
        "name": "Neighbours",
        "type": "QUEST_TYPE_SOCIAL",
    }
    created = client.post(
        "/api/admin/quests", json={"quest": {**quest, "xpReward": xp}}, headers=admin.auth
    )
    assert created.status_code == 201, created.text
    users = [uuid.uuid4().hex for _ in range(3)]
    tokens = {user: {"Authorization": f"Bearer {stack.token_for(user)}"} for user in users}
    for user in users:
        done = client.post(
            f"/api/quests/{quest['id']}/complete",
            headers={**tokens[user], "Idempotency-Key": uuid.uuid4().hex},
        )
        assert done.status_code == 200, done.text

    middle = client.get(AROUND, params={"count": 1}, headers=tokens[users[1]])
    assert middle.status_code == 200, middle.text
    assert middle.headers["cache-control"] == "private, no-cache"
    body = middle.json()
    own = body["own"]
    assert (own["userId"], own["totalXp"]) == (users[1], xp)
    rank = int(own["rank"])
    assert [(e["userId"], int(e["rank"])) for e in body["entries"]] == [
        (users[0], rank - 1),
        (users[1], rank),
        (users[2], rank + 1),
    ]
    wide = client.get(AROUND, headers=tokens[users[1]]).json()  # 5 each side by default
    assert [e["userId"] for e in wide["entries"]].index(users[1]) == min(rank - 1, 5)

    stranger = {"Authorization": f"Bearer {stack.token_for(uuid.uuid4().hex)}"}
    empty = client.get(AROUND, headers=stranger)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"entries": [], "own": None}

    refused = problem(client.get(AROUND, params={"count": 51}, headers=stranger), 400)
    assert refused["error"] == "invalid_count"
    assert refused["field"] == "count"
    problem(client.get(AROUND), 401, "unauthenticated")
