"""Sessions and their tokens: an access token (JWT) and a rotating refresh token.

A session is one refresh-token family. It has an absolute end,
``created_at + AUTH_SESSION_MAX_LIFETIME_SECONDS``: a refresh token expires
at the earlier of its own TTL and the session's end, so rotating can never
stretch a session past it (the user logs in again). Reusing a used refresh
token revokes the whole session.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import datetime, timedelta

from minequest.auth.v1 import auth_pb2
from runtime.timestamps import aware
from services.auth.errors import (
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionRevoked,
    UserNotFound,
)
from services.auth.keys import SigningKey
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore, Doc
from services.auth.users import Clock

log = logging.getLogger(__name__)


class Sessions:
    def __init__(
        self, settings: AuthSettings, store: AuthStore, key: SigningKey, clock: Clock
    ) -> None:
        self.settings = settings
        self.store = store
        self.key = key
        self.now = clock

    def _end(self, session: Doc) -> datetime:
        """When ``session`` ends for good (older sessions: from their start)."""
        end = session.get("expires_at")
        if end is None:
            end = session["created_at"] + timedelta(
                seconds=self.settings.session_max_lifetime_seconds
            )
        return aware(end)

    async def start(self, user: Doc) -> tuple[str, auth_pb2.TokenPair]:
        """A new session for ``user``: its id and first token pair."""
        now = self.now()
        session = {
            "_id": uuid.uuid4().hex,
            "user_id": user["_id"],
            "created_at": now,
            "expires_at": now + timedelta(seconds=self.settings.session_max_lifetime_seconds),
            "revoked_at": None,
        }
        await self.store.create_session(session)
        return session["_id"], await self._issue(user, session["_id"], self._end(session))

    async def _issue(self, user: Doc, session_id: str, session_end: datetime) -> auth_pb2.TokenPair:
        settings, now = self.settings, self.now()
        refresh = secrets.token_urlsafe(32)
        expires_at = min(now + timedelta(seconds=settings.refresh_token_ttl_seconds), session_end)
        await self.store.insert_refresh_token(
            refresh,
            {
                "family_id": session_id,
                "user_id": user["_id"],
                "created_at": now,
                "expires_at": expires_at,
                "used_at": None,
            },
        )
        access = self.key.sign_access_token(
            user_id=user["_id"],
            role=user.get("role", "user"),
            session_id=session_id,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            now=now,
            ttl_seconds=settings.access_token_ttl_seconds,
        )
        return auth_pb2.TokenPair(
            access_token=access,
            refresh_token=refresh,
            token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
            expires_in=settings.access_token_ttl_seconds,
            refresh_expires_in=max(0, int((expires_at - now).total_seconds())),
        )

    async def refresh(self, token: str) -> auth_pb2.TokenPair:
        if not token:
            raise InvalidRefreshToken("refresh token is required", field="refreshToken")
        now = self.now()
        record = await self.store.use_refresh_token(token, now)
        if record is None:
            known = await self.store.refresh_token(token)
            if known is None:
                raise InvalidRefreshToken("unknown refresh token")
            await self.store.revoke_session(known["family_id"], now, "refresh_token_reused")
            log.warning(
                "refresh token reused: session revoked",
                extra={"user_id": known["user_id"], "session_id": known["family_id"]},
            )
            raise RefreshTokenReused("refresh token was already used; the session is revoked")
        if aware(record["expires_at"]) <= now:
            raise InvalidRefreshToken("refresh token has expired")
        session = await self.store.session(record["family_id"])
        if session is None or session.get("revoked_at") is not None:
            raise SessionRevoked("the session was revoked; log in again")
        end = self._end(session)
        if end <= now:
            raise SessionRevoked(
                "the session has reached its lifetime; log in again", reason="session_expired"
            )
        user = await self.store.user(record["user_id"])
        if user is None:
            raise UserNotFound("the account no longer exists")
        return await self._issue(user, record["family_id"], end)
