"""The OTP login: RequestOtp and VerifyOtp.

**No account oracle.** A request for a contact without an account is
answered exactly like one with an account: the same status and fields, the
same cooldown and hourly cap, and a stored challenge, which has no user and
so can never verify. The mail is handed to the background sender
(:mod:`services.auth.delivery`), so a known contact's answer does not wait
for SMTP either. (Registration does say that an email is taken: a unique
account per email needs that.)

**Bounded guessing.** A 6-digit code is charged to the contact's guess guard
(:mod:`services.auth.guard`) before it is compared; while the guard is
locked the code is refused unchecked (``otp_locked``). The long login key in
the same mail is never guarded and ignores the per-challenge attempt limit:
it cannot be guessed, so an attacker who locks short codes cannot lock the
owner out: the latest mail's key (or link) always works. A new challenge
retires the contact's older ones.

**One machinery, two purposes.** A challenge's ``purpose`` is ``login``
(absent on older ones) or ``link_email`` (:mod:`services.auth.email_link`,
an account proving an email before it is set); each flow accepts only its
own, so a code mailed to link an email never logs anyone in.

**Cooldowns nobody else can hold.** The resend cooldown is per (contact,
requester), the requester being the client IP the gateway passes; the
per-contact hourly cap bounds mail bombing from many addresses.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime, timedelta

from minequest.auth.v1 import auth_pb2
from runtime.clients import client_key, ip_address
from runtime.errors import InvalidArgument
from runtime.log import Throttle
from runtime.timestamps import aware, to_timestamp
from services.auth import otp, validation
from services.auth.delivery import BackgroundDelivery
from services.auth.errors import (
    ChallengeNotFound,
    ChallengeSuperseded,
    DeliveryUnavailable,
    InvalidCode,
    InvalidOtpRequest,
    OtpCooldown,
    OtpExpired,
    OtpLocked,
    TooManyAttempts,
    TooManyCodes,
    UserNotFound,
)
from services.auth.mailer import CodeMail
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore, Doc
from services.auth.tokens import Sessions
from services.auth.users import Clock, user_message

log = logging.getLogger(__name__)
_LOCKED_LOG = Throttle(10.0)

LOGIN = "login"
LINK_EMAIL = "link_email"


def requester(client_ip: str) -> str:
    """Who asks, for the resend cooldown: the client counted as the gateway's
    limits count it (an IPv6 client by its /64, :mod:`runtime.clients`);
    ``""`` when the caller gave no address."""
    if not client_ip:
        return ""
    if ip_address(client_ip) is None:
        raise InvalidArgument("client_ip is not an IP address", field="client_ip")
    return client_key(client_ip)


class OtpLogin:
    def __init__(
        self,
        settings: AuthSettings,
        store: AuthStore,
        sessions: Sessions,
        delivery: BackgroundDelivery,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.otp = store.otp
        self.sessions = sessions
        self.delivery = delivery
        self.now = clock

    async def request(self, request: auth_pb2.RequestOtpRequest) -> auth_pb2.RequestOtpResponse:
        if bool(request.email) == bool(request.phone):
            raise InvalidOtpRequest("give exactly one of email or phone", field="email")
        if request.email:
            channel, field, contact = "email", "email", validation.email(request.email)
        else:
            channel, field, contact = "sms", "phone", validation.phone(request.phone)
        user = await self.store.user_by(field, contact)
        return await self.issue(
            channel,
            field,
            contact,
            user["_id"] if user is not None else None,
            request.client_ip,
            purpose=LOGIN,
        )

    async def issue(
        self,
        channel: str,
        field: str,
        contact: str,
        user_id: str | None,
        client_ip: str,
        *,
        purpose: str,
    ) -> auth_pb2.RequestOtpResponse:
        """Store a challenge for ``contact`` and mail its code (none, a decoy,
        when ``user_id`` is None), within the cooldown and the hourly cap."""
        settings = self.settings
        deliverable = self.delivery.can_send(channel)
        if not deliverable and not settings.dev_otp_fallback:
            raise DeliveryUnavailable(f"{channel} delivery is not configured")
        # Each purpose has its own resend cooldown (an email just linked may
        # log in at once); the hourly cap of mails is the contact's, whatever for.
        who = requester(client_ip) if purpose == LOGIN else f"{purpose}|{requester(client_ip)}"
        now = self.now()
        wait = await self.otp.claim_cooldown(
            contact, who, now, settings.otp_resend_cooldown_seconds
        )
        if wait is not None:
            raise OtpCooldown(f"a code was just sent; try again in {int(wait)} s", retry_after=wait)
        capped = await self.otp.count_mail(contact, now, settings.otp_mails_per_hour)
        if capped is not None:
            await self.otp.release_cooldown(contact, who)
            raise TooManyCodes(
                f"too many codes were sent to this {field}; try again in {math.ceil(capped)} s",
                retry_after=capped,
            )
        code, key, salt = otp.new_code(), otp.new_key(), otp.new_salt()
        expires_at = now + timedelta(seconds=settings.otp_ttl_seconds)
        challenge_id = uuid.uuid4().hex
        await self.otp.insert_challenge(
            {
                "_id": challenge_id,
                "user_id": user_id,
                "purpose": purpose,
                "channel": channel,
                "contact": contact,
                "code_hash": otp.hash_code(code, salt),
                "key_hash": otp.hash_code(key, salt),
                "salt": salt,
                "attempts": 0,
                "consumed": False,
                "superseded_at": None,
                "created_at": now,
                "expires_at": expires_at,
            }
        )
        if deliverable:

            async def release() -> None:
                await self.otp.release_cooldown(contact, who)

            if user_id is None:
                self.delivery.submit_decoy(release)
            else:
                link = self._link(challenge_id, key) if purpose == LOGIN else None
                mail = CodeMail(
                    channel, contact, code, key, link, settings.otp_ttl_seconds, purpose
                )
                self.delivery.submit(mail, release)
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

    def _link(self, challenge_id: str, key: str) -> str | None:
        template = self.settings.login_link_url
        if template is None:
            return None
        return template.replace("{challengeId}", challenge_id).replace("{key}", key)

    async def pending(self, challenge_id: str, purpose: str) -> Doc:
        """The pending challenge ``challenge_id`` of ``purpose``, or the refusal."""
        challenge = await self.otp.challenge(challenge_id) if challenge_id else None
        if challenge is None or challenge["consumed"] or challenge.get("purpose", LOGIN) != purpose:
            raise ChallengeNotFound("no such pending challenge", field="challengeId")
        if challenge.get("superseded_at") is not None:
            raise ChallengeSuperseded(
                "a newer code was sent; use the latest mail", field="challengeId"
            )
        return challenge

    async def redeem(self, challenge: Doc, code: str, client_ip: str) -> None:
        """Check ``code`` (a short code or the mail's key) and consume the
        challenge, once; raises the refusal."""
        now = self.now()
        if otp.well_formed(code):
            await self._check_code(challenge, code, client_ip, now)
        else:
            self._check_key(challenge, code, now)
        if not await self.otp.consume_challenge(challenge["_id"], now):
            raise ChallengeNotFound("no such pending challenge", field="challengeId")
        await self.otp.reset_guard(challenge["contact"])

    async def verify(self, request: auth_pb2.VerifyOtpRequest) -> auth_pb2.VerifyOtpResponse:
        challenge = await self.pending(request.challenge_id, LOGIN)
        await self.redeem(challenge, request.code, request.client_ip)
        user = await self.store.user(challenge["user_id"])
        if user is None:
            raise UserNotFound("the account no longer exists")
        session_id, tokens = await self.sessions.start(user)
        log.info("login", extra={"user_id": user["_id"], "session_id": session_id})
        return auth_pb2.VerifyOtpResponse(tokens=tokens, user=user_message(user))

    def _check_key(self, challenge: Doc, key: str, now: datetime) -> None:
        """The mail's login key: no attempt limit, no guard (it cannot be guessed)."""
        if aware(challenge["expires_at"]) <= now:
            raise OtpExpired("the code has expired; request a new one")
        expected = challenge.get("key_hash")
        matches = expected is not None and otp.code_matches(key, challenge["salt"], expected)
        if not matches or challenge["user_id"] is None:
            raise InvalidCode("wrong code", field="code")

    async def _check_code(self, challenge: Doc, code: str, client_ip: str, now: datetime) -> None:
        max_attempts = self.settings.otp_max_attempts
        if challenge["attempts"] >= max_attempts:
            raise TooManyAttempts("too many wrong codes; request a new one")
        if aware(challenge["expires_at"]) <= now:
            raise OtpExpired("the code has expired; request a new one")
        locked = await self.otp.charge_guess(challenge["contact"], now, self.settings.otp_guard)
        if locked is not None:
            # A guessing attack repeats this at the attacker's pace: one line
            # every few seconds, with the count held back.
            held = _LOCKED_LOG.allow("locked")
            if held is not None:
                log.warning(
                    "otp short codes locked",
                    extra={"challenge_id": challenge["_id"], "client_ip": client_ip, "held": held},
                )
            raise OtpLocked(
                f"too many wrong codes: codes are locked for {math.ceil(locked)} s; "
                "the login key or link in the latest mail still works",
                retry_after=locked,
            )
        counted = await self.otp.count_attempt(challenge["_id"], max_attempts)
        if counted is None:
            raise TooManyAttempts("too many wrong codes; request a new one")
        matches = otp.code_matches(code, counted["salt"], counted["code_hash"])
        if not matches or counted["user_id"] is None:
            left = max_attempts - counted["attempts"]
            raise InvalidCode(
                f"wrong code; {left} attempt(s) left",
                field="code",
                metadata={"attempts_left": str(left)},
            )
