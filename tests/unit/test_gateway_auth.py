"""Local access-token verification against a locally generated Ed25519 key."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.auth import (
    Access,
    Principal,
    TokenVerifier,
    _cache_key,
    authorize,
    bearer_token,
)
from gateway.errors import ApiError

ISSUER, AUDIENCE = "minequest", "minequest-api"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """An Ed25519 key as the auth service holds one, with its public JWK."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.jwk = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(raw),
            "kid": kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "role": "user",
            "sid": "session-1",
            "iat": now,
            "exp": now + 900,
            "jti": "j1",
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})


class Jwks:
    """The verifier's key source: serves a JWK set and counts fetches."""

    def __init__(self, *signers: Signer) -> None:
        self.keys = [signer.jwk for signer in signers]
        self.fetches = 0

    async def __call__(self) -> list[dict[str, Any]]:
        self.fetches += 1
        return list(self.keys)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def signer() -> Signer:
    return Signer("key-1")


@pytest.fixture
def jwks(signer: Signer) -> Jwks:
    return Jwks(signer)


@pytest.fixture
def verifier(jwks: Jwks) -> TokenVerifier:
    return TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, min_refresh_seconds=30)


async def refused(verifier: TokenVerifier, token: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await verifier.verify(token)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    return caught.value


async def test_valid_token_gives_the_principal(verifier: TokenVerifier, signer: Signer) -> None:
    principal = await verifier.verify(signer.token(role="admin"))
    assert (principal.user_id, principal.role, principal.session_id) == (
        "user-1",
        "admin",
        "session-1",
    )
    assert principal.is_admin


async def test_tampered_signature(verifier: TokenVerifier, signer: Signer) -> None:
    header, payload, signature = signer.token().split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert (await refused(verifier, f"{header}.{payload}.{flipped}")).error == "invalid_token"


async def test_tampered_payload(verifier: TokenVerifier, signer: Signer) -> None:
    header, _, signature = signer.token().split(".")
    forged = b64url(
        json.dumps(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "someone-else",
                "role": "admin",
                "sid": "s",
                "iat": 1,
                "exp": int(time.time()) + 900,
            }
        ).encode()
    )
    assert (await refused(verifier, f"{header}.{forged}.{signature}")).error == "invalid_token"


async def test_expired(verifier: TokenVerifier, signer: Signer) -> None:
    now = int(time.time())
    token = signer.token(iat=now - 3600, exp=now - 60)
    assert (await refused(verifier, token)).error == "token_expired"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"aud": None},
        {"iss": None},
        {"exp": None},
        {"sub": None},
        {"role": "root"},
        {"sid": None},
    ],
)
async def test_wrong_or_missing_claims(
    verifier: TokenVerifier, signer: Signer, claims: dict[str, Any]
) -> None:
    assert (await refused(verifier, signer.token(**claims))).error == "invalid_token"


async def test_alg_none_is_refused(verifier: TokenVerifier, signer: Signer) -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": signer.kid}).encode())
    _, payload, _ = signer.token().split(".")
    assert (await refused(verifier, f"{header}.{payload}.")).error == "invalid_token"


async def test_hs256_with_the_public_key_as_secret_is_refused(
    verifier: TokenVerifier, signer: Signer
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "u",
            "role": "admin",
            "sid": "s",
            "iat": now,
            "exp": now + 900,
        },
        signer.jwk["x"].encode() * 2,
        algorithm="HS256",
        headers={"kid": signer.kid},
    )
    assert (await refused(verifier, token)).error == "invalid_token"


async def test_unknown_kid_refetches_at_most_once_per_interval(jwks: Jwks) -> None:
    monotonic = Clock(1000.0)
    verifier = TokenVerifier(
        jwks, issuer=ISSUER, audience=AUDIENCE, min_refresh_seconds=30, monotonic=monotonic
    )
    stranger = Signer("key-unknown")
    assert (await refused(verifier, stranger.token())).error == "invalid_token"
    assert jwks.fetches == 1
    assert (await refused(verifier, stranger.token(jti="j2"))).error == "invalid_token"
    assert jwks.fetches == 1  # rate-limited
    monotonic.now += 31
    jwks.keys.append(stranger.jwk)  # the auth service rotated in a new key
    principal = await verifier.verify(stranger.token(jti="j3"))
    assert principal.user_id == "user-1"
    assert jwks.fetches == 2


async def test_known_kid_needs_no_refetch(
    verifier: TokenVerifier, signer: Signer, jwks: Jwks
) -> None:
    await verifier.verify(signer.token(jti="a"))
    await verifier.verify(signer.token(jti="b"))
    assert jwks.fetches == 1


async def test_failed_fetch_backs_off_briefly_then_retries(signer: Signer) -> None:
    calls = 0
    monotonic = Clock(1000.0)

    async def flaky() -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("auth is down")
        return [signer.jwk]

    verifier = TokenVerifier(
        flaky, issuer=ISSUER, audience=AUDIENCE, min_refresh_seconds=30, monotonic=monotonic
    )
    with pytest.raises(ConnectionError):
        await verifier.verify(signer.token())
    with pytest.raises(ApiError) as caught:
        await verifier.verify(signer.token(jti="again"))
    assert (caught.value.status, caught.value.error) == (503, "service_unavailable")
    assert caught.value.headers["Retry-After"] == "1"
    assert calls == 1, "a burst right after a failure must not call the auth service again"
    monotonic.now += 1.5
    assert (await verifier.verify(signer.token())).user_id == "user-1"
    assert calls == 2


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "Zm9v.YmFy.YmF6", "....."])
async def test_garbled_token_is_unauthenticated(verifier: TokenVerifier, token: str) -> None:
    assert (await refused(verifier, token)).error == "unauthenticated"


async def test_token_without_kid(verifier: TokenVerifier, signer: Signer) -> None:
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "u",
            "role": "user",
            "sid": "s",
            "iat": now,
            "exp": now + 900,
        },
        signer.key,
        algorithm="EdDSA",
    )
    assert (await refused(verifier, token)).error == "invalid_token"


async def test_claims_are_cached_until_expiry(signer: Signer, jwks: Jwks) -> None:
    clock = Clock(time.time())
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    token = signer.token(exp=int(clock.now) + 60)
    first = await verifier.verify(token)
    jwks.keys.clear()  # a cache hit needs no fetch and no signature check
    assert await verifier.verify(token) is first
    clock.now += 61  # past exp: the entry is gone, and the token would be checked again
    assert verifier.cached(token) is None


async def test_cache_is_bounded(signer: Signer, jwks: Jwks) -> None:
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=2)
    tokens = [signer.token(jti=str(n)) for n in range(5)]
    for token in tokens:
        await verifier.verify(token)
    assert verifier._claims is not None
    assert len(verifier._claims) == 2
    assert set(verifier._claims) == {_cache_key(t) for t in tokens[-2:]}


async def test_rejections_are_not_cached(verifier: TokenVerifier, signer: Signer) -> None:
    token = signer.token(aud="other")
    await refused(verifier, token)
    await refused(verifier, token)
    assert verifier._claims is not None
    assert _cache_key(token) not in verifier._claims


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "Token x"])
def test_bearer_header_required(header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        bearer_token(header)
    assert (caught.value.status, caught.value.error) == (401, "unauthenticated")


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc.def") == "abc.def"


async def test_admin_routes_need_the_admin_role(verifier: TokenVerifier, signer: Signer) -> None:
    user = await verifier.verify(signer.token())
    assert isinstance(user, Principal)
    assert authorize(user, Access.USER) is user
    with pytest.raises(ApiError) as caught:
        authorize(user, Access.ADMIN)
    assert (caught.value.status, caught.value.error) == (403, "forbidden")
    admin = await verifier.verify(signer.token(role="admin", jti="x"))
    assert authorize(admin, Access.ADMIN).is_admin


async def test_a_key_that_leaves_the_set_stops_its_cached_tokens_at_once(signer: Signer) -> None:
    """Rotation: auth stops publishing the old key; its tokens must not live on in
    the cache until they expire."""
    successor = Signer("kid-2")
    jwks = Jwks(signer, successor)
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, min_refresh_seconds=0)
    old, new = signer.token(), successor.token(jti="j2")
    assert (await verifier.verify(old)).kid == signer.kid
    assert verifier.cached(old) is not None
    await verifier.verify(new)
    jwks.keys = [successor.jwk]  # the old key is withdrawn
    await verifier.refresh()
    assert verifier.cached(old) is None
    await refused(verifier, old)
    assert (await verifier.verify(new)).user_id == "user-1"


async def test_keep_fresh_rereads_the_set_and_survives_a_failed_fetch(signer: Signer) -> None:
    calls: list[str] = []
    fourth = asyncio.Event()

    async def fetch() -> list[dict[str, Any]]:
        calls.append("fetch")
        if len(calls) == 4:
            fourth.set()
        if len(calls) == 2:
            raise ConnectionError("auth is down")
        return [signer.jwk]

    verifier = TokenVerifier(fetch, issuer=ISSUER, audience=AUDIENCE)
    task = asyncio.create_task(verifier.keep_fresh(0.01))
    try:
        await asyncio.wait_for(fourth.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # the outage in between kept the keys: tokens still verify
    assert (await verifier.verify(signer.token())).kid == signer.kid


async def test_background_rereads_leave_the_on_demand_fetch_alone(signer: Signer) -> None:
    """A key first seen in a token is fetched at once even right after a
    background re-read: re-reads do not use up the on-demand fetch."""
    successor = Signer("kid-2")
    jwks = Jwks(signer, successor)
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, min_refresh_seconds=30)
    verifier._install([signer.jwk])  # what keep_fresh does: the set as it was a moment ago
    assert (await verifier.verify(successor.token(jti="j2"))).kid == "kid-2"
    assert jwks.fetches == 1
