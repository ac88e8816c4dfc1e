"""Nothing the auth service stores grows without bound, sessions end, and
signing keys rotate: TTL indexes (pruned for real by the MongoDB-wire
server), the absolute session lifetime, and verify-only keys in GetJwks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.config import ConfigError
from services.auth.keys import load_signing_key
from services.auth.store import AuthStore
from tests.integration.conftest import SmtpServer, auth_channel, fails
from tests.integration.test_auth_service import (
    Auth,
    Clock,
    login,
    make_settings,
    register,
    start_auth,
)

pytestmark = pytest.mark.integration

Mongo = AsyncMongoClient[dict[str, Any]]


async def prune_ttl(mongo: Mongo) -> None:
    """Run the server's TTL pass now (SecantusDB's admin command; mongod runs it
    every 60 s by itself, so against one the test cannot wait for it)."""
    try:
        await mongo.admin.command("secantusAdmin.pruneTtl")
    except OperationFailure:
        pytest.skip("the MongoDB server has no secantusAdmin.pruneTtl")


async def counts(mongo: Mongo, database: str) -> dict[str, int]:
    db = mongo[database]
    names = ("users", *AuthStore.TTL_COLLECTIONS)
    return {name: await db[name].count_documents({}) for name in names}


async def leave_a_trace_everywhere(auth: Any) -> None:
    """One document in every collection: a login (challenge, cooldown, mail
    cap, session, refresh token), a wrong guess (guard), a wallet challenge."""
    user = await register(auth, wallet=Account.create().address)
    await login(auth)
    await register(auth, wallet=Account.create().address, email="bob@example.com")
    challenge = await auth.stub.RequestOtp(auth_pb2.RequestOtpRequest(email="bob@example.com"))
    code = auth.smtp.mailbox.code_in(await auth.smtp.mailbox.arrival("bob@example.com"))
    wrong = auth_pb2.VerifyOtpRequest(
        challenge_id=challenge.challenge_id, code=f"{(int(code) + 1) % 10**6:06d}"
    )
    await fails(auth.stub.VerifyOtp(wrong), grpc.StatusCode.UNAUTHENTICATED, "invalid_code")
    await auth.stub.CreateWalletChallenge(auth_pb2.CreateWalletChallengeRequest(user_id=user.id))


SHORT = {"AUTH_SESSION_MAX_LIFETIME_SECONDS": "300", "AUTH_REFRESH_TOKEN_TTL_SECONDS": "300"}


async def test_every_collection_but_users_has_a_ttl_index_on_expires_at(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer, mongo: Mongo
):
    settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server)
    async for _ in start_auth(settings, Clock(), smtp_server):
        for name in AuthStore.TTL_COLLECTIONS:
            indexes = [i async for i in await mongo[database_name][name].list_indexes()]
            ttl = [(dict(i["key"]), i.get("expireAfterSeconds")) for i in indexes]
            assert ({"expires_at": 1}, 0) in ttl, (name, ttl)


async def test_expired_documents_are_pruned_and_users_stay(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer, mongo: Mongo
):
    settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server, **SHORT)
    clock = Clock()
    clock.offset = -timedelta(days=3)  # everything it writes expired long ago
    async for auth in start_auth(settings, clock, smtp_server):
        await leave_a_trace_everywhere(auth)
    before = await counts(mongo, database_name)
    assert all(before.values()), before
    await prune_ttl(mongo)
    after = await counts(mongo, database_name)
    assert after == dict.fromkeys(AuthStore.TTL_COLLECTIONS, 0) | {"users": 2}


async def test_documents_that_have_not_expired_survive_the_pruning(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer, mongo: Mongo
):
    settings = make_settings(tmp_path, mongodb_uri, database_name, smtp_server, **SHORT)
    async for auth in start_auth(settings, Clock(), smtp_server):
        await leave_a_trace_everywhere(auth)
    before = await counts(mongo, database_name)
    await prune_ttl(mongo)
    assert await counts(mongo, database_name) == before


async def rotate(auth: Auth, tokens: auth_pb2.TokenPair, *, after: int) -> auth_pb2.TokenPair:
    auth.clock.offset += timedelta(seconds=after)
    request = auth_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token)
    return (await auth.stub.RefreshToken(request)).tokens


async def test_refreshing_never_extends_a_session_past_its_lifetime(
    tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer
):
    settings = make_settings(
        tmp_path,
        mongodb_uri,
        database_name,
        smtp_server,
        AUTH_SESSION_MAX_LIFETIME_SECONDS="3600",
        AUTH_REFRESH_TOKEN_TTL_SECONDS="1800",
    )
    async for auth in start_auth(settings, Clock(), smtp_server):
        await register(auth)
        tokens = (await login(auth)).tokens
        assert tokens.refresh_expires_in == 1800

        tokens = await rotate(auth, tokens, after=1500)
        assert tokens.refresh_expires_in == 1800
        tokens = await rotate(auth, tokens, after=1500)  # 3000 s in: 600 s left
        assert 595 <= tokens.refresh_expires_in <= 600
        auth.clock.offset += timedelta(seconds=601)
        late = auth_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token)
        await fails(auth.stub.RefreshToken(late), grpc.StatusCode.UNAUTHENTICATED)


def write_key(path: Path, *, public_only: bool = False) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    if public_only:
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(pem)
    return key


@pytest.fixture
def jwks_of(tmp_path: Path, mongodb_uri: str, database_name: str, smtp_server: SmtpServer) -> Any:
    """GetJwks of a service started with these AUTH_JWT_VERIFY_KEY_FILES."""

    async def kids(verify_files: str) -> tuple[list[str], list[auth_pb2.Jwk]]:
        settings = make_settings(
            tmp_path,
            mongodb_uri,
            database_name,
            smtp_server,
            AUTH_JWT_PRIVATE_KEY_FILE=str(tmp_path / "new.pem"),
            AUTH_JWT_VERIFY_KEY_FILES=verify_files,
        )
        async with auth_channel(settings) as channel:
            reply = await auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest())
        return [k.kid for k in reply.keys], list(reply.keys)

    return kids


async def test_verify_only_keys_are_published_until_their_file_is_removed(
    tmp_path: Path, jwks_of: Any
):
    signing = load_signing_key(tmp_path / "new.pem", generate=True)
    write_key(tmp_path / "old.pem")
    write_key(tmp_path / "third.pub.pem", public_only=True)
    old = load_signing_key(tmp_path / "old.pem", generate=False)
    listed = f"{tmp_path / 'old.pem'}, {tmp_path / 'third.pub.pem'}"
    kids, keys = await jwks_of(listed)
    assert len(kids) == 3
    assert kids[:2] == [signing.kid, old.kid], "the signing key first"
    # a token the old key signed before the rotation still verifies with the set
    token = old.sign_access_token(
        user_id="u1",
        role="user",
        session_id="s1",
        issuer="minequest",
        audience="minequest-api",
        now=datetime.now(UTC),
        ttl_seconds=900,
    )
    published = {k.kid: k for k in keys}[jwt.get_unverified_header(token)["kid"]]
    jwk = jwt.PyJWK({"kty": published.kty, "crv": published.crv, "x": published.x}, "EdDSA")
    jwt.decode(token, jwk, algorithms=["EdDSA"], audience="minequest-api", issuer="minequest")
    kids, _ = await jwks_of(str(tmp_path / "third.pub.pem"))
    assert old.kid not in kids
    assert len(kids) == 2
    kids, _ = await jwks_of("")
    assert kids == [signing.kid]


async def test_a_listed_key_file_that_is_gone_stops_the_start(tmp_path: Path, jwks_of: Any):
    load_signing_key(tmp_path / "new.pem", generate=True)
    with pytest.raises(ConfigError) as caught:
        await jwks_of(str(tmp_path / "removed.pem"))
    assert caught.value.variable == "AUTH_JWT_VERIFY_KEY_FILES"
