"""Telegram Mini App login, linking an email and a wallet to a Telegram
account, and referrals, through the real gateway and services (the stack's
TELEGRAM_BOT_TOKEN signs the initData here, as Telegram would)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.errors import decode_rpc_error
from tests.e2e.conftest import TELEGRAM_BOT_TOKEN, Stack
from tests.e2e.test_auth_flow import new_email, problem
from tests.mail import Mailbox
from tests.unit.test_auth_telegram import signed_init_data

pytestmark = pytest.mark.e2e

_IDS = itertools.count(7_000_000_000 + datetime.now(UTC).second * 10_000_000)


def tg_user(username: str | None = None) -> dict[str, Any]:
    """A Telegram user with an id of its own."""
    user: dict[str, Any] = {"id": next(_IDS), "first_name": "Mia"}
    if username:
        user["username"] = username
    return user


def init_data(user: dict[str, Any] | None = None, **signing: Any) -> str:
    """initData for ``user`` (a new one by default), signed for the stack's bot."""
    signing = {"bot_token": TELEGRAM_BOT_TOKEN, **signing}
    return signed_init_data(user or tg_user(), **signing)


def telegram_login(client: httpx.Client, data: str) -> dict[str, Any]:
    response = client.post("/api/auth/telegram", json={"initData": data})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['tokens']['accessToken']}"}


def test_a_telegram_login_makes_the_account_then_logs_into_it(client: httpx.Client) -> None:
    data = init_data()
    first = telegram_login(client, data)
    assert first["created"] is True
    me = client.get("/api/auth/me", headers=bearer(first))
    assert me.status_code == 200, me.text
    profile = me.json()["user"]
    assert profile["id"] == first["user"]["id"]
    assert len(profile["referralCode"]) == 8
    assert profile["telegramId"] == first["user"]["telegramId"] != ""
    assert (profile["email"], profile["walletAddress"]) == ("", "")
    second = telegram_login(client, data)
    assert second["created"] is False
    assert second["user"]["id"] == first["user"]["id"]


def test_telegram_login_refusals_are_4xx_with_their_reasons(client: httpx.Client) -> None:
    def attempt(data: str) -> httpx.Response:
        return client.post("/api/auth/telegram", json={"initData": data})

    problem(attempt("definitely not initData"), 400, "invalid_init_data")
    problem(attempt(init_data(bot_token="1:another-bot")), 401, "init_data_invalid_hash")
    expired = init_data(auth_date=datetime.now(UTC) - timedelta(days=2))
    problem(attempt(expired), 401, "init_data_expired")
    assert client.post("/api/auth/telegram", json={}).status_code == 400


def test_start_param_links_the_inviter_and_the_referral_routes_count_and_list_it(
    client: httpx.Client,
) -> None:
    inviter = telegram_login(client, init_data())
    code = inviter["user"]["referralCode"]
    invitee_user = tg_user(username=f"mia_{next(_IDS) % 10**9}")
    invitee = telegram_login(client, init_data(invitee_user, start_param=code))
    assert invitee["user"]["referredBy"] == inviter["user"]["id"]
    grandchild = telegram_login(client, init_data(start_param=invitee["user"]["referralCode"]))
    assert grandchild["user"]["referredBy"] == invitee["user"]["id"]
    # a later login with another code does not relink
    other = telegram_login(client, init_data())
    again = telegram_login(
        client, init_data(invitee_user, start_param=other["user"]["referralCode"])
    )
    assert again["user"]["referredBy"] == inviter["user"]["id"]

    mine = client.get("/api/referrals/me", headers=bearer(inviter))
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["referralCode"] == code
    assert (body["invited"], body["secondLevelInvited"]) == (1, 1)
    assert set(body["earned"]) == {"currency", "units", "amount"}
    assert body["earned"]["currency"]

    page = client.get("/api/referrals/me/invitees", headers=bearer(inviter))
    assert page.status_code == 200, page.text
    [listed] = page.json()["invitees"]
    assert listed["userId"] == invitee["user"]["id"]
    assert listed["username"] == invitee["user"]["username"]
    assert listed["joinedAt"]
    assert page.json()["page"]["nextPageToken"] == ""
    bad = client.get(
        "/api/referrals/me/invitees", params={"pageToken": "@@"}, headers=bearer(inviter)
    )
    problem(bad, 400, "invalid_page_token")
    problem(client.get("/api/referrals/me"), 401)


def test_an_unknown_start_param_still_makes_the_account(client: httpx.Client) -> None:
    body = telegram_login(client, init_data(start_param="ZZZZZZZZ"))
    assert body["created"] is True
    assert body["referralError"] == "invalid_referral_code"
    assert body["user"]["referredBy"] == ""


def test_a_telegram_account_links_an_email_then_logs_in_with_it(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    account = telegram_login(client, init_data())
    email = new_email()
    asked = client.post("/api/auth/me/email", json={"email": email}, headers=bearer(account))
    assert asked.status_code == 200, asked.text
    code = mailbox.code_for(email)
    linked = client.post(
        "/api/auth/me/email/verify",
        json={"challengeId": asked.json()["challengeId"], "code": code},
        headers=bearer(account),
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["user"]["email"] == email
    # the link's resend cooldown is its own: the email logs in at once
    challenge = client.post("/api/auth/otp/request", json={"email": email})
    assert challenge.status_code == 200, challenge.text
    logged_in = client.post(
        "/api/auth/otp/verify",
        json={
            "challengeId": challenge.json()["challengeId"],
            "code": mailbox.code_for(email, count=2),
        },
    )
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["user"]["id"] == account["user"]["id"]
    again = client.post("/api/auth/me/email", json={"email": new_email()}, headers=bearer(account))
    problem(again, 412, "email_already_linked")


def test_a_telegram_account_proves_a_wallet(client: httpx.Client) -> None:
    account = telegram_login(client, init_data())
    problem(
        client.post("/api/auth/wallet/challenge", json={}, headers=bearer(account)),
        400,
        "invalid_wallet_address",
    )
    owner = Account.create()
    issued = client.post(
        "/api/auth/wallet/challenge",
        json={"walletAddress": owner.address},
        headers=bearer(account),
    )
    assert issued.status_code == 200, issued.text
    message = issued.json()["message"]
    signature = owner.sign_message(encode_defunct(text=message)).signature.hex()
    proved = client.post(
        "/api/auth/wallet/verify",
        json={"message": message, "signature": "0x" + signature.removeprefix("0x")},
        headers=bearer(account),
    )
    assert proved.status_code == 200, proved.text
    user = proved.json()["user"]
    assert (user["walletAddress"], user["walletVerified"]) == (owner.address, True)


def test_only_the_mining_worker_may_ask_for_referrers(stack: Stack, client: httpx.Client) -> None:
    inviter = telegram_login(client, init_data())
    invitee = telegram_login(client, init_data(start_param=inviter["user"]["referralCode"]))
    request = auth_pb2.GetReferrersRequest(user_ids=[invitee["user"]["id"]])
    with stack.channel("auth", identity="mining-worker") as channel:
        reply = auth_pb2_grpc.AuthServiceStub(channel).GetReferrers(request, timeout=10)
    [referrers] = reply.referrers
    assert (referrers.inviter_id, referrers.second_inviter_id) == (inviter["user"]["id"], "")
    with (
        stack.channel("auth", identity="gateway") as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        auth_pb2_grpc.AuthServiceStub(channel).GetReferrers(request, timeout=10)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert decode_rpc_error(refused.value).reason == "caller_not_allowed"  # type: ignore[arg-type]
