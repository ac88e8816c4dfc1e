"""Linking an email to an account that has none (one made by TelegramLogin):
RequestEmailLink and VerifyEmailLink.

The email is set only once the caller proves they read its mail: the same
challenge machinery as the OTP login (:mod:`services.auth.login`: cooldown
per requester, hourly cap per email, guess guard, a code and a key), with
``purpose`` ``link_email`` and the caller's user id on the challenge, so
neither flow accepts the other's codes and only the caller can redeem it.
A taken email is refused up front and again, atomically, by the unique index
when it is set (``email_taken``); an account that has an email keeps it
(``email_already_linked``). Once set, the email logs in with RequestOtp.
"""

from __future__ import annotations

import logging

from minequest.auth.v1 import auth_pb2
from runtime.errors import required
from services.auth import validation
from services.auth.errors import (
    ChallengeNotFound,
    ContactTaken,
    EmailAlreadyLinked,
    UserNotFound,
)
from services.auth.login import LINK_EMAIL, OtpLogin
from services.auth.store import AuthStore, Doc
from services.auth.users import Clock, user_message

log = logging.getLogger(__name__)


def _email_taken() -> ContactTaken:
    return ContactTaken("email is already registered", reason="email_taken", field="email")


class EmailLinks:
    def __init__(self, store: AuthStore, login: OtpLogin, clock: Clock) -> None:
        self.store = store
        self.login = login
        self.now = clock

    async def _user_without_email(self, user_id: str) -> Doc:
        user = await self.store.user(required(user_id, "user_id"))
        if user is None:
            raise UserNotFound("no such user")
        if user.get("email"):
            raise EmailAlreadyLinked("this account has an email already", field="email")
        return user

    async def request(
        self, request: auth_pb2.RequestEmailLinkRequest
    ) -> auth_pb2.RequestEmailLinkResponse:
        email = validation.email(request.email)
        user = await self._user_without_email(request.user_id)
        if await self.store.user_by("email", email) is not None:
            raise _email_taken()
        issued = await self.login.issue(
            "email", "email", email, user["_id"], request.client_ip, purpose=LINK_EMAIL
        )
        response = auth_pb2.RequestEmailLinkResponse(
            challenge_id=issued.challenge_id,
            expires_at=issued.expires_at,
            resend_after_seconds=issued.resend_after_seconds,
        )
        if issued.HasField("dev_code"):
            response.dev_code = issued.dev_code
        return response

    async def verify(
        self, request: auth_pb2.VerifyEmailLinkRequest
    ) -> auth_pb2.VerifyEmailLinkResponse:
        challenge = await self.login.pending(request.challenge_id, LINK_EMAIL)
        user = await self._user_without_email(request.user_id)
        if challenge["user_id"] != user["_id"]:
            raise ChallengeNotFound("no such pending challenge", field="challengeId")
        await self.login.redeem(challenge, request.code, request.client_ip)
        email = challenge["contact"]
        try:
            linked = await self.store.link_email(user["_id"], email, self.now())
        except ContactTaken:
            raise _email_taken() from None
        if linked is None:
            raise EmailAlreadyLinked("this account has an email already", field="email")
        log.info("email linked", extra={"user_id": user["_id"]})
        return auth_pb2.VerifyEmailLinkResponse(user=user_message(linked))
