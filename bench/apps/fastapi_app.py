"""(c) What Python users reach for today: FastAPI + slowapi + asgi-idempotency-header.

* Authentication: ``HTTPBearer`` and a dependency that verifies the EdDSA
  access token with PyJWT against the auth service's public key (the FastAPI
  tutorial's shape). ``MQBENCH_TOKEN_CACHE=1`` (the runner's default) keeps
  verified claims in an LRU, as the gateway does, so that the comparison is
  about limits and idempotency rather than Ed25519 verifications.
* Rate limits: slowapi's ``Limiter`` on Redis (``MQBENCH_REDIS_URL``), one
  ``@limiter.limit`` decorator per tier (global, user, ip), default strategy
  (fixed window), default settings (no rate-limit headers).
* Idempotency: ``IdempotencyHeaderMiddleware`` with its ``RedisBackend`` on the
  same Redis server, as its README sets it up.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's
# annotations at runtime, and its dependencies are local to create().
import functools
import os
import time
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from idempotency_header_middleware import IdempotencyHeaderMiddleware
from idempotency_header_middleware.backends.redis import RedisBackend
from redis.asyncio import Redis
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.types import ASGIApp

from bench.apps import (
    COUNT_PATH,
    GLOBAL_PER_SECOND,
    IP_PER_SECOND,
    OP_PATH,
    USER_PER_SECOND,
    Served,
    counted,
)

ISSUER = os.environ.get("JWT_ISSUER", "minequest")
AUDIENCE = os.environ.get("JWT_AUDIENCE", "minequest-api")


def _decoder(public_key_pem: bytes, cached: bool) -> Any:
    def decode(token: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key_pem,
            algorithms=["EdDSA"],
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        return claims

    if not cached:
        return decode
    remembered = functools.lru_cache(maxsize=100_000)(decode)

    def decode_cached(token: str) -> dict[str, Any]:
        claims = remembered(token)
        if claims["exp"] < time.time():
            raise jwt.ExpiredSignatureError("expired")
        return claims

    return decode_cached


def _global_key() -> str:
    return "global"


def _user_key(request: Request) -> str:
    return f"user:{request.state.user_id}"


def create() -> ASGIApp:
    redis_url = os.environ["MQBENCH_REDIS_URL"]
    with open(os.environ["MQBENCH_JWT_PUBLIC_KEY"], "rb") as handle:
        decode = _decoder(handle.read(), os.environ.get("MQBENCH_TOKEN_CACHE", "1") == "1")
    bearer = HTTPBearer()

    async def current_user(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    ) -> str:
        try:
            claims = decode(credentials.credentials)
        except jwt.InvalidTokenError:
            raise HTTPException(status_code=401, detail="invalid token") from None
        user_id = str(claims["sub"])
        request.state.user_id = user_id
        return user_id

    limiter = Limiter(key_func=get_remote_address, storage_uri=redis_url)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    # The middleware is a dataclass whose ``app`` is not positional-only, which
    # Starlette's _MiddlewareFactory protocol asks for; it works all the same.
    app.add_middleware(
        IdempotencyHeaderMiddleware,  # type: ignore[arg-type]
        backend=RedisBackend(redis=Redis.from_url(redis_url)),
    )

    @app.post(OP_PATH)
    @limiter.limit(f"{GLOBAL_PER_SECOND}/second", key_func=_global_key)
    @limiter.limit(f"{USER_PER_SECOND}/second", key_func=_user_key)
    @limiter.limit(f"{IP_PER_SECOND}/second", key_func=get_remote_address)
    async def operation(
        request: Request, user_id: Annotated[str, Depends(current_user)]
    ) -> dict[str, Any]:
        return {"ok": True, "user": user_id}

    @app.get(COUNT_PATH)
    async def count() -> dict[str, int]:
        return {"served": Served.count}

    return counted(app)
