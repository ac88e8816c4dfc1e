"""The wallet through the real gateway: balances and history as decimal strings,
signed deposit webhooks (good, bad, stale, replayed, unmatched), withdrawals
held until an admin decides, and nobody seeing anybody else's money."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis as sync_redis

from gateway.webhooks import signature
from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from tests.e2e.conftest import WEBHOOK_SECRET, Stack
from tests.e2e.test_auth_flow import (
    Session,
    login,
    make_admin,
    problem,
)
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e

ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture(scope="module")
def admin(stack: Stack, mailbox: Mailbox) -> Session:
    return make_admin(stack, mailbox)


@pytest.fixture(scope="module")
def wallet_rpc(stack: Stack) -> Iterator[wallet_pb2_grpc.WalletServiceStub]:
    """The internal gRPC side (Credit has no HTTP route)."""
    with stack.channel("wallet", identity="quests") as channel:
        yield wallet_pb2_grpc.WalletServiceStub(channel)


def credit(rpc: wallet_pb2_grpc.WalletServiceStub, user_id: str, amount: str) -> None:
    rpc.Credit(
        wallet_pb2.CreditRequest(
            entries=[
                wallet_pb2.CreditEntry(
                    user_id=user_id,
                    amount=common_pb2.Money(currency="MQC", amount=amount),
                    source="quests.completion",
                    source_id=uuid.uuid4().hex,
                )
            ]
        ),
        timeout=10,
    )


def balances(client: httpx.Client, session: Session) -> dict[str, dict[str, Any]]:
    response = client.get("/api/wallet/balance", headers=session.auth)
    assert response.status_code == 200, response.text
    return {row["currency"]: row for row in response.json()["balances"]}


def withdraw(
    client: httpx.Client, session: Session, amount: str, key: str | None = None, **body: Any
) -> httpx.Response:
    headers = {**session.auth, "Idempotency-Key": key or uuid.uuid4().hex}
    payload = {
        "amount": {"currency": "MQC", "amount": amount},
        "chain": "ethereum",
        "address": ADDRESS.lower(),
        **body,
    }
    return client.post("/api/wallet/withdrawals", json=payload, headers=headers)


def signed_deposit(
    client: httpx.Client, payload: dict[str, Any], *, at: float | None = None, secret: str = ""
) -> httpx.Response:
    body = json.dumps(payload).encode()
    stamp = str(int(time.time() if at is None else at))
    return client.post(
        "/api/webhooks/deposits",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Timestamp": stamp,
            "X-Webhook-Signature": signature(secret or WEBHOOK_SECRET, stamp, body),
        },
    )


def deposit_payload(reference: str, amount: str = "12.5") -> dict[str, Any]:
    return {
        "chain": "ethereum",
        "txHash": "0x" + uuid.uuid4().hex * 2,
        "logIndex": 0,
        "depositReference": reference,
        "amount": {"currency": "USDT", "amount": amount},
    }


def test_public_wallets_and_the_deposit_reference(client: httpx.Client, mailbox: Mailbox) -> None:
    wallets = client.get("/api/public/wallets")
    assert wallets.status_code == 200, wallets.text
    assert wallets.json() == {
        "wallets": [{"currency": "USDT", "chain": "ethereum", "address": ADDRESS}]
    }
    assert wallets.headers["cache-control"] == "public, max-age=60"
    alice = login(client, mailbox)
    first = client.get("/api/wallet/deposit-reference", headers=alice.auth).json()
    again = client.get("/api/wallet/deposit-reference", headers=alice.auth).json()
    assert first["depositReference"] == again["depositReference"]
    assert first["depositReference"].startswith("MQ")
    assert first["wallets"] == wallets.json()["wallets"]
    assert balances(client, alice)["MQC"] == {
        "currency": "MQC",
        "availableUnits": "0",
        "heldUnits": "0",
        "precision": 8,
        "available": "0.00000000",
        "held": "0.00000000",
    }


def test_signed_deposits_credit_once_and_forgeries_are_refused(
    client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    alice = login(client, mailbox)
    reference = client.get("/api/wallet/deposit-reference", headers=alice.auth).json()
    payload = deposit_payload(reference["depositReference"])

    recorded = signed_deposit(client, payload)
    assert recorded.status_code == 200, recorded.text
    assert (recorded.json()["applied"], recorded.json()["matched"]) == (True, True)
    replayed = signed_deposit(client, payload)  # inside the window: idempotent
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["applied"] is False
    assert balances(client, alice)["USDT"]["available"] == "12.500000"

    problem(signed_deposit(client, payload, secret="x" * 32), 401, "webhook_signature_invalid")
    stale = deposit_payload(reference["depositReference"])
    problem(signed_deposit(client, stale, at=time.time() - 3600), 401, "webhook_timestamp_expired")
    unsigned = client.post("/api/webhooks/deposits", json=stale)
    problem(unsigned, 401, "webhook_signature_missing")
    tampered_body = json.dumps({**stale, "amount": {"currency": "USDT", "amount": "999"}})
    stamp = str(int(time.time()))
    tampered = client.post(
        "/api/webhooks/deposits",
        content=tampered_body,
        headers={
            "X-Webhook-Timestamp": stamp,
            "X-Webhook-Signature": signature(WEBHOOK_SECRET, stamp, json.dumps(stale).encode()),
        },
    )
    problem(tampered, 401, "webhook_signature_invalid")
    assert balances(client, alice)["USDT"]["available"] == "12.500000"

    stray = deposit_payload("MQNOSUCHREFERENCE", amount="3")
    unmatched = signed_deposit(client, stray)
    assert unmatched.status_code == 200, unmatched.text
    assert (unmatched.json()["applied"], unmatched.json()["matched"]) == (True, False)
    listed = client.get("/api/admin/deposits/unmatched", headers=admin.auth)
    assert listed.status_code == 200, listed.text
    ids = [deposit["id"] for deposit in listed.json()["deposits"]]
    assert f"ethereum:{stray['txHash']}:0" in ids
    problem(
        signed_deposit(client, {**stray, "amount": {"currency": "USDT", "amount": "0.0000001"}}),
        400,
        "precision_exceeded",
    )


def test_withdrawal_is_held_then_decided_by_an_admin(
    client: httpx.Client, mailbox: Mailbox, admin: Session, wallet_rpc: Any
) -> None:
    alice = login(client, mailbox)
    credit(wallet_rpc, alice.user["id"], "100")
    missing_key = client.post(
        "/api/wallet/withdrawals",
        json={
            "amount": {"currency": "MQC", "amount": "10"},
            "chain": "ethereum",
            "address": ADDRESS,
        },
        headers=alice.auth,
    )
    problem(missing_key, 400)

    created = withdraw(client, alice, "10", key="w-1")
    assert created.status_code == 201, created.text
    withdrawal = created.json()["withdrawal"]
    assert withdrawal["state"] == "WITHDRAWAL_STATE_PENDING"
    assert withdrawal["amount"] == {
        "currency": "MQC",
        "units": "1000000000",
        "amount": "10.00000000",
    }
    assert withdrawal["address"] == ADDRESS
    again = withdraw(client, alice, "10", key="w-1")
    assert again.json()["withdrawal"]["id"] == withdrawal["id"]
    mine = balances(client, alice)["MQC"]
    assert (mine["available"], mine["held"]) == ("90.00000000", "10.00000000")

    history = client.get("/api/wallet/history", params={"pageSize": 1}, headers=alice.auth)
    assert history.status_code == 200, history.text
    [latest] = history.json()["entries"]
    assert (latest["kind"], latest["amount"]["amount"]) == ("ENTRY_KIND_HOLD", "10.00000000")
    token = history.json()["page"]["nextPageToken"]
    older = client.get(
        "/api/wallet/history", params={"pageSize": 5, "pageToken": token}, headers=alice.auth
    ).json()
    assert [e["kind"] for e in older["entries"]] == ["ENTRY_KIND_CREDIT"]
    assert older["page"]["nextPageToken"] == ""

    pending = client.get(
        "/api/admin/withdrawals", params={"state": "WITHDRAWAL_STATE_PENDING"}, headers=admin.auth
    )
    assert pending.status_code == 200, pending.text
    assert withdrawal["id"] in [w["id"] for w in pending.json()["withdrawals"]]
    approved = client.post(
        f"/api/admin/withdrawals/{withdrawal['id']}/approve",
        json={"reason": "checked"},
        headers=admin.auth,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["withdrawal"]["state"] == "WITHDRAWAL_STATE_COMPLETED"
    assert approved.json()["withdrawal"]["decidedBy"] == admin.user["id"]
    late = client.post(f"/api/admin/withdrawals/{withdrawal['id']}/reject", headers=admin.auth)
    problem(late, 412, "withdrawal_not_pending")

    second = withdraw(client, alice, "20").json()["withdrawal"]
    rejected = client.post(f"/api/admin/withdrawals/{second['id']}/reject", headers=admin.auth)
    assert rejected.json()["withdrawal"]["state"] == "WITHDRAWAL_STATE_REJECTED"
    mine = balances(client, alice)["MQC"]
    assert (mine["available"], mine["held"]) == ("90.00000000", "0.00000000")
    listed = client.get("/api/wallet/withdrawals", headers=alice.auth).json()["withdrawals"]
    assert [w["id"] for w in listed] == [second["id"], withdrawal["id"]]

    problem(withdraw(client, alice, "91"), 412, "insufficient_funds")
    problem(withdraw(client, alice, "1", address="0x1234"), 400, "invalid_address")
    body = problem(withdraw(client, alice, "1.000000001"), 400, "precision_exceeded")
    assert body["field"] == "amount.amount"


def test_another_users_money_is_not_found(
    client: httpx.Client, mailbox: Mailbox, wallet_rpc: Any
) -> None:
    alice, bob = login(client, mailbox), login(client, mailbox)
    credit(wallet_rpc, alice.user["id"], "50")
    withdrawal = withdraw(client, alice, "5").json()["withdrawal"]
    own = client.get(f"/api/wallet/withdrawals/{withdrawal['id']}", headers=alice.auth)
    assert own.status_code == 200, own.text
    problem(
        client.get(f"/api/wallet/withdrawals/{withdrawal['id']}", headers=bob.auth),
        404,
        "withdrawal_not_found",
    )
    problem(client.get(f"/api/wallet/withdrawals/{uuid.uuid4().hex}", headers=bob.auth), 404)
    spying = client.get(
        "/api/wallet/balance", params={"userId": alice.user["id"]}, headers=bob.auth
    )
    assert spying.json()["balances"][0]["available"] == "0.00000000"  # bob's own, not alice's
    history = client.get(
        "/api/wallet/history", params={"userId": alice.user["id"]}, headers=bob.auth
    )
    assert history.json()["entries"] == []
    assert client.get("/api/wallet/withdrawals", headers=bob.auth).json()["withdrawals"] == []


def test_admin_routes_need_an_admin(
    client: httpx.Client, mailbox: Mailbox, wallet_rpc: Any
) -> None:
    alice = login(client, mailbox)
    credit(wallet_rpc, alice.user["id"], "50")
    withdrawal = withdraw(client, alice, "5").json()["withdrawal"]
    routes = [
        ("GET", "/api/admin/withdrawals?state=WITHDRAWAL_STATE_PENDING"),
        ("GET", "/api/admin/deposits/unmatched"),
        ("POST", f"/api/admin/withdrawals/{withdrawal['id']}/approve"),
        ("POST", f"/api/admin/withdrawals/{withdrawal['id']}/reject"),
    ]
    for method, path in routes:
        problem(client.request(method, path, headers=alice.auth), 403)
        problem(client.request(method, path), 401)
    assert balances(client, alice)["MQC"]["held"] == "5.00000000"
    for path in ("/api/wallet/balance", "/api/wallet/history", "/api/wallet/withdrawals"):
        problem(client.get(path), 401)


def test_a_lost_idempotency_record_still_means_one_withdrawal(
    stack: Stack, client: httpx.Client, mailbox: Mailbox, wallet_rpc: Any
) -> None:
    """DESIGN.md: below the gateway every write is deduplicated too, so losing
    Redis's record of a key never means a second withdrawal."""
    alice = login(client, mailbox)
    credit(wallet_rpc, alice.user["id"], "30")
    first = withdraw(client, alice, "10", key="lost-record")
    assert (first.status_code, first.headers["x-idempotency"]) == (201, "MISS")
    with sync_redis.Redis.from_url(stack.env["REDIS_URL"]) as store:
        for key in store.scan_iter("mq:idem:*"):
            store.delete(key)
    again = withdraw(client, alice, "10", key="lost-record")
    assert (again.status_code, again.headers["x-idempotency"]) == (201, "MISS")
    assert again.json()["withdrawal"]["id"] == first.json()["withdrawal"]["id"]
    mine = balances(client, alice)["MQC"]
    assert (mine["available"], mine["held"]) == ("20.00000000", "10.00000000")
