"""``/api/auth/*``: accounts, OTP and Telegram login, tokens, profile (an
email linked later), wallet proofs and the public keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from gateway.routing import Access, Endpoint, Incoming, rpc
from minequest.auth.v1 import auth_pb2 as pb

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub

TAG = "auth"
NO_STORE = {"Cache-Control": "no-store"}
PRIVATE = {"Cache-Control": "private, no-cache"}
JWKS_CACHE = {"Cache-Control": "public, max-age=300"}


async def fetch_jwk_set(auth: AuthServiceAsyncStub) -> list[dict[str, Any]]:
    """The auth service's keys as RFC 7517 wants them: members without a value
    are left out. Serves both this route and the gateway's token verifier."""
    reply = await auth.GetJwks(pb.GetJwksRequest())
    return [{field.name: value for field, value in key.ListFields()} for key in reply.keys]


async def jwks(incoming: Incoming) -> Response:
    keys = await fetch_jwk_set(incoming.gateway.auth)
    return JSONResponse({"keys": keys}, headers=JWKS_CACHE)


ENDPOINTS: tuple[Endpoint, ...] = (
    rpc(
        "POST",
        "/api/auth/register",
        call=lambda g, m: g.auth.Register(m),
        request=pb.RegisterRequest,
        response=pb.RegisterResponse,
        status=201,
        operation_id="register",
        summary="Create an account",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/auth/otp/request",
        call=lambda g, m: g.auth.RequestOtp(m),
        request=pb.RequestOtpRequest,
        response=pb.RequestOtpResponse,
        server_fields=("client_ip",),
        operation_id="requestOtp",
        summary="Send a one-time login code (and login key) by email or SMS; "
        "answered alike whether or not the contact has an account",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/auth/otp/verify",
        call=lambda g, m: g.auth.VerifyOtp(m),
        request=pb.VerifyOtpRequest,
        response=pb.VerifyOtpResponse,
        server_fields=("client_ip",),
        operation_id="verifyOtp",
        summary="Exchange a login code (or the mail's login key) for tokens",
        tag=TAG,
        headers=NO_STORE,
        issues_credentials=True,
    ),
    rpc(
        "POST",
        "/api/auth/telegram",
        call=lambda g, m: g.auth.TelegramLogin(m),
        request=pb.TelegramLoginRequest,
        response=pb.TelegramLoginResponse,
        server_fields=("client_ip",),
        operation_id="telegramLogin",
        summary="Exchange a Telegram Mini App's initData for tokens; the first login "
        "makes the account (a start_param referral code links the inviter)",
        tag=TAG,
        headers=NO_STORE,
        issues_credentials=True,
    ),
    rpc(
        "POST",
        "/api/auth/refresh",
        call=lambda g, m: g.auth.RefreshToken(m),
        request=pb.RefreshTokenRequest,
        response=pb.RefreshTokenResponse,
        operation_id="refreshToken",
        summary="Rotate a refresh token",
        tag=TAG,
        headers=NO_STORE,
        issues_credentials=True,
    ),
    rpc(
        "POST",
        "/api/auth/logout",
        call=lambda g, m: g.auth.Logout(m),
        request=pb.LogoutRequest,
        response=pb.LogoutResponse,
        status=204,
        empty_body=True,
        access=Access.USER,
        server_fields=("user_id", "session_id"),
        operation_id="logout",
        summary="Revoke this session's refresh tokens",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "GET",
        "/api/auth/me",
        call=lambda g, m: g.auth.GetProfile(m),
        request=pb.GetProfileRequest,
        response=pb.GetProfileResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="getProfile",
        summary="The caller's profile",
        tag=TAG,
        headers=PRIVATE,
    ),
    rpc(
        "PATCH",
        "/api/auth/me",
        call=lambda g, m: g.auth.UpdateProfile(m),
        request=pb.UpdateProfileRequest,
        response=pb.UpdateProfileResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="updateProfile",
        summary="Change the caller's profile",
        tag=TAG,
        headers=PRIVATE,
    ),
    rpc(
        "POST",
        "/api/auth/me/email",
        call=lambda g, m: g.auth.RequestEmailLink(m),
        request=pb.RequestEmailLinkRequest,
        response=pb.RequestEmailLinkResponse,
        access=Access.USER,
        server_fields=("user_id", "client_ip"),
        operation_id="requestEmailLink",
        summary="Mail a code to an email to add it to the caller's account (one without an "
        "email, e.g. made by Telegram login)",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/auth/me/email/verify",
        call=lambda g, m: g.auth.VerifyEmailLink(m),
        request=pb.VerifyEmailLinkRequest,
        response=pb.VerifyEmailLinkResponse,
        access=Access.USER,
        server_fields=("user_id", "client_ip"),
        operation_id="verifyEmailLink",
        summary="Add the email: the code (or key) mailed to it proves it is the caller's",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/auth/wallet/challenge",
        call=lambda g, m: g.auth.CreateWalletChallenge(m),
        request=pb.CreateWalletChallengeRequest,
        response=pb.CreateWalletChallengeResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="createWalletChallenge",
        summary="Sign-In with Ethereum: the EIP-4361 message the caller's wallet is to sign",
        tag=TAG,
        headers=NO_STORE,
    ),
    rpc(
        "POST",
        "/api/auth/wallet/verify",
        call=lambda g, m: g.auth.VerifyWallet(m),
        request=pb.VerifyWalletRequest,
        response=pb.VerifyWalletResponse,
        access=Access.USER,
        server_fields=("user_id",),
        operation_id="verifyWallet",
        summary="Prove the wallet: the issued message and its personal_sign signature",
        tag=TAG,
        headers=NO_STORE,
    ),
    Endpoint(
        "GET",
        "/api/auth/jwks",
        handler=jwks,
        response=pb.GetJwksResponse,
        operation_id="getJwks",
        summary="Public keys that verify access tokens (RFC 7517)",
        tag=TAG,
        headers=JWKS_CACHE,
    ),
)
