"""MongoDB persistence of the auth service (its own database only).

Collections and their unique keys:

- ``users``: ``wallet_address``, ``email``, ``phone``, ``username_key``,
  ``telegram_id`` when set (partial indexes: a Telegram account has no
  wallet until it proves one); ``referral_code``. ``referred_by`` (with
  ``created_at``, ``_id``: the invitee lists, newest first) is not unique.
  ``wallet_address`` was unique on every document before Telegram accounts;
  :meth:`AuthStore.ensure_indexes` replaces that index by the partial one.
- ``sessions``: one per refresh-token family, revocable as a whole; ends at
  ``expires_at`` (its absolute lifetime) whatever the refreshes.
- ``refresh_tokens``: ``_id`` = SHA-256 of the token (the token itself is
  never stored); ``used_at`` set once, atomically, on rotation.
- ``wallet_challenges``: ``_id`` = SHA-256 of an issued Sign-In with Ethereum
  message; ``used_at`` set once, atomically.
- the OTP collections of :mod:`services.auth.otp_store`.

Nothing but ``users`` is a record of truth: every other collection carries
an ``expires_at`` date with a TTL index (``expireAfterSeconds: 0``), so
MongoDB deletes what has expired and none of them grows without bound.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from runtime.stores import IN_CHUNK, find_in
from services.auth.errors import ContactTaken
from services.auth.otp_store import OtpStore

Doc = dict[str, Any]

_TAKEN_FIELDS = {
    "wallet_address": ("wallet", "walletAddress"),
    "email": ("email", "email"),
    "phone": ("phone", "phone"),
    "username_key": ("username", "username"),
    "telegram_id": ("telegram", "initData"),
}

#: Ids per ``$in`` when counting the second level of a large inviter.
_IN_BATCH = IN_CHUNK


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
        self.sessions = self.db["sessions"]
        self.refresh_tokens = self.db["refresh_tokens"]
        self.wallet_challenges = self.db["wallet_challenges"]
        self.otp = OtpStore(self.db)

    #: The collections that expire by their ``expires_at`` (TTL indexes).
    TTL_COLLECTIONS = (
        "otp_challenges",
        "otp_cooldowns",
        "otp_mail_caps",
        "otp_guards",
        "wallet_challenges",
        "sessions",
        "refresh_tokens",
    )

    async def ensure_indexes(self) -> None:
        present = {"$type": "string"}
        await self._drop_total_wallet_index()
        await self.users.create_index("referral_code", unique=True)
        for field in ("wallet_address", "email", "phone", "username_key", "telegram_id"):
            await self.users.create_index(
                field, unique=True, partialFilterExpression={field: present}
            )
        await self.users.create_index(
            [("referred_by", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
        )
        await self.otp.challenges.create_index([("contact", ASCENDING), ("created_at", ASCENDING)])
        await self.refresh_tokens.create_index("family_id")
        await self.sessions.create_index("user_id")
        await self.wallet_challenges.create_index("user_id")
        for name in self.TTL_COLLECTIONS:
            await self.db[name].create_index("expires_at", expireAfterSeconds=0)

    async def _drop_total_wallet_index(self) -> None:
        """Drop the ``wallet_address`` index of before Telegram accounts, which
        was unique on every document (so at most one account without a
        wallet); :meth:`ensure_indexes` makes it again, partial."""
        info = await self.users.index_information()
        old = info.get("wallet_address_1")
        if old is None or "partialFilterExpression" in old:
            return
        # Another replica starting at the same time may have dropped it first.
        with contextlib.suppress(OperationFailure):
            await self.users.drop_index("wallet_address_1")

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
        found = find_in(
            self.users,
            "_id",
            user_ids,
            {"wallet_address": 1, "username": 1, "wallet_verified_at": 1},
        )
        return {doc["_id"]: doc async for doc in found}

    async def update_user(self, user_id: str, changes: Doc, now: datetime) -> Doc | None:
        return await self._update_taken({"_id": user_id}, {**changes, "updated_at": now})

    async def _update_taken(self, query: Doc, changes: Doc) -> Doc | None:
        """``$set`` ``changes`` on the user ``query`` finds; the user after, or
        None. A taken wallet/email/phone/username raises ContactTaken."""
        try:
            return await self.users.find_one_and_update(
                query, {"$set": changes}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError as error:
            taken = _taken(error)
            if taken is None:
                raise
            raise taken from None

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

    # wallet proofs (Sign-In with Ethereum) -------------------------------------

    async def insert_wallet_challenge(self, challenge: Doc) -> None:
        await self.wallet_challenges.insert_one(challenge)

    async def wallet_challenge(self, message_hash: str, user_id: str) -> Doc | None:
        return await self.wallet_challenges.find_one({"_id": message_hash, "user_id": user_id})

    async def use_wallet_challenge(self, message_hash: str, now: datetime) -> bool:
        """Mark an unused, unexpired challenge used; whether this call did."""
        result = await self.wallet_challenges.update_one(
            {"_id": message_hash, "used_at": None, "expires_at": {"$gt": now}},
            {"$set": {"used_at": now}},
        )
        return result.modified_count == 1

    async def mark_wallet_verified(self, user_id: str, wallet: str, now: datetime) -> Doc | None:
        """Set ``wallet_verified_at`` if the user still holds ``wallet``, or
        holds none (a Telegram account: then ``wallet`` becomes its wallet).
        A wallet another account took meanwhile raises ContactTaken."""
        return await self._update_taken(
            {"_id": user_id, "wallet_address": {"$in": [wallet, None]}},
            {"wallet_address": wallet, "wallet_verified_at": now, "updated_at": now},
        )

    # email linking ---------------------------------------------------------------

    async def link_email(self, user_id: str, email: str, now: datetime) -> Doc | None:
        """Set the email of a user that has none; None when it has one (or is
        gone). A taken email raises ContactTaken."""
        return await self._update_taken(
            {"_id": user_id, "email": None}, {"email": email, "updated_at": now}
        )

    # referrals ---------------------------------------------------------------------

    async def inviters_of(self, user_ids: list[str]) -> dict[str, str]:
        """Each known user's inviter (``""`` when none)."""
        found = find_in(self.users, "_id", user_ids, {"referred_by": 1})
        return {doc["_id"]: doc.get("referred_by") or "" async for doc in found}

    async def count_invitees(self, user_id: str) -> int:
        return await self.users.count_documents({"referred_by": user_id})

    async def count_second_level(self, user_id: str) -> int:
        """Accounts invited by ``user_id``'s invitees (batches of ``$in``)."""
        total, batch = 0, []
        async for doc in self.users.find({"referred_by": user_id}, {"_id": 1}):
            batch.append(doc["_id"])
            if len(batch) == _IN_BATCH:
                total += await self.users.count_documents({"referred_by": {"$in": batch}})
                batch = []
        if batch:
            total += await self.users.count_documents({"referred_by": {"$in": batch}})
        return total

    async def invitees(
        self, user_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Doc]:
        """Up to ``limit`` invitees of ``user_id``, newest first, after the
        position ``(created_at, _id)`` of the previous page's last."""
        query: Doc = {"referred_by": user_id}
        if after is not None:
            at, last_id = after
            query["$or"] = [
                {"created_at": {"$lt": at}},
                {"created_at": at, "_id": {"$lt": last_id}},
            ]
        found = (
            self.users.find(query, {"username": 1, "created_at": 1})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [doc async for doc in found]
