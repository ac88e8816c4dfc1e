"""The AuthService gRPC handlers: registration, OTP login, tokens, profiles."""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from grpc.aio import ServicerContext
from pymongo.errors import DuplicateKeyError

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.errors import InvalidArgument
from runtime.timestamps import aware, to_timestamp
from services.auth import otp, validation
from services.auth.errors import (
    AccountNotFound,
    ChallengeNotFound,
    ContactRequired,
    DeliveryUnavailable,
    InvalidCode,
    InvalidOtpRequest,
    InvalidReferralCode,
    InvalidRefreshToken,
    OtpCooldown,
    OtpExpired,
    RefreshTokenReused,
    SessionRevoked,
    TooManyAttempts,
    UserNotFound,
)
from services.auth.keys import SigningKey
from services.auth.mailer import CodeSender
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore, Doc

log = logging.getLogger(__name__)

Context = ServicerContext[Any, Any]
Clock = Callable[[], datetime]

ROLES = {"user": auth_pb2.ROLE_USER, "admin": auth_pb2.ROLE_ADMIN}
#: Most user ids one ListPublicProfiles call may ask for.
MAX_PUBLIC_PROFILES = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def user_message(doc: Doc) -> auth_pb2.User:
    return auth_pb2.User(
        id=doc["_id"],
        wallet_address=doc["wallet_address"],
        email=doc.get("email") or "",
        phone=doc.get("phone") or "",
        username=doc.get("username") or "",
        role=ROLES.get(doc.get("role", "user"), auth_pb2.ROLE_USER),
        referral_code=doc["referral_code"],
        referred_by=doc.get("referred_by") or "",
        created_at=to_timestamp(doc.get("created_at")),
        updated_at=to_timestamp(doc.get("updated_at")),
    )


def public_profile(doc: Doc) -> auth_pb2.PublicProfile:
    """What other services may show of a user: id, wallet, username."""
    return auth_pb2.PublicProfile(
        user_id=doc["_id"],
        wallet_address=doc["wallet_address"],
        username=doc.get("username") or "",
    )


def new_referral_code() -> str:
    return base64.b32encode(secrets.token_bytes(5)).decode()


def new_user(
    *,
    wallet: str,
    email: str | None,
    phone: str | None,
    username: str | None,
    role: str,
    referred_by: str | None,
    now: datetime,
) -> Doc:
    return {
        "_id": uuid.uuid4().hex,
        "wallet_address": wallet,
        "email": email,
        "phone": phone,
        "username": username,
        "username_key": username.lower() if username else None,
        "role": role,
        "referral_code": new_referral_code(),
        "referred_by": referred_by,
        "created_at": now,
        "updated_at": now,
    }


async def insert_new_user(store: AuthStore, user: Doc) -> None:
    """Insert, drawing a fresh referral code on the (rare) collision."""
    for _ in range(5):
        try:
            await store.insert_user(user)
            return
        except DuplicateKeyError:
            user["referral_code"] = new_referral_code()
    await store.insert_user(user)


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        settings: AuthSettings,
        store: AuthStore,
        key: SigningKey,
        sender: CodeSender,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.key = key
        self.sender = sender
        self.now = clock

    # registration ------------------------------------------------------------

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Context
    ) -> auth_pb2.RegisterResponse:
        wallet = validation.wallet_address(request.wallet_address)
        email = validation.email(request.email) if request.email else None
        phone = validation.phone(request.phone) if request.phone else None
        if email is None and phone is None:
            raise ContactRequired("an email or a phone is required", field="email")
        username = validation.username(request.username) if request.username else None
        referred_by = None
        if request.referral_code:
            code = validation.referral_code(request.referral_code)
            inviter = await self.store.user_by("referral_code", code)
            if inviter is None:
                raise InvalidReferralCode("no user has this referral code", field="referralCode")
            referred_by = inviter["_id"]
        user = new_user(
            wallet=wallet,
            email=email,
            phone=phone,
            username=username,
            role="user",
            referred_by=referred_by,
            now=self.now(),
        )
        await insert_new_user(self.store, user)
        log.info("user registered", extra={"user_id": user["_id"]})
        return auth_pb2.RegisterResponse(user=user_message(user))

    # OTP login -----------------------------------------------------------------

    async def RequestOtp(
        self, request: auth_pb2.RequestOtpRequest, context: Context
    ) -> auth_pb2.RequestOtpResponse:
        if bool(request.email) == bool(request.phone):
            raise InvalidOtpRequest("give exactly one of email or phone", field="email")
        if request.email:
            channel, field, contact = "email", "email", validation.email(request.email)
        else:
            channel, field, contact = "sms", "phone", validation.phone(request.phone)
        settings = self.settings
        deliverable = self.sender.can_send(channel)
        if not deliverable and not settings.dev_otp_fallback:
            raise DeliveryUnavailable(f"{channel} delivery is not configured")
        user = await self.store.user_by(field, contact)
        if user is None:
            raise AccountNotFound(f"no account with this {field}; register first", field=field)
        now = self.now()
        wait = await self.store.claim_cooldown(contact, now, settings.otp_resend_cooldown_seconds)
        if wait is not None:
            raise OtpCooldown(f"a code was just sent; try again in {int(wait)} s", retry_after=wait)
        code, salt = otp.new_code(), otp.new_salt()
        expires_at = now + timedelta(seconds=settings.otp_ttl_seconds)
        challenge_id = uuid.uuid4().hex
        await self.store.insert_challenge(
            {
                "_id": challenge_id,
                "user_id": user["_id"],
                "channel": channel,
                "contact": contact,
                "code_hash": otp.hash_code(code, salt),
                "salt": salt,
                "attempts": 0,
                "consumed": False,
                "created_at": now,
                "expires_at": expires_at,
            }
        )
        if deliverable:
            try:
                await self.sender.send(channel, contact, code, settings.otp_ttl_seconds)
            except DeliveryUnavailable:
                await self.store.release_cooldown(contact)
                raise
        response = auth_pb2.RequestOtpResponse(
            challenge_id=challenge_id,
            expires_at=to_timestamp(expires_at),
            resend_after_seconds=settings.otp_resend_cooldown_seconds,
            channel=channel,
        )
        if settings.dev_otp_fallback:
            log.warning(
                "dev otp fallback: code issued",
                extra={"challenge_id": challenge_id, "dev_code": code},
            )
            response.dev_code = code
        return response

    async def VerifyOtp(
        self, request: auth_pb2.VerifyOtpRequest, context: Context
    ) -> auth_pb2.VerifyOtpResponse:
        max_attempts = self.settings.otp_max_attempts
        challenge = (
            await self.store.challenge(request.challenge_id) if request.challenge_id else None
        )
        if challenge is None or challenge["consumed"]:
            raise ChallengeNotFound("no such pending challenge", field="challengeId")
        if challenge["attempts"] >= max_attempts:
            raise TooManyAttempts("too many wrong codes; request a new one")
        if aware(challenge["expires_at"]) <= self.now():
            raise OtpExpired("the code has expired; request a new one")
        counted = await self.store.count_attempt(challenge["_id"], max_attempts)
        if counted is None:
            raise TooManyAttempts("too many wrong codes; request a new one")
        if not otp.well_formed(request.code) or not otp.code_matches(
            request.code, counted["salt"], counted["code_hash"]
        ):
            left = max_attempts - counted["attempts"]
            raise InvalidCode(
                f"wrong code; {left} attempt(s) left",
                field="code",
                metadata={"attempts_left": str(left)},
            )
        if not await self.store.consume_challenge(challenge["_id"], self.now()):
            raise ChallengeNotFound("no such pending challenge", field="challengeId")
        user = await self.store.user(challenge["user_id"])
        if user is None:
            raise UserNotFound("the account no longer exists")
        session_id = uuid.uuid4().hex
        await self.store.create_session(
            {
                "_id": session_id,
                "user_id": user["_id"],
                "created_at": self.now(),
                "revoked_at": None,
            }
        )
        tokens = await self._issue(user, session_id)
        log.info("login", extra={"user_id": user["_id"], "session_id": session_id})
        return auth_pb2.VerifyOtpResponse(tokens=tokens, user=user_message(user))

    # tokens --------------------------------------------------------------------

    async def _issue(self, user: Doc, session_id: str) -> auth_pb2.TokenPair:
        settings, now = self.settings, self.now()
        refresh = secrets.token_urlsafe(32)
        await self.store.insert_refresh_token(
            refresh,
            {
                "family_id": session_id,
                "user_id": user["_id"],
                "created_at": now,
                "expires_at": now + timedelta(seconds=settings.refresh_token_ttl_seconds),
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
            refresh_expires_in=settings.refresh_token_ttl_seconds,
        )

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.RefreshTokenResponse:
        if not request.refresh_token:
            raise InvalidRefreshToken("refresh token is required", field="refreshToken")
        now = self.now()
        record = await self.store.use_refresh_token(request.refresh_token, now)
        if record is None:
            known = await self.store.refresh_token(request.refresh_token)
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
        user = await self.store.user(record["user_id"])
        if user is None:
            raise UserNotFound("the account no longer exists")
        return auth_pb2.RefreshTokenResponse(tokens=await self._issue(user, record["family_id"]))

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: Context
    ) -> auth_pb2.LogoutResponse:
        if request.session_id:
            await self.store.revoke_session(
                request.session_id, self.now(), "logout", user_id=request.user_id
            )
        return auth_pb2.LogoutResponse()

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: Context
    ) -> auth_pb2.GetJwksResponse:
        jwk = self.key.jwk
        return auth_pb2.GetJwksResponse(
            keys=[
                auth_pb2.Jwk(
                    kty=jwk.kty, crv=jwk.crv, x=jwk.x, kid=jwk.kid, alg=jwk.alg, use=jwk.use
                )
            ]
        )

    # profile -------------------------------------------------------------------

    async def GetProfile(
        self, request: auth_pb2.GetProfileRequest, context: Context
    ) -> auth_pb2.GetProfileResponse:
        user = await self.store.user(request.user_id) if request.user_id else None
        if user is None:
            raise UserNotFound("no such user")
        return auth_pb2.GetProfileResponse(user=user_message(user))

    async def UpdateProfile(
        self, request: auth_pb2.UpdateProfileRequest, context: Context
    ) -> auth_pb2.UpdateProfileResponse:
        changes: Doc = {}
        if request.HasField("username"):
            if request.username:
                name = validation.username(request.username)
                changes.update(username=name, username_key=name.lower())
            else:
                changes.update(username=None, username_key=None)
        if not request.user_id:
            raise UserNotFound("no such user")
        if changes:
            user = await self.store.update_user(request.user_id, changes, self.now())
        else:
            user = await self.store.user(request.user_id)
        if user is None:
            raise UserNotFound("no such user")
        return auth_pb2.UpdateProfileResponse(user=user_message(user))

    # public profiles (internal: the quests service's leaderboard and lookups) ----

    async def GetPublicProfile(
        self, request: auth_pb2.GetPublicProfileRequest, context: Context
    ) -> auth_pb2.GetPublicProfileResponse:
        wallet = validation.wallet_address(request.wallet_address)
        user = await self.store.user_by("wallet_address", wallet)
        if user is None:
            raise UserNotFound("no user holds this wallet address")
        return auth_pb2.GetPublicProfileResponse(profile=public_profile(user))

    async def ListPublicProfiles(
        self, request: auth_pb2.ListPublicProfilesRequest, context: Context
    ) -> auth_pb2.ListPublicProfilesResponse:
        ids = list(dict.fromkeys(request.user_ids))
        if len(ids) > MAX_PUBLIC_PROFILES:
            raise InvalidArgument(
                f"at most {MAX_PUBLIC_PROFILES} user ids per call",
                reason="too_many_user_ids",
                field="user_ids",
            )
        users = await self.store.users_by_ids(ids)
        return auth_pb2.ListPublicProfilesResponse(
            profiles=[public_profile(users[i]) for i in ids if i in users]
        )
