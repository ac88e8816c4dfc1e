"""Proof of wallet ownership (Sign-In with Ethereum, EIP-4361) over real gRPC
and a real MongoDB-wire server, signed by real secp256k1 keys
(``eth_account``); and ``create-admin``, which promotes only accounts whose
wallet is proved."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from minequest.auth.v1 import auth_pb2
from runtime.errors import DomainError
from runtime.stores import mongo_client
from services.auth.admin import create_admin
from services.auth.store import AuthStore
from tests.integration.conftest import SmtpServer, fails
from tests.integration.test_auth_service import Auth, Clock, make_settings, register, start_auth

pytestmark = pytest.mark.integration

SIWE = {
    "SIWE_DOMAIN": "app.example.com",
    "SIWE_URI": "https://app.example.com",
    "SIWE_CHAIN_ID": "137",
    "SIWE_STATEMENT": "Prove you own this wallet.",
}


@pytest.fixture
async def auth(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
) -> AsyncIterator[Auth]:
    settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server, **SIWE)
    async for value in start_auth(settings, Clock(), smtp_server):
        yield value


@pytest.fixture
async def store(auth: Auth) -> AsyncIterator[AuthStore]:
    client = mongo_client(auth.settings.service.mongodb_uri, app_name="tests")
    try:
        yield AuthStore(client, auth.settings.service.mongodb_database)
    finally:
        await client.close()


def sign(account: LocalAccount, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex()


async def challenge_for(auth: Auth, user_id: str) -> auth_pb2.CreateWalletChallengeResponse:
    return await auth.stub.CreateWalletChallenge(
        auth_pb2.CreateWalletChallengeRequest(user_id=user_id)
    )


def verify(auth: Auth, user_id: str, message: str, signature: str) -> Awaitable[Any]:
    return auth.stub.VerifyWallet(
        auth_pb2.VerifyWalletRequest(user_id=user_id, message=message, signature=signature)
    )


async def prove(auth: Auth, user_id: str, owner: LocalAccount) -> auth_pb2.User:
    challenge = await challenge_for(auth, user_id)
    reply = await auth.stub.VerifyWallet(
        auth_pb2.VerifyWalletRequest(
            user_id=user_id, message=challenge.message, signature=sign(owner, challenge.message)
        )
    )
    return reply.user


async def test_the_message_is_eip_4361_for_the_accounts_wallet(auth: Auth):
    owner = Account.create()
    user = await register(auth, wallet=owner.address.lower())
    challenge = await challenge_for(auth, user.id)
    lines = challenge.message.split("\n")
    assert lines[:4] == [
        "app.example.com wants you to sign in with your Ethereum account:",
        owner.address,
        "",
        "Prove you own this wallet.",
    ]
    assert lines[4:9] == [
        "",
        "URI: https://app.example.com",
        "Version: 1",
        "Chain ID: 137",
        f"Nonce: {challenge.nonce}",
    ]
    assert lines[9].startswith("Issued At: 20")
    assert lines[9].endswith("Z")
    expires = challenge.expires_at.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lines[10] == f"Expiration Time: {expires}"
    assert len(lines) == 11
    assert len(challenge.nonce) >= 8
    assert challenge.nonce.isalnum()


async def test_a_signed_challenge_marks_the_wallet_verified_everywhere(auth: Auth):
    owner = Account.create()
    user = await register(auth, wallet=owner.address)
    assert not user.wallet_verified
    assert not user.HasField("wallet_verified_at")
    proved = await prove(auth, user.id, owner)
    assert proved.wallet_verified
    assert proved.wallet_verified_at.seconds > 0
    profile = (await auth.stub.GetProfile(auth_pb2.GetProfileRequest(user_id=user.id))).user
    assert profile.wallet_verified
    public = await auth.stub.GetPublicProfile(
        auth_pb2.GetPublicProfileRequest(wallet_address=owner.address)
    )
    assert public.profile.wallet_verified
    listed = await auth.stub.ListPublicProfiles(
        auth_pb2.ListPublicProfilesRequest(user_ids=[user.id])
    )
    assert [p.wallet_verified for p in listed.profiles] == [True]


async def test_a_challenge_works_once(auth: Auth):
    owner = Account.create()
    user = await register(auth, wallet=owner.address)
    challenge = await challenge_for(auth, user.id)
    signature = sign(owner, challenge.message)
    await verify(auth, user.id, challenge.message, signature)
    again = verify(auth, user.id, challenge.message, signature)
    await fails(again, grpc.StatusCode.NOT_FOUND, "wallet_challenge_not_found")


async def test_an_expired_challenge_is_refused(auth: Auth):
    owner = Account.create()
    user = await register(auth, wallet=owner.address)
    challenge = await challenge_for(auth, user.id)
    auth.clock.offset += timedelta(seconds=601)
    late = verify(auth, user.id, challenge.message, sign(owner, challenge.message))
    await fails(late, grpc.StatusCode.FAILED_PRECONDITION, "wallet_challenge_expired")


async def test_a_squatters_signature_does_not_verify_and_the_owner_still_can(auth: Auth):
    owner, squatter = Account.create(), Account.create()
    user = await register(auth, wallet=owner.address)
    challenge = await challenge_for(auth, user.id)
    forged = verify(auth, user.id, challenge.message, sign(squatter, challenge.message))
    info = await fails(forged, grpc.StatusCode.INVALID_ARGUMENT, "invalid_wallet_signature")
    assert info.field == "signature"
    await verify(auth, user.id, challenge.message, sign(owner, challenge.message))


async def test_a_message_not_issued_to_this_user_is_not_found(auth: Auth):
    owner, other = Account.create(), Account.create()
    user = await register(auth, wallet=owner.address)
    bob = await register(auth, wallet=other.address, email="bob@example.com")
    challenge = await challenge_for(auth, user.id)
    altered = challenge.message.replace("Chain ID: 137", "Chain ID: 1")
    for user_id, message in (
        (user.id, altered),
        (user.id, challenge.message + "\n"),
        (bob.id, challenge.message),
        (user.id, ""),
    ):
        call = verify(auth, user_id, message, sign(owner, message))
        await fails(call, grpc.StatusCode.NOT_FOUND, "wallet_challenge_not_found")


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "0x",
        "not hex at all",
        "0x" + "zz" * 65,
        "0x" + "00" * 65,
        "0x" + "11" * 64,
        "0x" + "ff" * 65,
        "0x" + "11" * 66,
        "0x" + os.urandom(65).hex(),  # well-formed, recovers some random address
    ],
)
async def test_a_malformed_signature_is_an_invalid_argument_never_a_500(auth: Auth, signature: str):
    owner = Account.create()
    user = await register(auth, wallet=owner.address)
    challenge = await challenge_for(auth, user.id)
    call = verify(auth, user.id, challenge.message, signature)
    await fails(call, grpc.StatusCode.INVALID_ARGUMENT, "invalid_wallet_signature")


async def test_unknown_or_missing_users_get_no_challenge(auth: Auth):
    await fails(challenge_for(auth, "nobody"), grpc.StatusCode.NOT_FOUND, "user_not_found")
    await fails(challenge_for(auth, ""), grpc.StatusCode.INVALID_ARGUMENT)
    await fails(verify(auth, "nobody", "m", "0x"), grpc.StatusCode.NOT_FOUND, "user_not_found")


# create-admin ------------------------------------------------------------------


async def refused_admin(store: AuthStore, reason: str, **account: str) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await create_admin(store, **account)
    assert caught.value.reason == reason, caught.value
    return caught.value


async def test_create_admin_refuses_an_unverified_wallet_and_changes_nothing(
    auth: Auth, store: AuthStore
):
    owner = Account.create()
    user = await register(auth, wallet=owner.address)
    error = await refused_admin(store, "wallet_not_verified", email="ada@example.com")
    assert "/api/auth/wallet/challenge" in error.message, "it says how to verify"
    assert (await store.user(user.id) or {})["role"] == "user"


async def test_create_admin_refuses_another_wallet_and_changes_nothing(
    auth: Auth, store: AuthStore
):
    owner = Account.create()
    user = await register(auth, wallet=owner.address)
    await prove(auth, user.id, owner)
    other = Account.create().address
    error = await refused_admin(store, "wallet_mismatch", email="ada@example.com", wallet=other)
    assert error.field == "--wallet"
    assert (await store.user(user.id) or {})["role"] == "user"


async def test_create_admin_never_creates_an_account(auth: Auth, store: AuthStore):
    error = await refused_admin(store, "account_not_found", email="new@example.com")
    assert "register first, verify the wallet, then promote" in error.message
    assert await store.user_by("email", "new@example.com") is None
    await refused_admin(store, "invalid_argument", email="a@example.com", phone="+14155550123")
    await refused_admin(store, "invalid_argument")


async def test_create_admin_finds_the_account_by_phone_or_id_and_checks_the_wallet(
    auth: Auth, store: AuthStore
):
    owner = Account.create()
    user = await register(auth, wallet=owner.address, email="", phone="+14155550123")
    await prove(auth, user.id, owner)
    promoted = await create_admin(store, phone="+1 415 555 0123", wallet=owner.address.lower())
    assert promoted == (user.id, True)
    assert await create_admin(store, user_id=user.id) == (user.id, False)
    assert (await store.user(user.id) or {})["role"] == "admin"
