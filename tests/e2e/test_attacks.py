"""What an attacker tries first, through the real gateway and services.

One stack, the shipped code, mutual TLS inside: forged tokens, other users'
data, admin routes, guessing login codes, holding someone's resend cooldown,
webhook forgeries and replays, hostile bodies and headers, credentials kept
by the idempotency layer, one key reused across resources, the internal gRPC
ports, and promoting a squatter. Every refusal must be a 4xx problem, never a
500, and the gateway must still be healthy afterwards.

Forged forwarding headers and the pre-authentication token bucket run with
the shipped limits in ``test_protection.py``; key rotation, which restarts
auth, in ``test_key_rotation.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import jwt
import pytest
import redis as sync_redis
from cryptography.hazmat.primitives import serialization
from eth_account import Account

from gateway.auth import Access
from gateway.routes import ENDPOINTS
from gateway.routing import SERVER_VALUES
from gateway.webhooks import signature
from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.errors import decode_rpc_error
from tests.e2e.conftest import WEBHOOK_SECRET, Stack, start_stack
from tests.e2e.test_auth_flow import (
    Session,
    b64url,
    create_admin,
    login,
    login_with_wallet,
    make_admin,
    new_email,
    problem,
    prove_wallet,
    register,
)
from tests.e2e.test_wallet_flow import credit
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def attack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The loopback is a trusted proxy here, so a test can speak for two client
    addresses (X-Forwarded-For); the resend cooldown is 1 s to keep tests short."""
    yield from start_stack(
        request,
        tmp_path_factory,
        "attack",
        {"TRUSTED_PROXIES": "127.0.0.1/32", "AUTH_OTP_RESEND_COOLDOWN_SECONDS": "1"},
    )


@pytest.fixture
def client(attack: Stack) -> Iterator[httpx.Client]:
    with attack.client() as http:
        yield http


@pytest.fixture(scope="module")
def admin(attack: Stack, mailbox: Mailbox) -> Session:
    return make_admin(attack, mailbox)


@pytest.fixture(scope="module")
def wallet_rpc(attack: Stack) -> Iterator[wallet_pb2_grpc.WalletServiceStub]:
    with attack.channel("wallet", identity="quests") as channel:
        yield wallet_pb2_grpc.WalletServiceStub(channel)


def assert_healthy(stack: Stack) -> None:
    """The gateway survived: it answers, and it logged no stack trace."""
    with stack.client() as http:
        assert http.get("/api/health").status_code == 200
    assert "Traceback" not in stack.log("gateway")


# --- tokens -------------------------------------------------------------------


def test_forged_access_tokens_are_refused(
    attack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    session = login(client, mailbox)
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(session.access_token)["kid"]
    header, payload, sig = session.access_token.split(".")
    key = serialization.load_pem_private_key(attack.private_key_pem(), password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_x = client.get("/api/auth/jwks").json()["keys"][0]["x"]
    now = int(time.time())

    def signed(changes: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        return jwt.encode(
            {**claims, **changes},
            key,  # type: ignore[arg-type]
            algorithm="EdDSA",
            headers={"kid": kid} if headers is None else headers,
        )

    def hmac_signed(secret: bytes) -> str:
        head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        body = b64url(json.dumps({**claims, "role": "admin"}).encode())
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64url(mac)}"

    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    promoted = b64url(json.dumps({**claims, "role": "admin"}).encode())
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    forgeries = {
        "alg none": (f"{none_header}.{promoted}.", "invalid_token"),
        "HS256 keyed by the public key (PEM)": (hmac_signed(public_pem), "invalid_token"),
        "HS256 keyed by the public key (JWK x)": (hmac_signed(jwk_x.encode()), "invalid_token"),
        "role raised, signature kept": (f"{header}.{promoted}.{sig}", "invalid_token"),
        "signature altered": (f"{header}.{payload}.{flipped}", "invalid_token"),
        "unknown kid": (signed({}, {"kid": "not-a-key-we-publish"}), "invalid_token"),
        "no kid": (signed({}, {}), "invalid_token"),
        "another audience": (signed({"aud": "someone-else"}), "invalid_token"),
        "another issuer": (signed({"iss": "evil"}), "invalid_token"),
        "no subject": (signed({"sub": None}), "invalid_token"),
        "a role that does not exist": (signed({"role": "root"}), "invalid_token"),
        "expired": (signed({"iat": now - 3600, "exp": now - 600}), "token_expired"),
        "not a JWT": ("definitely.not.a-jwt", "unauthenticated"),
    }
    for what, (token, error) in forgeries.items():
        answer = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (what, answer.text)
        assert answer.json()["error"] == error, what
    admin_only = client.get(
        "/api/admin/withdrawals",
        params={"state": "WITHDRAWAL_STATE_PENDING"},
        headers={"Authorization": f"Bearer {header}.{promoted}.{sig}"},
    )
    problem(admin_only, 401, "invalid_token")
    assert client.get("/api/auth/me", headers=session.auth).status_code == 200
    assert_healthy(attack)


# --- other users' data (IDOR) -------------------------------------------------


def test_every_identity_field_a_request_carries_is_filled_by_the_server() -> None:
    """A client cannot name the user (or admin, session, key, request, IP) a
    request is for: wherever a request message has such a field, the route
    table fills it after parsing, overwriting whatever the client sent."""
    identities = set(SERVER_VALUES) - {"page"}
    for row in ENDPOINTS:
        if row.request is None:
            continue
        fields = {field.name for field in row.request.DESCRIPTOR.fields}
        exposed = (fields & identities) - set(row.hidden_fields)
        if row.operation_id == "getLeaderboard":
            assert row.access is Access.OPTIONAL
        assert not exposed, f"{row.method} {row.path}: the client may set {sorted(exposed)}"


def test_no_route_serves_or_changes_another_users_data(
    client: httpx.Client, mailbox: Mailbox, wallet_rpc: Any
) -> None:
    alice, bob = login(client, mailbox), login(client, mailbox)
    alice_id = alice.user["id"]
    credit(wallet_rpc, alice_id, "50")
    withdrawal = client.post(
        "/api/wallet/withdrawals",
        json={
            "amount": {"currency": "MQC", "amount": "5"},
            "chain": "ethereum",
            "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        },
        headers={**alice.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert withdrawal.status_code == 201, withdrawal.text
    withdrawal_id = withdrawal.json()["withdrawal"]["id"]
    click_key = uuid.uuid4().hex
    clicked = client.post(
        "/api/mining/click", json={"count": 1}, headers={**alice.auth, "Idempotency-Key": click_key}
    )
    assert clicked.status_code == 202, clicked.text
    smuggled = {"userId": alice_id, "user_id": alice_id}

    problem(client.get(f"/api/wallet/withdrawals/{withdrawal_id}", headers=bob.auth), 404)
    listed = client.get("/api/wallet/withdrawals", params=smuggled, headers=bob.auth)
    assert listed.json()["withdrawals"] == []
    balance = client.get("/api/wallet/balance", params=smuggled, headers=bob.auth).json()
    assert {row["available"] for row in balance["balances"]} <= {"0.00000000", "0.000000"}
    history = client.get("/api/wallet/history", params=smuggled, headers=bob.auth)
    assert history.json()["entries"] == []
    status = client.get(
        "/api/mining/click/status", params={"key": click_key, **smuggled}, headers=bob.auth
    )
    problem(status, 404, "click_not_found")
    assert (
        client.get("/api/auth/me", params=smuggled, headers=bob.auth).json()["user"]["id"]
        == (bob.user["id"])
    )
    renamed = client.patch(
        "/api/auth/me",
        json={"userId": alice_id, "username": f"b{uuid.uuid4().hex[:8]}"},
        headers=bob.auth,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["user"]["id"] == bob.user["id"]
    assert client.get("/api/auth/me", headers=alice.auth).json()["user"]["username"] == ""
    issued = client.post("/api/auth/wallet/challenge", json=smuggled, headers=bob.auth)
    assert bob.user["walletAddress"] in issued.json()["message"]
    # every user route that reads: nothing of alice's comes back to bob
    reads = [
        row
        for row in ENDPOINTS
        if row.access is Access.USER and row.method == "GET" and "{" not in row.path
    ]
    assert len(reads) >= 8
    for row in reads:
        params = {**smuggled, "key": click_key} if row.path.endswith("/click/status") else smuggled
        answer = client.get(row.path, params=params, headers=bob.auth)
        assert answer.status_code < 500, (row.path, answer.text)
        assert alice_id not in answer.text, row.path
    mining = client.get("/api/mining/status", params=smuggled, headers=bob.auth).json()
    assert mining["totalTaps"] == "0"
    # writes name their user from the token, whatever the body says
    bobs_key = uuid.uuid4().hex
    smuggling = client.post(
        "/api/mining/click",
        json={"count": 1, "userId": alice_id},
        headers={**bob.auth, "Idempotency-Key": bobs_key},
    )
    assert smuggling.status_code == 202, smuggling.text
    params = {"key": bobs_key}
    assert client.get("/api/mining/click/status", params=params, headers=bob.auth).is_success
    problem(client.get("/api/mining/click/status", params=params, headers=alice.auth), 404)
    # logging out "alice's" session from bob's token ends only bob's
    out = client.post(
        "/api/auth/logout", json={"userId": alice_id, "sessionId": "x"}, headers=bob.auth
    )
    assert out.status_code == 204
    refreshed = client.post("/api/auth/refresh", json={"refreshToken": alice.refresh_token})
    assert refreshed.status_code == 200, refreshed.text


def test_admin_routes_refuse_anonymous_callers_and_users(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    user = login(client, mailbox)
    rows = [row for row in ENDPOINTS if row.access is Access.ADMIN]
    assert len(rows) >= 7
    for row in rows:
        path = row.path.replace("{withdrawalId}", "w-1").replace("{questId}", "q-1")
        query = {"state": "WITHDRAWAL_STATE_PENDING"} if row.method == "GET" else None
        anonymous = client.request(row.method, path, params=query, json=None)
        problem(anonymous, 401, "unauthenticated")
        as_user = client.request(row.method, path, params=query, headers=user.auth)
        problem(as_user, 403, "forbidden")


# --- login codes --------------------------------------------------------------


def test_guesses_are_bounded_per_account_across_new_codes(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    email = new_email()
    register(client, email)
    first = client.post("/api/auth/otp/request", json={"email": email}).json()["challengeId"]
    first_mail = mailbox.wait_for(email)
    wrong = f"{(int(Mailbox.code_in(first_mail)) + 1) % 1_000_000:06d}"
    answers = [
        client.post("/api/auth/otp/verify", json={"challengeId": first, "code": wrong})
        for _ in range(5)
    ]
    assert [answer.status_code for answer in answers] == [401, 401, 401, 401, 429]
    time.sleep(1.1)  # the resend cooldown of this stack
    second = client.post("/api/auth/otp/request", json={"email": email})
    assert second.status_code == 200, second.text
    second_id = second.json()["challengeId"]
    second_mail = mailbox.wait_for(email, count=2)
    # a fresh challenge is no fresh budget
    problem(
        client.post("/api/auth/otp/verify", json={"challengeId": second_id, "code": wrong}),
        429,
        "otp_locked",
    )
    # the new challenge retired the old one, key and all
    retired = client.post(
        "/api/auth/otp/verify",
        json={"challengeId": first, "code": Mailbox.key_in(first_mail)},
    )
    problem(retired, 404, "challenge_superseded")
    # the owner, reading the latest mail, is never locked out
    entered = client.post(
        "/api/auth/otp/verify",
        json={"challengeId": second_id, "code": Mailbox.key_in(second_mail)},
    )
    assert entered.status_code == 200, entered.text


def test_nobody_can_hold_the_owners_resend_cooldown(client: httpx.Client, mailbox: Mailbox) -> None:
    email = new_email()
    register(client, email)
    attacker = {"X-Forwarded-For": "2001:db8:66:1::1"}
    first = client.post("/api/auth/otp/request", json={"email": email}, headers=attacker)
    assert first.status_code == 200, first.text
    # another address of the same /64 is the same requester
    same_64 = {"X-Forwarded-For": "2001:db8:66:1:ffff::2"}
    problem(
        client.post("/api/auth/otp/request", json={"email": email}, headers=same_64),
        429,
        "otp_cooldown",
    )
    owner = {"X-Forwarded-For": "198.51.100.5"}
    mine = client.post("/api/auth/otp/request", json={"email": email}, headers=owner)
    assert mine.status_code == 200, mine.text
    code = mailbox.code_for(email, count=2)
    entered = client.post(
        "/api/auth/otp/verify", json={"challengeId": mine.json()["challengeId"], "code": code}
    )
    assert entered.status_code == 200, entered.text


# --- webhooks -----------------------------------------------------------------


def idempotency_records(stack: Stack) -> list[bytes]:
    with sync_redis.Redis.from_url(stack.env["REDIS_URL"]) as store:
        return list(store.scan_iter("mq:idem:*"))


def test_webhook_forgeries_replays_and_duplicates(attack: Stack, client: httpx.Client) -> None:
    body = json.dumps(
        {
            "chain": "ethereum",
            "txHash": "0x" + uuid.uuid4().hex * 2,
            "logIndex": 0,
            "depositReference": "MQ-NOBODY",
            "amount": {"currency": "USDT", "amount": "3"},
        }
    ).encode()
    now = str(int(time.time()))

    def post(stamp: str, sig: str, key: str | None = None) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Timestamp": stamp,
            "X-Webhook-Signature": sig,
        }
        if key:
            headers["Idempotency-Key"] = key
        return client.post("/api/webhooks/deposits", content=body, headers=headers)

    before = set(idempotency_records(attack))
    problem(
        client.post("/api/webhooks/deposits", content=body, headers={"Idempotency-Key": "x1"}),
        401,
        "webhook_signature_missing",
    )
    problem(post(now, signature("not-the-secret-0123456789", now, body), "x2"), 401)
    stale = str(int(time.time()) - 3600)
    problem(post(stale, signature(WEBHOOK_SECRET, stale, body)), 401, "webhook_timestamp_expired")
    # a stranger's failures leave nothing in Redis to be replayed for 24 h
    assert set(idempotency_records(attack)) == before
    first = post(now, signature(WEBHOOK_SECRET, now, body))
    again = post(now, signature(WEBHOOK_SECRET, now, body))  # a replay inside the window
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["deposit"]["id"] == again.json()["deposit"]["id"]


# --- hostile bodies and headers -----------------------------------------------


def raw_request(stack: Stack, request: bytes) -> bytes:
    port = int(stack.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_hostile_bodies_and_headers_are_4xx_and_harmless(
    attack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    session = login(client, mailbox)
    json_headers = {"Content-Type": "application/json"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    problem(
        client.post(
            "/api/auth/register", content=b"{" + b" " * 70_000 + b"}", headers=json_headers
        ),
        413,
        "payload_too_large",
    )
    for body in (b"[" * 60_000, b'{"a":' * 40 + b"1" + b"}" * 40, b'{"email": "\xff\xfe"}'):
        for extra in ({}, key):
            answer = client.post(
                "/api/auth/register", content=body, headers={**json_headers, **extra}
            )
            problem(answer, 400, "invalid_json")
    patched = client.patch(
        "/api/auth/me", content=b"[" * 60_000, headers={**session.auth, **json_headers, **key}
    )
    problem(patched, 400, "invalid_json")
    for size in ("\u00b2", "-1", "1e3", "99999999999999999999"):
        listed = client.get("/api/wallet/history", params={"pageSize": size}, headers=session.auth)
        problem(listed, 400, "invalid_field")
    huge = raw_request(
        attack, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 << 20) + b"\r\n\r\n"
    )
    assert huge.startswith(b"HTTP/1.1 431 "), huge[:100]
    many = b"".join(b"X-H-%d: 1\r\n" % n for n in range(20_000))
    crowded = raw_request(attack, b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert crowded.startswith(b"HTTP/1.1 431 "), crowded[:100]
    bad_length = raw_request(
        attack,
        "POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: \u00b2\r\n\r\n".encode(),
    )
    assert bad_length.startswith(b"HTTP/1.1 400 "), bad_length[:100]
    assert_healthy(attack)


# --- credentials and idempotency ----------------------------------------------


def test_answers_that_carry_tokens_are_never_stored(
    attack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    session = login(client, mailbox)
    key = {"Idempotency-Key": "refresh-once"}
    first = client.post(
        "/api/auth/refresh", json={"refreshToken": session.refresh_token}, headers=key
    )
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    assert "x-idempotency" not in first.headers
    # the retry reaches the auth service, which sees the reuse and ends the session
    second = client.post(
        "/api/auth/refresh", json={"refreshToken": session.refresh_token}, headers=key
    )
    problem(second, 401, "refresh_token_reused")
    rotated = first.json()["tokens"]["refreshToken"]
    problem(client.post("/api/auth/refresh", json={"refreshToken": rotated}), 401)
    with sync_redis.Redis.from_url(attack.env["REDIS_URL"]) as store:
        for record in store.scan_iter("mq:idem:*"):
            value = store.get(record) or b""
            assert session.refresh_token.encode() not in value
            assert rotated.encode() not in value


def test_one_key_on_two_quests_completes_both(
    client: httpx.Client, mailbox: Mailbox, admin: Session
) -> None:
    quests = []
    for name in ("Follow us", "Join us"):
        created = client.post(
            "/api/admin/quests",
            json={"quest": {"name": name, "type": "QUEST_TYPE_SOCIAL", "xpReward": "10"}},
            headers=admin.auth,
        )
        assert created.status_code == 201, created.text
        quests.append(created.json()["quest"]["id"])
    user = login(client, mailbox)
    headers = {**user.auth, "Idempotency-Key": "the-same-key"}
    done = [client.post(f"/api/quests/{quest}/complete", headers=headers) for quest in quests]
    assert [answer.status_code for answer in done] == [200, 200], done[1].text
    assert [answer.json()["completion"]["questId"] for answer in done] == quests
    assert done[1].json()["totalXp"] == "20"


# --- the internal network -----------------------------------------------------


def test_internal_grpc_needs_a_certificate_and_the_right_identity(
    attack: Stack, admin: Session
) -> None:
    credit_request = wallet_pb2.CreditRequest(
        entries=[
            wallet_pb2.CreditEntry(
                user_id=admin.user["id"],
                amount=common_pb2.Money(currency="MQC", amount="1000000"),
                source="mining.click",
                source_id=uuid.uuid4().hex,
            )
        ]
    )
    with (
        grpc.insecure_channel(f"127.0.0.1:{attack.wallet_port}") as plain,
        pytest.raises(grpc.RpcError) as no_cert,
    ):
        wallet_pb2_grpc.WalletServiceStub(plain).Credit(credit_request, timeout=5)
    assert no_cert.value.code() is grpc.StatusCode.UNAVAILABLE
    with (
        attack.channel("wallet", identity="gateway") as channel,
        pytest.raises(grpc.RpcError) as wrong_caller,
    ):
        wallet_pb2_grpc.WalletServiceStub(channel).Credit(credit_request, timeout=5)
    assert wrong_caller.value.code() is grpc.StatusCode.PERMISSION_DENIED
    decide = wallet_pb2.DecideWithdrawalRequest(
        withdrawal_id="w", decision=wallet_pb2.DECISION_APPROVE, admin_id=admin.user["id"]
    )
    with (
        attack.channel("wallet", identity="quests") as channel,
        pytest.raises(grpc.RpcError) as not_the_gateway,
    ):
        wallet_pb2_grpc.WalletServiceStub(channel).DecideWithdrawal(decide, timeout=5)
    assert not_the_gateway.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert decode_rpc_error(not_the_gateway.value).reason == "caller_not_allowed"  # type: ignore[arg-type]


# --- wallets and admins -------------------------------------------------------


def test_a_squatted_wallet_makes_no_admin(
    attack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    """Wallet addresses are public: registering one proves nothing, so it can
    neither be promoted nor be the key to promote someone."""
    victim = Account.create()
    squatter_email = new_email()
    register(client, squatter_email, victim.address)
    refused = create_admin(attack, "--email", squatter_email)
    assert refused.returncode == 2, refused.stdout
    assert "not verified" in refused.stderr
    owner, account = login_with_wallet(client, mailbox)
    prove_wallet(client, owner, account)
    mismatch = create_admin(attack, "--email", owner.email, "--wallet", victim.address)
    assert mismatch.returncode == 2
    assert "wallet" in mismatch.stderr
    # the command signs nothing: no JWT key needed
    keyless = {
        name: value for name, value in attack.env.items() if not name.startswith("AUTH_JWT_")
    }
    promoted = create_admin(attack, "--user-id", owner.user["id"], env=keyless)
    assert promoted.returncode == 0, promoted.stderr
    me = client.get("/api/auth/me", headers=owner.auth).json()["user"]
    assert me["walletVerified"] is True


def test_a_withdrawal_to_the_own_wallet_needs_it_proved(
    client: httpx.Client, mailbox: Mailbox, wallet_rpc: Any
) -> None:
    session, account = login_with_wallet(client, mailbox)
    assert session.user["walletVerified"] is False
    credit(wallet_rpc, session.user["id"], "20")

    def withdraw() -> httpx.Response:
        return client.post(
            "/api/wallet/withdrawals",
            json={
                "amount": {"currency": "MQC", "amount": "5"},
                "chain": "ethereum",
                "address": account.address.lower(),
            },
            headers={**session.auth, "Idempotency-Key": uuid.uuid4().hex},
        )

    body = problem(withdraw(), 412, "wallet_not_verified")
    assert body["field"] == "address"
    assert prove_wallet(client, session, account)["walletVerified"] is True
    proved = withdraw()
    assert proved.status_code == 201, proved.text
    assert proved.json()["withdrawal"]["address"] == account.address
