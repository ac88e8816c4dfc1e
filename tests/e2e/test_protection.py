"""Rate limits and idempotency through the real gateway and auth processes.

This stack runs the shipped policies (no roomy overrides), except where a
test names the override it needs to stay short.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis as sync_redis

from bench.harness.cpu import children_of
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_auth_flow import Session, login, new_email, new_wallet, problem
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    yield from start_stack(
        request,
        tmp_path_factory,
        "guarded",
        {
            "PROFILE_RATE_LIMIT_USER_RATE": "5",
            "TOKEN_RATE_LIMIT_IP_RATE": "5",
            "IDEMPOTENCY_LEASE_SECONDS": "8",
            "GRPC_TIMEOUT_SECONDS": "30",
        },
        roomy=False,
    )


@pytest.fixture
def client(guarded: Stack) -> Iterator[httpx.Client]:
    with sync_redis.Redis.from_url(guarded.env["REDIS_URL"]) as store:
        store.flushdb()  # fresh buckets: other stacks share this Redis
    with guarded.client() as http:
        yield http


def test_register_is_limited_per_ip_with_headers(client: httpx.Client) -> None:
    answers = [
        client.post(
            "/api/auth/register", json={"walletAddress": new_wallet(), "email": new_email()}
        )
        for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [201] * 5 + [429]
    first = answers[0].headers
    assert first["ratelimit-limit"] == "5"
    assert first["ratelimit-remaining"] == "4"
    assert first["ratelimit-policy"] == "5;w=3600, 10;w=86400"
    assert first["x-ratelimit-remaining"] == "4"
    body = problem(answers[5], 429, "rate_limited")
    assert "register" in body["detail"]
    assert 600 <= int(answers[5].headers["retry-after"]) <= 720  # one token per 12 minutes


def test_a_forged_forwarded_for_does_not_change_the_clients_bucket(
    client: httpx.Client,
) -> None:
    """No proxy is trusted here: X-Forwarded-For (or Forwarded) is the client's
    own say-so, and the per-IP limit counts the TCP peer whatever it claims."""
    answers = [
        client.post(
            "/api/auth/register",
            json={"walletAddress": new_wallet(), "email": new_email()},
            headers={
                "X-Forwarded-For": f"198.51.100.{n}",
                "Forwarded": f"for=198.51.100.{n}",
                "X-Real-IP": f"198.51.100.{n}",
            },
        )
        for n in range(6)
    ]
    assert [a.status_code for a in answers] == [201] * 5 + [429]


def test_bad_tokens_are_charged_to_a_bucket_before_any_verification(
    guarded: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    """Each token the cache does not know costs a token of the client's
    `token` bucket (5 a minute in this stack) before an Ed25519 check."""
    session = login(client, mailbox)
    assert client.get("/api/auth/me", headers=session.auth).status_code == 200  # 1 of 5
    header, payload, signature = session.access_token.split(".")

    def forged(n: int) -> str:
        flipped = "A" if signature[n] != "A" else "B"
        return f"{header}.{payload}.{signature[:n]}{flipped}{signature[n + 1 :]}"

    answers = [
        client.get("/api/auth/me", headers={"Authorization": f"Bearer {forged(n)}"})
        for n in range(6)
    ]
    assert [answer.status_code for answer in answers] == [401] * 4 + [429] * 2
    body = problem(answers[4], 429, "rate_limited")
    assert "'token'" in body["detail"]
    assert int(answers[4].headers["retry-after"]) >= 1
    # the real client's token, verified once, is answered from the cache: no charge
    assert client.get("/api/auth/me", headers=session.auth).status_code == 200


def test_limits_per_user_are_per_user(client: httpx.Client, mailbox: Mailbox) -> None:
    alice, bob = login(client, mailbox), login(client, mailbox)
    updates = [
        client.patch("/api/auth/me", json={"username": f"alice{n}"}, headers=alice.auth)
        for n in range(6)
    ]
    assert [u.status_code for u in updates] == [200] * 5 + [429]
    assert updates[0].headers["ratelimit-policy"] == "5;w=300"
    assert client.patch("/api/auth/me", json={"username": "bob1"}, headers=bob.auth).is_success


def test_idempotency_keys_are_scoped_to_the_user(client: httpx.Client, mailbox: Mailbox) -> None:
    alice, bob = login(client, mailbox), login(client, mailbox)
    key = {"Idempotency-Key": "same-key"}
    a = client.patch("/api/auth/me", json={"username": "alicex"}, headers=alice.auth | key)
    b = client.patch("/api/auth/me", json={"username": "bobx"}, headers=bob.auth | key)
    assert (a.status_code, a.headers["x-idempotency"]) == (200, "MISS")
    assert (b.status_code, b.headers["x-idempotency"]) == (200, "MISS")
    replay = client.patch("/api/auth/me", json={"username": "alicex"}, headers=alice.auth | key)
    assert (replay.headers["x-idempotency"], replay.json()) == ("HIT", a.json())
    reused = client.patch("/api/auth/me", json={"username": "other"}, headers=alice.auth | key)
    problem(reused, 422, "idempotency_key_reused")


def leases_in(store: sync_redis.Redis) -> set[bytes]:
    """The idempotency records still in flight (a lease, not a kept answer)."""
    leases: set[bytes] = set()
    for key in store.scan_iter("mq:idem:*"):
        record = store.get(key)
        if isinstance(record, bytes) and record.startswith(b"P"):
            leases.add(key)
    return leases


def test_a_gateway_killed_mid_request_leaves_a_lease_that_expires(
    guarded: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    """Claim taken, gateway SIGKILLed before it could store the answer: the
    retry is told to wait while the lease lives, then runs."""
    session: Session = login(client, mailbox)
    # Every gateway process holds the public keys before the service is frozen
    # (new connections are spread over the processes).
    for _ in range(16):
        with guarded.client() as fresh:
            assert fresh.get("/api/auth/me", headers=session.auth).status_code == 200
    headers = session.auth | {"Idempotency-Key": "crash-1"}
    body = {"username": "crashy"}
    auth = guarded.child("auth").process
    outcome: dict[str, Any] = {}

    def first_attempt() -> None:
        try:
            with guarded.client() as http:
                outcome["answer"] = http.patch("/api/auth/me", json=body, headers=headers)
        except httpx.TransportError as error:
            outcome["error"] = error

    os.kill(auth.pid, signal.SIGSTOP)  # the service hangs: the request stays in flight
    try:
        attempt = threading.Thread(target=first_attempt)
        attempt.start()
        with sync_redis.Redis.from_url(guarded.env["REDIS_URL"]) as store:
            deadline = time.monotonic() + 10
            while not (leases := leases_in(store)):
                assert time.monotonic() < deadline, "the request never claimed its key"
                time.sleep(0.02)
        # Every gateway process at once (GATEWAY_WORKERS: the parent and its
        # workers), as an OOM kill or a lost machine would.
        gateway = guarded.child("gateway").process
        for pid in children_of(gateway.pid):
            os.kill(pid, signal.SIGKILL)
        gateway.kill()
        gateway.wait()
    finally:
        os.kill(auth.pid, signal.SIGCONT)
    guarded.restart("gateway")
    attempt.join(10)
    assert "error" in outcome, "the killed gateway cannot have answered"

    early = client.patch("/api/auth/me", json=body, headers=headers)
    problem(early, 409, "idempotency_key_in_flight")
    assert early.headers["retry-after"] == "1"
    with sync_redis.Redis.from_url(guarded.env["REDIS_URL"]) as store:
        deadline = time.monotonic() + 15
        while leases_in(store) & leases:  # IDEMPOTENCY_LEASE_SECONDS=8
            assert time.monotonic() < deadline, "the dead gateway's lease never expired"
            time.sleep(0.1)
    retry = client.patch("/api/auth/me", json=body, headers=headers)
    assert (retry.status_code, retry.headers["x-idempotency"]) == (200, "MISS")
    assert retry.json()["user"]["username"] == "crashy"
    replay = client.patch("/api/auth/me", json=body, headers=headers)
    assert replay.headers["x-idempotency"] == "HIT"
