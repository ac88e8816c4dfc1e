"""Access-token verification, done locally on every authenticated request.

Tokens are EdDSA JWTs signed by the auth service. The public keys come from
``AuthService.GetJwks``, cached and refetched when a token names an unknown
``kid`` (at most once per ``JWKS_MIN_REFRESH_SECONDS``). Only ``EdDSA`` is
accepted, so ``alg: none`` and HMAC tokens are refused; ``iss``, ``aud``,
``exp``, ``iat`` and ``sub`` are required and checked.

One Ed25519 verification costs ~130 µs and a client repeats the same token
for its whole life, so verified claims are kept in a bounded LRU until the
token's ``exp``, keyed by a 16-byte digest of the token (about 0.5 KB per
entry: ~50 MB at the default 100,000). A cached token is only as good as its
key: the set is re-read every ``JWKS_REFRESH_SECONDS`` (:meth:`TokenVerifier.
keep_fresh`), and a token whose ``kid`` has left the set stops working at
that moment, cached or not. A token the cache cannot answer costs a
verification, so the route layer charges the ``token`` rate-limit policy
first (:mod:`gateway.protection.tokens`).

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
from starlette.types import Scope

from gateway.errors import ApiError
from runtime.log import Throttle

log = logging.getLogger(__name__)
_REFRESH_LOG = Throttle(60.0)

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
    #: Public, but a bearer token, when sent, is verified and names the caller.
    OPTIONAL = "optional"
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified access token."""

    user_id: str
    role: str
    session_id: str
    expires_at: float
    #: The key that signed the token: it must still be in the JWK set.
    kid: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


#: Scope key of the verified :class:`Principal` (None on anonymous requests).
PRINCIPAL = "minequest.principal"


def principal_of(scope: Scope) -> Principal | None:
    """The request's verified caller, or None."""
    principal = scope.get(PRINCIPAL)
    return principal if isinstance(principal, Principal) else None


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

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before, if its key is still published."""
        if self._claims is None:
            return None
        principal = self._claims.get(_cache_key(token))
        if principal is None or principal.kid not in self._keys:
            return None
        return principal

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token, or :class:`ApiError` (401)."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        principal = await self._verify(token)
        if self._claims is not None:
            self._claims[_cache_key(token)] = principal
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
        return _principal(claims, kid)

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
        self._install(keys)
        self._fetched_at = self._monotonic()
        self._failed_at = None

    def _install(self, jwks: Sequence[Mapping[str, Any]]) -> None:
        fresh = load_keys(jwks)
        removed = set(self._keys) - set(fresh)
        if removed and self._claims is not None:
            # Tokens of a withdrawn key stop at once (cached() also checks the
            # kid); dropping the cache frees their entries too.
            self._claims.clear()
        if set(fresh) != set(self._keys):
            log.info(
                "the JWK set changed", extra={"kids": sorted(fresh), "removed": sorted(removed)}
            )
        self._keys = fresh

    async def keep_fresh(self, interval_seconds: float) -> None:
        """Re-read the JWK set every ``interval_seconds`` until cancelled; a failed
        fetch keeps the keys it had (an auth outage must not log everyone out)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                # Not refresh(): a background miss (auth restarting) must not
                # put requests with new keys into the 503 back-off.
                self._install(await self._fetch_jwks())
            except Exception as error:  # logged and retried next round
                held = _REFRESH_LOG.allow("jwks")
                if held is not None:
                    log.warning(
                        "could not refresh the JWK set", extra={"error": repr(error), "held": held}
                    )


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


def _principal(claims: Mapping[str, Any], kid: str) -> Principal:
    user_id, role, session_id = claims.get("sub"), claims.get("role"), claims.get("sid")
    if not isinstance(user_id, str) or not user_id:
        raise invalid_token("the access token has no subject")
    if role not in ROLES:
        raise invalid_token("the access token has no valid role")
    if not isinstance(session_id, str) or not session_id:
        raise invalid_token("the access token has no session id")
    return Principal(
        user_id=user_id,
        role=str(role),
        session_id=session_id,
        expires_at=float(claims["exp"]),
        kid=kid,
    )


def _cache_key(token: str) -> bytes:
    """A 16-byte digest stands for the ~480-byte token in the cache: about
    0.5 KB per entry instead of 1 KB (~50 MB at the default 100,000)."""
    return hashlib.blake2b(token.encode(), digest_size=16).digest()


def _until_expiry(_key: bytes, principal: Principal, _now: float) -> float:
    return principal.expires_at


def authorize(principal: Principal, access: Access) -> Principal:
    """``principal`` if ``access`` lets it in; 403 ``forbidden`` for a user on an
    admin route."""
    if access is Access.ADMIN and not principal.is_admin:
        raise ApiError(403, "forbidden", "this route is for admins")
    return principal
