"""Boosts through the real gateway, mining service, worker and wallet: coins
mined by clicks buy a richer tap, the next clicks earn more; too little money
is refused with nothing changed; a retried purchase debits once."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_auth_flow import problem
from tests.e2e.test_mining_flow import click, mqc_balance, wait_done

pytestmark = pytest.mark.e2e


def buy(
    client: httpx.Client,
    token: str,
    boost: str,
    key: str | None,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/api/boosts/{boost}/purchase", json=body, headers=headers)


def boosts(client: httpx.Client, token: str) -> dict[str, dict[str, Any]]:
    response = client.get("/api/boosts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("private")
    return {boost["id"]: boost for boost in response.json()["boosts"]}


def spends(client: httpx.Client, token: str) -> list[dict[str, Any]]:
    response = client.get("/api/wallet/history", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return [e for e in response.json()["entries"] if e["kind"] == "ENTRY_KIND_SPEND"]


def mine(client: httpx.Client, token: str, taps: int) -> dict[str, Any]:
    key = uuid.uuid4().hex
    queued = click(client, token, key, {"count": taps})
    assert queued.status_code == 202, queued.text
    assert queued.json()["acceptedTaps"] == taps
    return wait_done(client, token, key)


def test_mined_coins_buy_a_tap_boost_and_the_next_clicks_earn_more(
    stack: Stack, client: httpx.Client
) -> None:
    token = stack.token_for(uuid.uuid4().hex)
    listed = boosts(client, token)
    assert set(listed) == {"tank", "regen", "tap"}
    tap = listed["tap"]
    assert (tap["level"], tap["maxLevel"], tap["effect"], tap["perLevel"]) == (
        0,
        10,
        "BOOST_EFFECT_TAP_REWARD",
        "0.00100000",
    )
    assert tap["nextPrice"]["amount"] == "0.05000000"

    assert mine(client, token, 100)["reward"]["amount"] == "0.10000000"
    assert mqc_balance(client, token) == "0.10000000"

    key = uuid.uuid4().hex
    bought = buy(client, token, "tap", key, {"level": 1})
    assert bought.status_code == 200, bought.text
    assert bought.headers["x-idempotency"] == "MISS"
    assert bought.headers["cache-control"] == "no-store"
    body = bought.json()
    assert (body["level"], body["price"]["amount"], body["balance"]["amount"]) == (
        1,
        "0.05000000",
        "0.05000000",
    )
    assert (body["boost"]["level"], body["boost"]["effectNow"]) == (1, "0.00100000")
    assert body["boost"]["nextPrice"]["amount"] == "0.10000000"
    assert body["purchaseId"].endswith(f":{key}")

    # A retry with the same key answers the same purchase: one debit.
    replay = buy(client, token, "tap", key, {"level": 1})
    assert replay.status_code == 200, replay.text
    assert replay.headers["x-idempotency"] == "HIT"
    assert {**replay.json(), "duplicate": False} == body
    assert mqc_balance(client, token) == "0.05000000"
    (spend,) = spends(client, token)
    assert (spend["id"], spend["source"], spend["amount"]["amount"]) == (
        body["debitEntryId"],
        "mining.boost",
        "0.05000000",
    )
    assert boosts(client, token)["tap"]["level"] == 1

    # The click script reads the level: each tap now earns 0.001 + 0.001.
    assert mine(client, token, 10)["reward"]["amount"] == "0.02000000"
    assert mqc_balance(client, token) == "0.07000000"


def test_a_purchase_the_balance_does_not_cover_is_refused_and_changes_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    token = stack.token_for(uuid.uuid4().hex)
    mine(client, token, 30)  # 0.03 MQC: the tap boost costs 0.05
    key = uuid.uuid4().hex
    refusal = problem(buy(client, token, "tap", key), 412, "insufficient_funds")
    assert "nothing was debited" in refusal["detail"]
    # The same key answers the same refusal; nothing moved either time.
    problem(buy(client, token, "tap", key), 412, "insufficient_funds")
    assert mqc_balance(client, token) == "0.03000000"
    assert spends(client, token) == []
    assert boosts(client, token)["tap"]["level"] == 0


def test_purchase_mistakes_are_4xx(stack: Stack, client: httpx.Client) -> None:
    token = stack.token_for(uuid.uuid4().hex)
    problem(buy(client, token, "tap", None), 400, "idempotency_key_required")
    problem(buy(client, "not-a-token", "tap", uuid.uuid4().hex), 401)
    problem(buy(client, token, "luck", uuid.uuid4().hex), 404, "boost_not_found")
    body = problem(
        buy(client, token, "tap", uuid.uuid4().hex, {"level": 3}), 412, "boost_level_changed"
    )
    assert body["field"] == "level"
    problem(buy(client, token, "tap", uuid.uuid4().hex, {"level": "two"}), 400)
    problem(client.get("/api/boosts"), 401)
