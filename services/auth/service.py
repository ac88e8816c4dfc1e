"""The AuthService gRPC handlers: registration, profiles, keys, public
lookups; the OTP login (:mod:`services.auth.login`), sessions
(:mod:`services.auth.tokens`), wallet proofs
(:mod:`services.auth.wallet_proof`), the Telegram login
(:mod:`services.auth.telegram_login`), email linking
(:mod:`services.auth.email_link`) and referrals
(:mod:`services.auth.referrals`) live in their own modules."""

from __future__ import annotations

import logging
from typing import Any

from grpc.aio import ServicerContext

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.errors import InvalidArgument
from services.auth import validation
from services.auth.delivery import BackgroundDelivery
from services.auth.email_link import EmailLinks
from services.auth.errors import ContactRequired, InvalidReferralCode, UserNotFound
from services.auth.keys import PublicJwk, SigningKey
from services.auth.login import OtpLogin
from services.auth.referrals import Referrals
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore, Doc
from services.auth.telegram_login import TelegramLogins
from services.auth.tokens import Sessions
from services.auth.users import (
    Clock,
    insert_new_user,
    new_user,
    public_profile,
    user_message,
    utcnow,
)
from services.auth.wallet_proof import WalletProofs

__all__ = ["AuthService", "Clock", "utcnow"]

log = logging.getLogger(__name__)

Context = ServicerContext[Any, Any]

#: Most user ids one ListPublicProfiles call may ask for.
MAX_PUBLIC_PROFILES = 500


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        settings: AuthSettings,
        store: AuthStore,
        key: SigningKey,
        delivery: BackgroundDelivery,
        *,
        clock: Clock = utcnow,
        jwks: tuple[PublicJwk, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.now = clock
        self.jwks = jwks if jwks is not None else (key.jwk,)
        self.sessions = Sessions(settings, store, key, clock)
        self.login = OtpLogin(settings, store, self.sessions, delivery, clock)
        self.wallets = WalletProofs(settings.siwe, store, clock)
        self.telegram = TelegramLogins(settings.telegram, store, self.sessions, clock)
        self.email_links = EmailLinks(store, self.login, clock)
        self.referrals = Referrals(store)

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

    # OTP login, sessions --------------------------------------------------------

    async def RequestOtp(
        self, request: auth_pb2.RequestOtpRequest, context: Context
    ) -> auth_pb2.RequestOtpResponse:
        return await self.login.request(request)

    async def VerifyOtp(
        self, request: auth_pb2.VerifyOtpRequest, context: Context
    ) -> auth_pb2.VerifyOtpResponse:
        return await self.login.verify(request)

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.RefreshTokenResponse:
        return auth_pb2.RefreshTokenResponse(
            tokens=await self.sessions.refresh(request.refresh_token)
        )

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
        return auth_pb2.GetJwksResponse(
            keys=[
                auth_pb2.Jwk(kty=k.kty, crv=k.crv, x=k.x, kid=k.kid, alg=k.alg, use=k.use)
                for k in self.jwks
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

    # wallet proofs (Sign-In with Ethereum) ---------------------------------------

    async def CreateWalletChallenge(
        self, request: auth_pb2.CreateWalletChallengeRequest, context: Context
    ) -> auth_pb2.CreateWalletChallengeResponse:
        return await self.wallets.challenge(request.user_id, request.wallet_address)

    async def VerifyWallet(
        self, request: auth_pb2.VerifyWalletRequest, context: Context
    ) -> auth_pb2.VerifyWalletResponse:
        return await self.wallets.verify(request.user_id, request.message, request.signature)

    # Telegram Mini App login, email linking ----------------------------------------

    async def TelegramLogin(
        self, request: auth_pb2.TelegramLoginRequest, context: Context
    ) -> auth_pb2.TelegramLoginResponse:
        return await self.telegram.login(request)

    async def RequestEmailLink(
        self, request: auth_pb2.RequestEmailLinkRequest, context: Context
    ) -> auth_pb2.RequestEmailLinkResponse:
        return await self.email_links.request(request)

    async def VerifyEmailLink(
        self, request: auth_pb2.VerifyEmailLinkRequest, context: Context
    ) -> auth_pb2.VerifyEmailLinkResponse:
        return await self.email_links.verify(request)

    # referrals ------------------------------------------------------------------------

    async def GetReferrers(
        self, request: auth_pb2.GetReferrersRequest, context: Context
    ) -> auth_pb2.GetReferrersResponse:
        return await self.referrals.referrers(request)

    async def GetReferralSummary(
        self, request: auth_pb2.GetReferralSummaryRequest, context: Context
    ) -> auth_pb2.GetReferralSummaryResponse:
        return await self.referrals.summary(request)

    async def ListInvitees(
        self, request: auth_pb2.ListInviteesRequest, context: Context
    ) -> auth_pb2.ListInviteesResponse:
        return await self.referrals.invitees(request)

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
