"""The auth journey through the real gateway and auth service, and its refusals."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from tests.e2e.conftest import ROOT, Stack
from tests.mail import Mailbox

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def eip55(address: str) -> str:
    """The EIP-55 checksummed form of a 0x address (computed here, independently)."""
    hex_digits = address.lower().removeprefix("0x")
    digest = keccak(hex_digits.encode()).hex()
    return "0x" + "".join(
        ch.upper() if int(digest[i], 16) >= 8 else ch for i, ch in enumerate(hex_digits)
    )


def new_wallet() -> str:
    """A random lowercase address whose checksum form has letters in both cases."""
    while True:
        address = "0x" + secrets.token_hex(20)
        checksummed = eip55(address)
        if checksummed != address and any(ch.isupper() for ch in checksummed):
            return address


def new_email() -> str:
    return f"miner-{uuid.uuid4().hex[:12]}@example.com"


def problem(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """Assert a problem+json answer and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    if error is not None:
        assert body["error"] == error, body
    return body


@dataclass
class Session:
    user: dict[str, Any]
    email: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register(client: httpx.Client, email: str, wallet: str | None = None) -> dict[str, Any]:
    response = client.post(
        "/api/auth/register", json={"walletAddress": wallet or new_wallet(), "email": email}
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()["user"]
    return user


def request_code(client: httpx.Client, email: str) -> str:
    response = client.post("/api/auth/otp/request", json={"email": email})
    assert response.status_code == 200, response.text
    challenge: str = response.json()["challengeId"]
    return challenge


def login(client: httpx.Client, mailbox: Mailbox) -> Session:
    email = new_email()
    user = register(client, email)
    challenge = request_code(client, email)
    response = client.post(
        "/api/auth/otp/verify", json={"challengeId": challenge, "code": mailbox.code_for(email)}
    )
    assert response.status_code == 200, response.text
    tokens = response.json()["tokens"]
    return Session(user, email, tokens["accessToken"], tokens["refreshToken"])


def prove_wallet(client: httpx.Client, session: Session, account: LocalAccount) -> dict[str, Any]:
    """Sign-In with Ethereum through the gateway: sign the issued message with
    the wallet's key (personal_sign), hand it back; the profile after."""
    issued = client.post("/api/auth/wallet/challenge", headers=session.auth)
    assert issued.status_code == 200, issued.text
    message = issued.json()["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.hex()
    proved = client.post(
        "/api/auth/wallet/verify",
        json={"message": message, "signature": "0x" + signature.removeprefix("0x")},
        headers=session.auth,
    )
    assert proved.status_code == 200, proved.text
    user: dict[str, Any] = proved.json()["user"]
    return user


def login_with_wallet(client: httpx.Client, mailbox: Mailbox) -> tuple[Session, LocalAccount]:
    """A new user whose wallet key the test holds (for Sign-In with Ethereum)."""
    account = Account.create()
    email = new_email()
    user = register(client, email, account.address)
    challenge = request_code(client, email)
    response = client.post(
        "/api/auth/otp/verify", json={"challengeId": challenge, "code": mailbox.code_for(email)}
    )
    assert response.status_code == 200, response.text
    tokens = response.json()["tokens"]
    return Session(user, email, tokens["accessToken"], tokens["refreshToken"]), account


def create_admin(
    stack: Stack, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m services.auth create-admin ARGS`` with the stack's environment
    (or ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "services.auth", "create-admin", *args],
        check=False,
        cwd=ROOT,
        env=stack.env if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def make_admin(stack: Stack, mailbox: Mailbox) -> Session:
    """An admin made the only way there is: a registered user proves the wallet
    (Sign-In with Ethereum), then ``python -m services.auth create-admin``."""
    with stack.client() as client:
        session, account = login_with_wallet(client, mailbox)
        prove_wallet(client, session, account)
        promoted = create_admin(stack, "--email", session.email, "--wallet", account.address)
        assert promoted.returncode == 0, promoted.stderr
        # the role is in the access token: rotate to get one that says admin
        response = client.post("/api/auth/refresh", json={"refreshToken": session.refresh_token})
        assert response.status_code == 200, response.text
        tokens = response.json()["tokens"]
        return Session(session.user, session.email, tokens["accessToken"], tokens["refreshToken"])


def test_register_login_refresh_and_reuse(
    stack: Stack, client: httpx.Client, mailbox: Mailbox
) -> None:
    wallet, email = new_wallet(), new_email()
    response = client.post(
        "/api/auth/register", json={"walletAddress": wallet, "email": email, "username": "digger"}
    )
    assert response.status_code == 201, response.text
    user = response.json()["user"]
    assert user["walletAddress"] == eip55(wallet) != wallet
    assert user["email"] == email
    assert user["role"] == "ROLE_USER"

    response = client.post("/api/auth/otp/request", json={"email": email})
    assert response.status_code == 200, response.text
    otp = response.json()
    assert otp["channel"] == "email"
    assert "devCode" not in otp  # the dev fallback is off: the code only travels by mail
    assert response.headers["cache-control"] == "no-store"

    code = mailbox.code_for(email)
    response = client.post(
        "/api/auth/otp/verify", json={"challengeId": otp["challengeId"], "code": code}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    verified = response.json()
    tokens = verified["tokens"]
    assert tokens["tokenType"] == "Bearer"
    assert verified["user"]["id"] == user["id"]

    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    assert me.status_code == 200, me.text
    assert me.json()["user"]["walletAddress"] == eip55(wallet)

    renamed = client.patch(
        "/api/auth/me",
        json={"username": "deep_digger"},
        headers={"Authorization": f"Bearer {tokens['accessToken']}"},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["user"]["username"] == "deep_digger"

    rotated = client.post("/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert rotated.status_code == 200, rotated.text
    new_refresh = rotated.json()["tokens"]["refreshToken"]
    assert new_refresh != tokens["refreshToken"]

    trace = f"e2e-reuse-{uuid.uuid4().hex}"
    reused = client.post(
        "/api/auth/refresh",
        json={"refreshToken": tokens["refreshToken"]},
        headers={"X-Request-ID": trace},
    )
    problem(reused, 401, "refresh_token_reused")
    assert reused.json()["request_id"] == trace
    # the request id travelled in gRPC metadata: the service logged the reuse under it
    assert trace in stack.log("auth")
    # reuse revoked the whole family: the token the rotation just issued is dead too
    after = client.post("/api/auth/refresh", json={"refreshToken": new_refresh})
    body = problem(after, 401)
    assert body["error"] in {"session_revoked", "refresh_token_reused", "invalid_refresh_token"}


def test_logout_revokes_the_session(client: httpx.Client, mailbox: Mailbox) -> None:
    session = login(client, mailbox)
    response = client.post("/api/auth/logout", headers=session.auth)
    assert response.status_code == 204, response.text
    assert response.content == b""
    refused = client.post("/api/auth/refresh", json={"refreshToken": session.refresh_token})
    body = problem(refused, 401)
    assert body["error"] in {"session_revoked", "invalid_refresh_token"}


def test_logout_ignores_ids_in_the_body(client: httpx.Client, mailbox: Mailbox) -> None:
    victim, attacker = login(client, mailbox), login(client, mailbox)
    response = client.post(
        "/api/auth/logout",
        headers=attacker.auth,
        json={"userId": victim.user["id"], "sessionId": "whatever"},
    )
    assert response.status_code == 204, response.text
    still = client.post("/api/auth/refresh", json={"refreshToken": victim.refresh_token})
    assert still.status_code == 200, still.text


def test_bad_checksum_is_refused(client: httpx.Client) -> None:
    checksummed = eip55(new_wallet())
    index = next(i for i, ch in enumerate(checksummed) if i > 1 and ch.isalpha())
    ch = checksummed[index]
    broken = (
        checksummed[:index]
        + (ch.lower() if ch.isupper() else ch.upper())
        + checksummed[index + 1 :]
    )
    response = client.post(
        "/api/auth/register", json={"walletAddress": broken, "email": new_email()}
    )
    body = problem(response, 400, "invalid_wallet_address")
    assert body["field"] == "walletAddress"


def test_taken_wallet_is_conflict(client: httpx.Client) -> None:
    wallet = new_wallet()
    register(client, new_email(), wallet)
    response = client.post(
        "/api/auth/register", json={"walletAddress": eip55(wallet), "email": new_email()}
    )
    problem(response, 409, "wallet_taken")


def test_an_unknown_email_is_answered_like_a_known_one(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    """OTP requests do not tell who has an account: same status, same fields,
    the same cooldown; the unknown one's challenge can never verify."""
    known = new_email()
    register(client, known)
    answers = {
        email: client.post("/api/auth/otp/request", json={"email": email})
        for email in (known, new_email())
    }
    shapes = {
        (answer.status_code, tuple(sorted(answer.json())), answer.json()["resendAfterSeconds"])
        for answer in answers.values()
    }
    assert len(shapes) == 1, shapes
    assert next(iter(shapes))[0] == 200
    again = [client.post("/api/auth/otp/request", json={"email": email}) for email in answers]
    assert [answer.status_code for answer in again] == [429, 429]
    unknown = next(email for email in answers if email != known)
    response = client.post(
        "/api/auth/otp/verify",
        json={"challengeId": answers[unknown].json()["challengeId"], "code": "123456"},
    )
    problem(response, 401, "invalid_code")
    mailbox.code_for(known)  # the known one got its mail


def test_resend_cooldown_says_when(client: httpx.Client, mailbox: Mailbox) -> None:
    email = new_email()
    register(client, email)
    request_code(client, email)
    response = client.post("/api/auth/otp/request", json={"email": email})
    problem(response, 429, "otp_cooldown")
    assert int(response.headers["retry-after"]) > 0


def test_wrong_codes_lock_short_codes_but_never_the_mails_key(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    """Guessing is bounded per account, across challenges; the owner still gets
    in with the login key from the mail while short codes are locked."""
    email = new_email()
    register(client, email)
    challenge = request_code(client, email)
    mail = mailbox.wait_for(email)
    code = mailbox.code_in(mail)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    def verify(secret: str) -> httpx.Response:
        return client.post("/api/auth/otp/verify", json={"challengeId": challenge, "code": secret})

    # three wrong codes are free; the fourth locks short codes for 30 s
    answers = [verify(wrong) for _ in range(5)]
    for answer in answers[:4]:
        problem(answer, 401, "invalid_code")
    locked = problem(answers[4], 429, "otp_locked")
    assert 0 < int(answers[4].headers["retry-after"]) <= 30
    assert "key" in locked["detail"]
    # while locked, even the right short code is not checked
    problem(verify(code), 429, "otp_locked")
    entered = verify(Mailbox.key_in(mail))
    assert entered.status_code == 200, entered.text
    assert entered.json()["user"]["email"] == email


def test_expired_code(short_otp_stack: Stack, mailbox: Mailbox) -> None:
    with short_otp_stack.client() as client:
        email = new_email()
        register(client, email)
        challenge = request_code(client, email)
        code = mailbox.code_for(email)
        time.sleep(2.1)
        response = client.post(
            "/api/auth/otp/verify", json={"challengeId": challenge, "code": code}
        )
        problem(response, 401, "otp_expired")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_bad_tokens_are_refused(stack: Stack, client: httpx.Client, mailbox: Mailbox) -> None:
    session = login(client, mailbox)
    header, payload, signature = session.access_token.split(".")

    def me(token: str) -> httpx.Response:
        return client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})

    assert me(session.access_token).status_code == 200

    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    response = me(f"{header}.{payload}.{flipped}")
    problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")

    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(session.access_token)["kid"]
    promoted = b64url(json.dumps({**claims, "role": "admin"}).encode())
    problem(me(f"{header}.{promoted}.{signature}"), 401, "invalid_token")

    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    problem(me(f"{none_header}.{payload}."), 401, "invalid_token")

    # correctly signed by the service's own key, but expired
    key = serialization.load_pem_private_key(stack.private_key_pem(), password=None)
    now = int(time.time())
    expired = jwt.encode(
        {**claims, "iat": now - 3600, "exp": now - 600},
        key,  # type: ignore[arg-type]
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    problem(me(expired), 401, "token_expired")

    problem(me("not-a-token"), 401, "unauthenticated")
    problem(client.get("/api/auth/me"), 401, "unauthenticated")


def test_request_mistakes_are_4xx(client: httpx.Client) -> None:
    too_big = client.post(
        "/api/auth/register",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"content-type": "application/json"},
    )
    problem(too_big, 413, "payload_too_large")

    problem(
        client.post(
            "/api/auth/register",
            content=b'{"walletAddress": ',
            headers={"content-type": "application/json"},
        ),
        400,
        "invalid_json",
    )

    body = problem(
        client.post("/api/auth/otp/verify", json={"challengeId": 7, "code": "1"}),
        400,
        "invalid_field",
    )
    assert body["field"] == "challengeId"

    body = problem(client.post("/api/auth/register", json={"wallet": "0x0"}), 400, "invalid_field")
    assert body["field"] == "wallet"

    problem(client.get("/api/no/such/route"), 404, "not_found")
    problem(client.put("/api/auth/register", json={}), 405, "method_not_allowed")


def test_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.get("/api/auth/jwks", headers={"X-Request-ID": "e2e-trace-42"})
    assert response.headers["x-request-id"] == "e2e-trace-42"
    minted = client.get("/api/auth/jwks")
    assert minted.headers["x-request-id"]


def test_jwks_is_public_and_cacheable(client: httpx.Client, mailbox: Mailbox) -> None:
    response = client.get("/api/auth/jwks")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert keys
    assert {"kty", "crv", "x", "kid"} <= set(keys[0])
    assert keys[0]["kty"] == "OKP"


def test_health_metrics_and_openapi(stack: Stack, client: httpx.Client, mailbox: Mailbox) -> None:
    anonymous = client.get("/api/health")
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.json() == {"status": "ok"}  # no version, memory or topology for strangers
    user = client.get("/api/health", headers=login(client, mailbox).auth)
    assert user.json() == {"status": "ok"}
    health = client.get("/api/health", headers=make_admin(stack, mailbox).auth)
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok"
    assert body["components"]["auth"] == {
        **body["components"]["auth"],
        "status": "ok",
        "serving": "SERVING",
    }
    assert body["components"]["redis"]["status"] == "ok"
    assert body["components"]["mongodb"]["status"] == "ok"
    assert body["uptimeSeconds"] > 0

    problem(client.get("/metrics"), 404, "not_found")  # not on the public port
    metrics = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text
    assert 'route="/api/health"' in metrics.text

    doc = client.get("/api/openapi.json").json()
    for path, method in [
        ("/api/auth/register", "post"),
        ("/api/auth/otp/request", "post"),
        ("/api/auth/otp/verify", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/auth/me", "patch"),
        ("/api/auth/jwks", "get"),
    ]:
        assert method in doc["paths"][path], (method, path)
