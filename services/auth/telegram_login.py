"""TelegramLogin: a Telegram Mini App's ``initData`` for a token pair.

The ``initData`` is checked by :mod:`services.auth.telegram`. The account is
keyed by the Telegram user id (``telegram_id``, unique when set): the first
login makes it, with no email and no wallet (both may be linked later:
:mod:`services.auth.email_link`, :mod:`services.auth.wallet_proof`); later
logins log into it. Two first logins at once make one account: the loser's
insert hits the unique index and logs into the winner's.

Its username is Telegram's when it is a valid one and free, else
``tg_<telegram id>``, else none (the user may choose one later).

**Referrals.** A ``start_param`` (a ``t.me/<bot>/<app>?startapp=<code>``
link) holding a referral code links the inviter, on the first login only:
``referred_by`` is fixed when an account is made and nothing changes it
after, so a later login with another code does not relink, and an invitee,
always younger than its inviter, can never become its inviter's ancestor
(no cycles; no self-referral, the account did not exist when its code would
have been given). An unknown or malformed code does not block the first
login (the link may be old, the user cannot change it): the account is made
without an inviter and the answer's ``referral_error`` says
``invalid_referral_code``.
"""

from __future__ import annotations

import contextlib
import logging

from minequest.auth.v1 import auth_pb2
from services.auth import telegram, validation
from services.auth.errors import (
    ContactTaken,
    InvalidReferralCode,
    InvalidUsername,
    TelegramNotConfigured,
    UserNotFound,
)
from services.auth.settings import TelegramSettings
from services.auth.store import AuthStore, Doc
from services.auth.tokens import Sessions
from services.auth.users import Clock, insert_new_user, new_user, user_message

log = logging.getLogger(__name__)


def usernames(user: telegram.TelegramUser) -> list[str | None]:
    """The usernames to try for a new account, in order (None: no username)."""
    candidates: list[str | None] = []
    if user.username is not None:
        with contextlib.suppress(InvalidUsername):
            candidates.append(validation.username(user.username))
    return [*candidates, f"tg_{user.id}", None]


class TelegramLogins:
    def __init__(
        self, settings: TelegramSettings, store: AuthStore, sessions: Sessions, clock: Clock
    ) -> None:
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.now = clock

    async def login(self, request: auth_pb2.TelegramLoginRequest) -> auth_pb2.TelegramLoginResponse:
        bot_token = self.settings.bot_token
        if bot_token is None:
            raise TelegramNotConfigured(
                "Telegram login is not configured on this server (TELEGRAM_BOT_TOKEN)"
            )
        tg_user = telegram.verify(
            request.init_data,
            bot_token,
            now=self.now(),
            max_age_seconds=self.settings.max_age_seconds,
        )
        telegram_id = str(tg_user.id)
        user = await self.store.user_by("telegram_id", telegram_id)
        created, referral_error = False, ""
        if user is None:
            user, created, referral_error = await self._create(tg_user, telegram_id)
        session_id, tokens = await self.sessions.start(user)
        log.info(
            "telegram login",
            extra={"user_id": user["_id"], "session_id": session_id, "new_account": created},
        )
        return auth_pb2.TelegramLoginResponse(
            tokens=tokens,
            user=user_message(user),
            created=created,
            referral_error=referral_error,
        )

    async def _inviter(self, start_param: str | None) -> tuple[str | None, str]:
        """The inviter a start_param names, or None and why not."""
        if start_param is None:
            return None, ""
        try:
            code = validation.referral_code(start_param)
        except InvalidReferralCode:
            return None, InvalidReferralCode.reason
        inviter = await self.store.user_by("referral_code", code)
        if inviter is None:
            return None, InvalidReferralCode.reason
        return inviter["_id"], ""

    async def _create(
        self, tg_user: telegram.TelegramUser, telegram_id: str
    ) -> tuple[Doc, bool, str]:
        """The new account (or the one a concurrent first login made), whether
        this call made it, and why its start_param linked no inviter."""
        referred_by, referral_error = await self._inviter(tg_user.start_param)
        for username in usernames(tg_user):
            doc = new_user(
                wallet=None,
                email=None,
                phone=None,
                username=username,
                role="user",
                referred_by=referred_by,
                now=self.now(),
                telegram_id=telegram_id,
            )
            try:
                await insert_new_user(self.store, doc)
            except ContactTaken as taken:
                if taken.reason == "username_taken":
                    continue
                if taken.reason != "telegram_taken":
                    raise
                existing = await self.store.user_by("telegram_id", telegram_id)
                if existing is None:
                    raise UserNotFound("the account no longer exists") from None
                return existing, False, ""
            log.info(
                "user registered with telegram",
                extra={"user_id": doc["_id"], "referred": referred_by is not None},
            )
            return doc, True, referral_error
        raise AssertionError("the last candidate has no username, which cannot be taken")
