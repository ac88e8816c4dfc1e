"""Access-token verification, done locally on every authenticated request.

Tokens are EdDSA JWTs signed by the auth service. The public keys come from
``AuthService.GetJwks``, cached and refetched when a token names an unknown
``kid`` (at most once per ``JWKS_MIN_REFRESH_SECONDS``). Only ``EdDSA`` is
accepted, so ``alg: none`` and HMAC tokens are refused; ``iss``, ``aud``,
``exp``, ``iat`` and ``sub`` are required and checked.

One Ed25519 verification costs ~130 µs and a client repeats the same token
for its whole life, so verified claims are kept in a bounded LRU until the
token's ``exp``, keyed by a 16-byte digest of the token (about 0.5 KB per
entry: ~50 MB at the default 100,000).

    missing or garbled token    401 unauthenticated
    expired                     401 token_expired
    bad signature or claims     401 invalid_token
    not an admin                403 forbidden
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cachetools import TLRUCache

from gateway.errors import ApiError

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
ROLES = frozenset({"user", "admin"})
#: Tolerated clock difference between the auth service and the gateway.
LEEWAY_SECONDS = 5
#: After a failed JWK fetch, unknown keys answer 503 this long without a new call.
FAILURE_BACKOFF_SECONDS = 1.0

#: Fetches the current JWK set (a list of RFC 7517 key objects).
JwksFetcher = Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]


class Access(enum.Enum):
    """Who may call a route."""

    PUBLIC = "public"
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified access token."""

    user_id: str
    role: str
    session_id: str
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def unauthenticated(detail: str) -> ApiError:
    return ApiError(
        401, "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="minequest"'}
    )


def invalid_token(detail: str, error: str = "invalid_token") -> ApiError:
    return ApiError(
        401,
        error,
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="minequest", error="invalid_token"'},
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        raise unauthenticated("an Authorization: Bearer access token is required")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("the Authorization header must be 'Bearer <access token>'")
    return token


class TokenVerifier:
    """Verifies access tokens against the auth service's JWK set."""

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        min_refresh_seconds: float = 30.0,
        cache_size: int = 100_000,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self._claims: TLRUCache[bytes, Principal] | None = (
            TLRUCache(maxsize=cache_size, ttu=_until_expiry, timer=clock)
            if cache_size > 0
            else None
        )

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token, or :class:`ApiError` (401)."""
        key = _cache_key(token)
        if self._claims is not None:
            cached = self._claims.get(key)
            if cached is not None:
                return cached
        principal = await self._verify(token)
        if self._claims is not None:
            self._claims[key] = principal
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthenticated("the access token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise invalid_token(f"the access token must be signed with {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("the access token names no signing key (kid)")
        key = await self._key(kid)
        if key is None:
            raise invalid_token("the access token is signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("the access token has expired", "token_expired") from None
        except jwt.InvalidTokenError as error:
            raise invalid_token(f"the access token is not valid: {error}") from None
        return _principal(claims)

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = self._monotonic()
            if self._fetched_at is not None and now - self._fetched_at < self._min_refresh:
                return None
            if self._failed_at is not None and now - self._failed_at < FAILURE_BACKOFF_SECONDS:
                raise ApiError(
                    503,
                    "service_unavailable",
                    "the auth service is unreachable",
                    headers={"Retry-After": "1"},
                )
            await self.refresh()
            return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the JWK set now. A failure propagates; for the next
        ``FAILURE_BACKOFF_SECONDS`` unknown keys then answer 503 without
        another call, so a burst of requests cannot hammer a down auth service."""
        try:
            keys = await self._fetch_jwks()
        except Exception:
            self._failed_at = self._monotonic()
            raise
        self._keys = load_keys(keys)
        self._fetched_at = self._monotonic()
        self._failed_at = None
        log.info("fetched the JWK set", extra={"kids": sorted(self._keys)})


def load_keys(jwks: Sequence[Mapping[str, Any]]) -> dict[str, jwt.PyJWK]:
    """The usable EdDSA signing keys of a JWK set, by ``kid``."""
    keys: dict[str, jwt.PyJWK] = {}
    for jwk in jwks:
        kid = jwk.get("kid")
        if not kid or jwk.get("kty") != "OKP" or jwk.get("use", "sig") not in ("sig", ""):
            continue
        if jwk.get("alg", ALGORITHM) not in (ALGORITHM, ""):
            continue
        data = {name: value for name, value in jwk.items() if value != ""}
        try:
            keys[kid] = jwt.PyJWK(data, algorithm=ALGORITHM)
        except jwt.PyJWTError as error:
            log.warning("skipping an unusable JWK", extra={"kid": kid, "problem": str(error)})
    return keys


def _principal(claims: Mapping[str, Any]) -> Principal:
    user_id, role, session_id = claims.get("sub"), claims.get("role"), claims.get("sid")
    if not isinstance(user_id, str) or not user_id:
        raise invalid_token("the access token has no subject")
    if role not in ROLES:
        raise invalid_token("the access token has no valid role")
    if not isinstance(session_id, str) or not session_id:
        raise invalid_token("the access token has no session id")
    return Principal(
        user_id=user_id, role=str(role), session_id=session_id, expires_at=float(claims["exp"])
    )


def _cache_key(token: str) -> bytes:
    """A 16-byte digest stands for the ~480-byte token in the cache: about
    0.5 KB per entry instead of 1 KB (~50 MB at the default 100,000)."""
    return hashlib.blake2b(token.encode(), digest_size=16).digest()


def _until_expiry(_key: bytes, principal: Principal, _now: float) -> float:
    return principal.expires_at


async def require_user(verifier: TokenVerifier, authorization: str | None) -> Principal:
    """The caller of a request that must carry a valid access token."""
    return await verifier.verify(bearer_token(authorization))


async def require_admin(verifier: TokenVerifier, authorization: str | None) -> Principal:
    """Like :func:`require_user`, and the caller must be an admin (else 403)."""
    principal = await require_user(verifier, authorization)
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "this route is for admins")
    return principal


async def authenticate(
    verifier: TokenVerifier, access: Access, authorization: str | None
) -> Principal | None:
    """The caller as ``access`` demands: None on a public route, else a verified
    principal (401 without a valid token, 403 for a non-admin on admin routes)."""
    if access is Access.USER:
        return await require_user(verifier, authorization)
    if access is Access.ADMIN:
        return await require_admin(verifier, authorization)
    return None
