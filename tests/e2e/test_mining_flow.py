"""Mining through the real gateway, mining service, worker, wallet, Redis and
MongoDB: clicks move queued → done and the wallet holds exactly the rewards;
replays change nothing; backpressure answers 503 and an exhausted user 429."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_auth_flow import Session, login, problem
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e


def click(
    client: httpx.Client, token: str, key: str | None, body: dict[str, Any] | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/mining/click", json=body, headers=headers)


def status_of(client: httpx.Client, token: str, key: str) -> httpx.Response:
    return client.get(
        "/api/mining/click/status",
        params={"key": key},
        headers={"Authorization": f"Bearer {token}"},
    )


def wait_done(client: httpx.Client, token: str, key: str, seconds: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = status_of(client, token, key)
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body
        assert time.monotonic() < deadline, f"click {key} still queued"
        time.sleep(0.1)


def mqc_balance(client: httpx.Client, token: str) -> str:
    response = client.get("/api/wallet/balance", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return str(next(b["available"] for b in response.json()["balances"] if b["currency"] == "MQC"))


def test_a_click_is_queued_then_done_and_credited_once(
    stack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    me: Session = login(client, mailbox)
    token = me.access_token
    first_key, second_key = uuid.uuid4().hex, uuid.uuid4().hex

    queued = click(client, token, first_key, {"count": 3})
    assert queued.status_code == 202, queued.text
    assert queued.json() == {"key": first_key, "status": "queued", "acceptedTaps": 3}
    assert queued.headers["x-idempotency"] == "MISS"
    assert queued.headers["ratelimit-policy"]  # the mining limits applied

    replay = click(client, token, first_key, {"count": 3})
    assert replay.status_code == 200, replay.text
    assert replay.json() == {**queued.json(), "deduplicated": True}
    assert replay.headers["x-idempotency"] == "HIT"
    problem(click(client, token, first_key, {"count": 4}), 422, "idempotency_key_reused")

    now = int(time.time() * 1000)
    tapped = click(
        client,
        token,
        second_key,
        {"count": 2, "firstTapAt": _rfc3339(now - 500), "lastTapAt": _rfc3339(now)},
    )
    assert tapped.status_code == 202, tapped.text

    done = wait_done(client, token, first_key)
    assert done == {
        "key": first_key,
        "status": "done",
        "acceptedTaps": 3,
        "reward": {"currency": "MQC", "units": "300000", "amount": "0.00300000"},
    }
    assert wait_done(client, token, second_key)["acceptedTaps"] == 2
    assert mqc_balance(client, token) == "0.00500000"

    # Replaying a done key still changes nothing.
    assert click(client, token, first_key, {"count": 3}).status_code == 200
    time.sleep(0.5)
    assert mqc_balance(client, token) == "0.00500000"

    status = client.get("/api/mining/status", headers=me.auth)
    assert status.status_code == 200, status.text
    body = status.json()
    assert (body["totalTaps"], body["todayTaps"], body["maxEnergy"]) == ("5", "5", 1000)
    assert body["totalReward"]["amount"] == "0.00500000"
    assert 995 <= body["energy"] <= 1000
    cache = status.headers["cache-control"]
    assert cache.startswith("private")
    assert "max-age=" in cache
    assert "stale-while-revalidate=" in cache


def test_the_worker_yields_the_cpu_to_the_request_path(stack: Stack) -> None:
    """MINING_WORKER_NICE (default 10): on a shared box the worker takes the
    CPU the gateway and the mining service leave."""
    gateway = os.getpriority(os.PRIO_PROCESS, stack.child("gateway").pid)
    mining = os.getpriority(os.PRIO_PROCESS, stack.child("mining").pid)
    worker = os.getpriority(os.PRIO_PROCESS, stack.child("mining-worker").pid)
    assert gateway == mining
    assert worker == min(19, gateway + 10)


def test_the_request_id_travels_to_the_click_record(stack: Stack, client: httpx.Client) -> None:
    """HTTP header → gRPC metadata → stream entry → the worker's MongoDB record."""
    user_id, key, request_id = uuid.uuid4().hex, uuid.uuid4().hex, f"trace-{uuid.uuid4().hex}"
    token = stack.token_for(user_id)
    response = client.post(
        "/api/mining/click",
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
            "X-Request-ID": request_id,
        },
    )
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == request_id
    wait_done(client, token, key)
    mongo: MongoClient[dict[str, Any]] = MongoClient(stack.env["MONGODB_URI"])
    try:
        record = mongo[stack.env["MINING_MONGODB_DATABASE"]]["clicks"].find_one(
            {"_id": f"{user_id}:{key}"}
        )
    finally:
        mongo.close()
    assert record is not None
    assert (record["request_id"], record["taps"], record["reward_units"]) == (
        request_id,
        1,
        100_000,
    )


def test_click_mistakes_are_4xx(stack: Stack, client: httpx.Client) -> None:
    token = stack.token_for(uuid.uuid4().hex)
    problem(click(client, token, None), 400, "idempotency_key_required")
    problem(click(client, "not-a-token", uuid.uuid4().hex), 401)
    problem(click(client, token, uuid.uuid4().hex, {"count": 100_000}), 400, "invalid_click")
    problem(click(client, token, uuid.uuid4().hex, {"count": "lots"}), 400)
    body = problem(
        click(
            client,
            token,
            uuid.uuid4().hex,
            {"firstTapAt": "2026-01-02T00:00:00Z", "lastTapAt": "2026-01-01T00:00:00Z"},
        ),
        400,
        "invalid_click",
    )
    assert body["field"] == "lastTapAt"
    problem(status_of(client, token, uuid.uuid4().hex), 404, "click_not_found")
    problem(
        client.get("/api/mining/click/status", headers={"Authorization": f"Bearer {token}"}), 400
    )


def test_nobody_reads_another_users_click(stack: Stack, client: httpx.Client) -> None:
    owner, other = stack.token_for(uuid.uuid4().hex), stack.token_for(uuid.uuid4().hex)
    key = uuid.uuid4().hex
    assert click(client, owner, key).status_code == 202
    problem(status_of(client, other, key), 404, "click_not_found")
    # The same key is the other user's own, separate click.
    assert click(client, other, key).status_code == 202


@pytest.fixture(scope="module")
def tight_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack with a queue of 3 and 5 energy that barely regenerates."""
    yield from start_stack(
        request,
        tmp_path_factory,
        "tight",
        {
            "MINING_QUEUE_MAX_DEPTH": "3",
            "MINING_ENERGY_MAX": "5",
            "MINING_ENERGY_REGEN_PER_SECOND": "0.01",
        },
    )


def test_a_full_queue_is_503_and_drains_when_the_worker_is_back(tight_stack: Stack) -> None:
    tight_stack.child("mining-worker").stop()
    users = [tight_stack.token_for(uuid.uuid4().hex) for _ in range(4)]
    with tight_stack.client() as client:
        keys = [uuid.uuid4().hex for _ in users]
        for token, key in zip(users[:3], keys, strict=False):
            assert click(client, token, key).status_code == 202
        full = click(client, users[3], keys[3])
        problem(full, 503, "queue_full")
        assert full.headers["retry-after"] == "1"
        problem(status_of(client, users[3], keys[3]), 404)  # refused: never queued

        tight_stack.restart("mining-worker")
        for token, key in zip(users[:3], keys, strict=False):
            assert wait_done(client, token, key)["status"] == "done"
        assert click(client, users[3], keys[3]).status_code == 202


def test_an_exhausted_user_gets_429_with_the_refill_time(tight_stack: Stack) -> None:
    token = tight_stack.token_for(uuid.uuid4().hex)
    with tight_stack.client() as client:
        spent = click(client, token, uuid.uuid4().hex, {"count": 8})
        assert spent.status_code == 202, spent.text
        assert spent.json()["acceptedTaps"] == 5
        key = uuid.uuid4().hex
        tired = click(client, token, key)
        body = problem(tired, 429, "energy_exhausted")
        assert 99 <= int(tired.headers["retry-after"]) <= 100  # 1 energy at 0.01/s
        assert "100 s" in body["detail"]
        throttled = status_of(client, token, key)
        status = problem(throttled, 429, "energy_exhausted")
        assert (status["key"], status["clickStatus"]) == (key, "throttled")
        assert 1 <= int(throttled.headers["retry-after"]) <= 100


def _rfc3339(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line[line.index("{") :]))
    return lines


def _batch_metrics(stack: Stack) -> tuple[float, float]:
    text = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("gateway_click_batch_size_count", "gateway_click_batch_size_sum"))
    }
    return values["gateway_click_batch_size_count"], values["gateway_click_batch_size_sum"]


def test_concurrent_clicks_are_sent_together_and_each_is_answered_and_credited(
    stack: Stack, client: httpx.Client
) -> None:
    """Forty users click at once: the gateway sends their clicks to the mining
    service in fewer calls than clicks, every click still gets its own 202 and
    its own credit, and a replay in the crowd is still its own 200."""
    users = [uuid.uuid4().hex for _ in range(40)]
    tokens = [stack.token_for(user) for user in users]
    keys = [uuid.uuid4().hex for _ in users]
    first = click(client, tokens[0], keys[0])
    assert first.status_code == 202, first.text
    calls_before, clicks_before = _batch_metrics(stack)

    async def crowd() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/api/mining/click",
                        json={"count": 2},
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                    )
                    for token, key in zip(tokens, keys, strict=True)
                )
            )

    answers = asyncio.run(crowd())
    # The first key was sent with another count before: 422; the rest are new.
    problem(answers[0], 422, "idempotency_key_reused")
    for answer, key in zip(answers[1:], keys[1:], strict=True):
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"key": key, "status": "queued", "acceptedTaps": 2}
    calls, clicks = _batch_metrics(stack)
    assert clicks - clicks_before == 40
    # Each queued click's access line says how deep the queue was.
    logged = {
        line.get("idempotencyKey"): line
        for line in _json_lines(stack.log("gateway"))
        if line.get("logger") == "gateway.access" and line.get("route") == "/api/mining/click"
    }
    assert all(logged[key]["queueDepth"] >= 1 for key in keys[1:]), logged
    assert calls - calls_before < 40
    for token, key in zip(tokens[1:], keys[1:], strict=True):
        assert wait_done(client, token, key)["reward"]["units"] == "200000"
    assert mqc_balance(client, tokens[0]) == "0.00100000"
    assert mqc_balance(client, tokens[1]) == "0.00200000"


def test_an_explicit_zero_count_is_refused(stack: Stack, client: httpx.Client) -> None:
    token = stack.token_for(uuid.uuid4().hex)
    refused = click(client, token, uuid.uuid4().hex, {"count": 0})
    assert problem(refused, 400, "invalid_field")["field"] == "count"
    assert click(client, token, uuid.uuid4().hex, {}).json()["acceptedTaps"] == 1
