"""Quests through the real gateway, auth, wallet and quests processes: admin
routes guarded, a series completed in order, exactly-once answers with
idempotent replays, coin rewards in the wallet, the leaderboard's cache
headers, and the public lookups' JSON shapes field by field."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_auth_flow import (
    Session,
    login,
    make_admin,
    problem,
)
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin(stack: Stack, mailbox: Mailbox) -> Session:
    return make_admin(stack, mailbox)


def new_quest(client: httpx.Client, admin: Session, **quest: Any) -> dict[str, Any]:
    body = {
        "quest": {
            "id": f"e2e-{uuid.uuid4().hex[:10]}",
            "name": "Follow us on X",
            "type": "QUEST_TYPE_SOCIAL",
            "xpReward": "40",
            **quest,
        }
    }
    response = client.post("/api/admin/quests", json=body, headers=admin.auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["quest"]
    return created


def complete(
    client: httpx.Client, session: Session, quest_id: str, key: str | None = None
) -> httpx.Response:
    headers = {**session.auth, "Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(f"/api/quests/{quest_id}/complete", headers=headers)


def test_admin_routes_refuse_anonymous_and_users(
    client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    user = login(client, mailbox)
    quest = new_quest(client, admin)
    body = {"quest": {"name": "x", "type": "QUEST_TYPE_SOCIAL", "xpReward": "1"}}
    routes = [
        ("POST", "/api/admin/quests", body),
        ("PUT", f"/api/admin/quests/{quest['id']}", body),
        ("POST", f"/api/admin/quests/{quest['id']}/archive", {}),
    ]
    for method, path, payload in routes:
        problem(client.request(method, path, json=payload), 401, "unauthenticated")
        problem(client.request(method, path, json=payload, headers=user.auth), 403, "forbidden")
    bad = client.post(
        "/api/admin/quests",
        json={"quest": {"name": "", "type": "QUEST_TYPE_SOCIAL", "xpReward": "1"}},
        headers=admin.auth,
    )
    assert problem(bad, 400, "invalid_quest")["field"] == "quest.name"
    taken = client.post(
        "/api/admin/quests",
        json={"quest": {**body["quest"], "id": quest["id"]}},
        headers=admin.auth,
    )
    problem(taken, 409, "quest_exists")


def test_a_series_completes_once_in_order_and_pays_once(
    client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    first = new_quest(client, admin, coinReward={"currency": "MQC", "amount": "2.5"})
    second = new_quest(client, admin, name="Join Discord", prerequisiteIds=[first["id"]])
    assert first["coinReward"] == {"currency": "MQC", "units": "250000000", "amount": "2.50000000"}
    assert (first["active"], first["archived"], second["prerequisiteIds"]) == (
        True,
        False,
        [first["id"]],
    )
    user = login(client, mailbox)

    listing = client.get("/api/quests", headers=user.auth)
    assert listing.status_code == 200, listing.text
    rows = {row["quest"]["id"]: row for row in listing.json()["quests"]}
    assert rows[first["id"]]["available"] is True
    assert rows[second["id"]]["available"] is False
    assert rows[second["id"]]["missingPrerequisiteIds"] == [first["id"]]

    early = problem(complete(client, user, second["id"]), 412, "prerequisite_missing")
    assert early["field"] == "questId"
    missing_key = client.post(f"/api/quests/{first['id']}/complete", headers=user.auth)
    problem(missing_key, 400, "idempotency_key_required")

    key = uuid.uuid4().hex
    done = complete(client, user, first["id"], key)
    assert done.status_code == 200, done.text
    assert done.headers["x-idempotency"] == "MISS"
    body = done.json()
    completion = body["completion"]
    assert completion["questId"] == first["id"]
    assert completion["userId"] == user.user["id"]
    assert (completion["xpEarned"], completion["period"], completion["creditPending"]) == (
        "40",
        "once",
        False,
    )
    assert completion["coinReward"]["amount"] == "2.50000000"
    assert body["totalXp"] == "40"

    replay = complete(client, user, first["id"], key)
    assert replay.status_code == 200
    assert replay.headers["x-idempotency"] == "HIT"
    assert replay.json() == body

    again = problem(complete(client, user, first["id"]), 409, "already_completed")
    assert again["completion"] == {
        "id": completion["id"],
        "questId": first["id"],
        "period": "once",
        "completedAt": completion["completedAt"],
        "xpEarned": 40,
    }

    balance = client.get("/api/wallet/balance", headers=user.auth).json()["balances"]
    assert {row["currency"]: row["available"] for row in balance}["MQC"] == "2.50000000"
    history = client.get("/api/wallet/history", headers=user.auth).json()["entries"]
    assert [(e["source"], e["sourceId"]) for e in history] == [
        ("quests.completion", completion["id"])
    ]

    assert complete(client, user, second["id"]).json()["totalXp"] == "80"
    problem(complete(client, user, "no-such-quest"), 404, "quest_not_found")


def test_archived_quests_leave_the_catalogue_and_stay_in_history(
    client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    quest = new_quest(client, admin, name="Old campaign")
    user = login(client, mailbox)
    assert complete(client, user, quest["id"]).status_code == 200
    archived = client.post(f"/api/admin/quests/{quest['id']}/archive", headers=admin.auth)
    assert archived.status_code == 200, archived.text
    assert archived.json()["quest"]["archived"] is True
    problem(complete(client, admin, quest["id"]), 409, "quest_inactive")
    listed = client.get("/api/quests", headers=user.auth).json()["quests"]
    assert quest["id"] not in {row["quest"]["id"] for row in listed}
    wallet = user.user["walletAddress"]
    history = client.get(f"/api/public/users/interaction/{wallet}").json()["completedQuests"]
    assert [item["questId"] for item in history] == [quest["id"]]


def test_interaction_lookup_shape_field_by_field(
    client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    quest = new_quest(client, admin, name="Bridge to mainnet", type="QUEST_TYPE_ONCHAIN")
    user = login(client, mailbox)
    renamed = client.patch(
        "/api/auth/me", json={"username": f"m{uuid.uuid4().hex[:8]}"}, headers=user.auth
    )
    assert renamed.status_code == 200, renamed.text
    username = renamed.json()["user"]["username"]
    done = complete(client, user, quest["id"]).json()["completion"]
    wallet = user.user["walletAddress"]

    response = client.get(f"/api/public/users/interaction/{wallet.lower()}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == [
        "hasInteracted",
        "walletAddress",
        "username",
        "totalXP",
        "completedQuests",
        "questsCompleted",
    ]
    assert body["hasInteracted"] is True
    assert body["walletAddress"] == wallet  # EIP-55, whatever case was asked
    assert body["username"] == username
    assert body["totalXP"] == 40
    assert body["questsCompleted"] == 1
    [item] = body["completedQuests"]
    assert list(item) == ["questId", "questName", "completedAt", "xpEarned"]
    assert item["questId"] == quest["id"]
    assert item["questName"] == "Bridge to mainnet"
    assert item["completedAt"] == done["completedAt"]
    assert item["xpEarned"] == 40

    stranger = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    unknown = client.get(f"/api/public/users/interaction/{stranger}")
    assert unknown.status_code == 200, unknown.text
    assert unknown.json() == {
        "hasInteracted": False,
        "walletAddress": unknown.json()["walletAddress"],
        "username": "",
        "totalXP": 0,
        "completedQuests": [],
        "questsCompleted": 0,
    }
    assert unknown.json()["walletAddress"].lower() == stranger
    bad = problem(client.get("/api/public/users/interaction/0x1234"), 400, "invalid_wallet_address")
    assert bad["field"] == "walletAddress"
    assert "Traceback" not in bad["detail"]

    eligible = f"/api/public/quests/{quest['id']}/eligible"
    assert client.get(eligible, params={"address": wallet}).json() == {"result": 1}
    assert client.get(eligible, params={"address": stranger}).json() == {"result": 0}
    problem(client.get(eligible, params={"address": "nope"}), 400, "invalid_wallet_address")
    problem(client.get(eligible), 400, "invalid_wallet_address")
    problem(
        client.get("/api/public/quests/ghost/eligible", params={"address": wallet}),
        404,
        "quest_not_found",
    )


def test_leaderboard_cache_headers_and_own_rank(
    client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    quest = new_quest(client, admin, name="Big one", xpReward="100000")
    user = login(client, mailbox)
    assert complete(client, user, quest["id"]).status_code == 200  # a new top score

    miss = client.get("/api/quests/leaderboard", params={"limit": 5})
    assert miss.status_code == 200, miss.text
    assert miss.headers["x-cache"] == "MISS"
    assert miss.headers["cache-control"] == "public, max-age=10"
    entries = miss.json()["entries"]
    assert len(entries) <= 5
    assert entries[0]["userId"] == user.user["id"]
    assert (entries[0]["rank"], entries[0]["totalXp"]) == ("1", "100000")
    assert "own" not in miss.json()

    hit = client.get("/api/quests/leaderboard", params={"limit": 5})
    assert hit.headers["x-cache"] == "HIT"
    assert hit.json() == miss.json()

    mine = client.get("/api/quests/leaderboard", headers=user.auth)
    assert mine.headers["cache-control"] == "private, max-age=10"
    assert mine.json()["own"]["rank"] == "1"
    assert mine.json()["own"]["userId"] == user.user["id"]
    problem(client.get("/api/quests/leaderboard", params={"limit": 101}), 400, "invalid_limit")
    problem(
        client.get("/api/quests/leaderboard", headers={"Authorization": "Bearer nope"}),
        401,
    )
