"""MongoDB persistence of the auth service (its own database only).

Collections and their unique keys:

- ``users``: ``wallet_address``; ``email``, ``phone``, ``username_key`` when set
  (partial indexes); ``referral_code``.
- ``otp_challenges``: one per code sent; attempts counted atomically.
- ``otp_cooldowns``: ``_id`` = contact; claimed atomically so two concurrent
  requests cannot both send a code.
- ``sessions``: one per refresh-token family, revocable as a whole.
- ``refresh_tokens``: ``_id`` = SHA-256 of the token (the token itself is
  never stored); ``used_at`` set once, atomically, on rotation.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.auth.errors import ContactTaken

Doc = dict[str, Any]

_TAKEN_FIELDS = {
    "wallet_address": ("wallet", "walletAddress"),
    "email": ("email", "email"),
    "phone": ("phone", "phone"),
    "username_key": ("username", "username"),
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _taken(error: DuplicateKeyError) -> ContactTaken | None:
    pattern = (error.details or {}).get("keyPattern") or {}
    for key in pattern:
        if key in _TAKEN_FIELDS:
            name, field = _TAKEN_FIELDS[key]
            return ContactTaken(
                f"{name} is already registered", reason=f"{name}_taken", field=field
            )
    return None


class AuthStore:
    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.db: AsyncDatabase[Doc] = client[database]
        self.users = self.db["users"]
        self.challenges = self.db["otp_challenges"]
        self.cooldowns = self.db["otp_cooldowns"]
        self.sessions = self.db["sessions"]
        self.refresh_tokens = self.db["refresh_tokens"]

    async def ensure_indexes(self) -> None:
        present = {"$type": "string"}
        await self.users.create_index("wallet_address", unique=True)
        await self.users.create_index("referral_code", unique=True)
        for field in ("email", "phone", "username_key"):
            await self.users.create_index(
                field, unique=True, partialFilterExpression={field: present}
            )
        await self.challenges.create_index([("contact", ASCENDING), ("created_at", ASCENDING)])
        await self.refresh_tokens.create_index("family_id")
        await self.sessions.create_index("user_id")

    # users -----------------------------------------------------------------

    async def insert_user(self, user: Doc) -> None:
        """Insert; a taken wallet/email/phone/username raises ContactTaken.
        A taken referral code (a random collision) re-raises for a retry."""
        try:
            await self.users.insert_one(user)
        except DuplicateKeyError as error:
            taken = _taken(error)
            if taken is None:
                raise
            raise taken from None

    async def user(self, user_id: str) -> Doc | None:
        return await self.users.find_one({"_id": user_id})

    async def user_by(self, field: str, value: str) -> Doc | None:
        return await self.users.find_one({field: value})

    async def users_by_ids(self, user_ids: list[str]) -> dict[str, Doc]:
        """The users among ``user_ids``, by id (unknown ids are left out)."""
        if not user_ids:
            return {}
        found = self.users.find({"_id": {"$in": user_ids}}, {"wallet_address": 1, "username": 1})
        return {doc["_id"]: doc async for doc in found}

    async def update_user(self, user_id: str, changes: Doc, now: datetime) -> Doc | None:
        try:
            return await self.users.find_one_and_update(
                {"_id": user_id},
                {"$set": {**changes, "updated_at": now}},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError as error:
            taken = _taken(error)
            if taken is None:
                raise
            raise taken from None

    # OTP -------------------------------------------------------------------

    async def claim_cooldown(self, contact: str, now: datetime, seconds: int) -> float | None:
        """Reserve the right to send a code; None if granted, else seconds to wait."""
        if seconds <= 0:
            return None
        until = now + timedelta(seconds=seconds)
        try:
            await self.cooldowns.update_one(
                {"_id": contact, "until": {"$lte": now}}, {"$set": {"until": until}}, upsert=True
            )
            return None
        except DuplicateKeyError:
            current = await self.cooldowns.find_one({"_id": contact})
            if current is None:
                return float(seconds)
            until_at: datetime = current["until"]
            return max(1.0, (until_at - now).total_seconds())

    async def release_cooldown(self, contact: str) -> None:
        await self.cooldowns.delete_one({"_id": contact})

    async def insert_challenge(self, challenge: Doc) -> None:
        await self.challenges.insert_one(challenge)

    async def challenge(self, challenge_id: str) -> Doc | None:
        return await self.challenges.find_one({"_id": challenge_id})

    async def count_attempt(self, challenge_id: str, max_attempts: int) -> Doc | None:
        """Atomically count one attempt; None when none are left or it was used."""
        return await self.challenges.find_one_and_update(
            {"_id": challenge_id, "consumed": False, "attempts": {"$lt": max_attempts}},
            {"$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def consume_challenge(self, challenge_id: str, now: datetime) -> bool:
        result = await self.challenges.update_one(
            {"_id": challenge_id, "consumed": False},
            {"$set": {"consumed": True, "consumed_at": now}},
        )
        return result.modified_count == 1

    # sessions and refresh tokens --------------------------------------------

    async def create_session(self, session: Doc) -> None:
        await self.sessions.insert_one(session)

    async def session(self, session_id: str) -> Doc | None:
        return await self.sessions.find_one({"_id": session_id})

    async def revoke_session(
        self, session_id: str, now: datetime, reason: str, user_id: str | None = None
    ) -> bool:
        query: Doc = {"_id": session_id, "revoked_at": None}
        if user_id is not None:
            query["user_id"] = user_id
        result = await self.sessions.update_one(
            query, {"$set": {"revoked_at": now, "revoked_reason": reason}}
        )
        return result.modified_count == 1

    async def insert_refresh_token(self, token: str, record: Doc) -> None:
        await self.refresh_tokens.insert_one({"_id": token_hash(token), **record})

    async def use_refresh_token(self, token: str, now: datetime) -> Doc | None:
        """Mark an unused token used; the record before the change, or None."""
        return await self.refresh_tokens.find_one_and_update(
            {"_id": token_hash(token), "used_at": None},
            {"$set": {"used_at": now}},
            return_document=ReturnDocument.BEFORE,
        )

    async def refresh_token(self, token: str) -> Doc | None:
        return await self.refresh_tokens.find_one({"_id": token_hash(token)})
