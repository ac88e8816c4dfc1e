"""MongoDB persistence of OTP logins: challenges, cooldowns, caps and guards.

Every change is one atomic update (or a compare-and-set on a version), so
concurrent requests can neither send two codes nor slip past a lock:

- ``otp_challenges``: one per code sent; attempts counted atomically; a new
  challenge retires (``superseded_at``) the contact's older pending ones.
  ``user_id`` is None for a contact without an account: such a challenge
  can never verify.
- ``otp_cooldowns``: ``_id`` = ``<contact>|<requester>`` (the client IP the
  gateway saw; ``""`` for internal callers): the resend cooldown is per
  requester, so nobody can hold it for the owner.
- ``otp_mail_caps``: ``_id`` = contact; mails sent in the current hour (a
  window that starts at its first mail), against mail bombing.
- ``otp_guards``: ``_id`` = contact; wrong short codes in the current window
  (see :mod:`services.auth.guard`).

Each document's ``expires_at`` is when it stops mattering (TTL-indexed).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from runtime.timestamps import aware
from services.auth import guard
from services.auth.guard import GuardPolicy, GuardState

Doc = dict[str, Any]

#: Compare-and-set rounds before a contended guard refuses (for a second).
_GUARD_ROUNDS = 8


def _wait(until: datetime, now: datetime) -> float:
    return max(1.0, (aware(until) - now).total_seconds())


class OtpStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.challenges = db["otp_challenges"]
        self.cooldowns = db["otp_cooldowns"]
        self.mail_caps = db["otp_mail_caps"]
        self.guards = db["otp_guards"]

    # cooldowns and the hourly cap ------------------------------------------------

    async def claim_cooldown(
        self, contact: str, requester: str, now: datetime, seconds: int
    ) -> float | None:
        """Reserve this requester's right to send a code; None if granted, else
        seconds to wait."""
        if seconds <= 0:
            return None
        key = f"{contact}|{requester}"
        try:
            await self.cooldowns.update_one(
                {"_id": key, "expires_at": {"$lte": now}},
                {"$set": {"expires_at": now + timedelta(seconds=seconds)}},
                upsert=True,
            )
            return None
        except DuplicateKeyError:
            current = await self.cooldowns.find_one({"_id": key})
            return float(seconds) if current is None else _wait(current["expires_at"], now)

    async def release_cooldown(self, contact: str, requester: str) -> None:
        await self.cooldowns.delete_one({"_id": f"{contact}|{requester}"})

    async def count_mail(self, contact: str, now: datetime, per_hour: int) -> float | None:
        """Count one mail in the contact's hour; None if under the cap, else
        seconds until the hour ends."""
        if per_hour <= 0:
            return None
        for _ in range(3):
            counted = await self.mail_caps.find_one_and_update(
                {"_id": contact, "expires_at": {"$gt": now}, "count": {"$lt": per_hour}},
                {"$inc": {"count": 1}},
            )
            if counted is not None:
                return None
            try:
                await self.mail_caps.update_one(
                    {"_id": contact, "expires_at": {"$lte": now}},
                    {"$set": {"count": 1, "expires_at": now + timedelta(hours=1)}},
                    upsert=True,
                )
                return None
            except DuplicateKeyError:
                current = await self.mail_caps.find_one({"_id": contact})
                if (
                    current is not None
                    and aware(current["expires_at"]) > now
                    and current["count"] >= per_hour
                ):
                    return _wait(current["expires_at"], now)
        return 1.0

    # challenges ----------------------------------------------------------------

    async def insert_challenge(self, challenge: Doc) -> None:
        """Insert ``challenge`` and retire the contact's older pending ones."""
        await self.challenges.insert_one(challenge)
        await self.challenges.update_many(
            {
                "contact": challenge["contact"],
                "consumed": False,
                "superseded_at": None,
                "created_at": {"$lt": challenge["created_at"]},
                "_id": {"$ne": challenge["_id"]},
            },
            {"$set": {"superseded_at": challenge["created_at"]}},
        )

    async def challenge(self, challenge_id: str) -> Doc | None:
        return await self.challenges.find_one({"_id": challenge_id})

    async def count_attempt(self, challenge_id: str, max_attempts: int) -> Doc | None:
        """Atomically count one attempt; None when none are left or it is done."""
        return await self.challenges.find_one_and_update(
            {
                "_id": challenge_id,
                "consumed": False,
                "superseded_at": None,
                "attempts": {"$lt": max_attempts},
            },
            {"$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def consume_challenge(self, challenge_id: str, now: datetime) -> bool:
        result = await self.challenges.update_one(
            {"_id": challenge_id, "consumed": False, "superseded_at": None},
            {"$set": {"consumed": True, "consumed_at": now}},
        )
        return result.modified_count == 1

    # the guess guard -------------------------------------------------------------

    async def charge_guess(self, contact: str, now: datetime, policy: GuardPolicy) -> float | None:
        """Charge one short-code check to the contact's guard, before the code is
        compared. None when charged; seconds to wait when short codes are
        locked (then nothing is charged)."""
        for _ in range(_GUARD_ROUNDS):
            doc = await self.guards.find_one({"_id": contact})
            state = None
            if doc is not None:
                locked = doc.get("locked_until")
                state = GuardState(
                    window_start=aware(doc["window_start"]),
                    failures=doc["failures"],
                    locked_until=aware(locked) if locked is not None else None,
                )
            wait = guard.refusal(state, policy, now)
            if wait is not None:
                return wait
            new = guard.charged(state, policy, now)
            fields = {
                "window_start": new.window_start,
                "failures": new.failures,
                "locked_until": new.locked_until,
                "expires_at": new.window_end(policy),
            }
            if doc is None:
                try:
                    await self.guards.insert_one({"_id": contact, "version": 1, **fields})
                    return None
                except DuplicateKeyError:
                    continue
            result = await self.guards.update_one(
                {"_id": contact, "version": doc["version"]},
                {"$set": fields, "$inc": {"version": 1}},
            )
            if result.modified_count == 1:
                return None
        return 1.0

    async def reset_guard(self, contact: str) -> None:
        await self.guards.delete_one({"_id": contact})
