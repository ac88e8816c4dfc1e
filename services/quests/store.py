"""MongoDB persistence of the quests service (its own database only).

Collections and their keys:

- ``quests``: ``_id`` = the quest id; the catalogue, archived quests included
  (they stay in users' history).
- ``completions``: one per (user, quest, period), **unique on
  ``(user_id, quest_id, period)``** — the last word on "exactly once".
  ``period`` is ``once`` or the day of a daily quest. ``credit_pending`` is
  true until ``Wallet.Credit`` has confirmed the coin reward (partial index:
  the sweeper's queue). ``(user_id, completed_at)`` serves the history.
- ``daily_claims``: ``_id`` = ``<user_id>:<day>`` — one claim per user and
  day by construction, the winner of concurrent claims is whoever inserts it
  (services/quests/daily.py); ``streak``, ``coin_reward``, ``credit_pending``
  (partial index, as for completions), ``claimed_at``.
- ``progress``: ``_id`` = user id; ``xp``, ``quests_completed``, ``done``
  (quest id -> ``{period, at, completion_id}`` of its latest completion),
  ``reached_at`` (when ``xp`` was reached: the leaderboard's tie-break),
  ``lb_synced`` (false until the leaderboard has the new score) and a
  ``version`` bumped by every change (optimistic concurrency).

A completion inserts its document and updates the progress (conditional on
the version read) in one multi-document transaction: the XP is granted
exactly when the completion exists.

Completions and daily claims both pay coins through ``Wallet.Credit``; each
collection is described by a :class:`Payouts` (its wallet source, the field
the sweeper ages documents by), so one credit mechanism
(services/quests/credits.py) serves both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

T = TypeVar("T")
Doc = dict[str, Any]
Session = AsyncClientSession

READ_CONCERN = ReadConcern("snapshot")
WRITE_CONCERN = WriteConcern("majority")
#: Commits whose outcome is unknown are retried this many times.
COMMIT_ATTEMPTS = 3
#: Most completions listed in one interaction lookup.
MAX_HISTORY = 500
#: Wallet.Credit sources: a quest's coin reward, a daily reward.
COMPLETION_SOURCE = "quests.completion"
DAILY_SOURCE = "rewards.daily"


@dataclass(frozen=True, slots=True)
class Payouts:
    """A collection whose documents pay coins through ``Wallet.Credit``: each has
    ``_id`` (the wallet's source id), ``user_id``, ``coin_reward`` (``currency``,
    ``units``, ``precision``) and ``credit_pending`` (true until the wallet
    confirmed it)."""

    source: str
    collection: AsyncCollection[Doc]
    #: When a document was made: the sweeper leaves younger ones to their request.
    at: str
    #: The ledger entry's memo.
    memo: Callable[[Doc], str]


class QuestsStore:
    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[database]
        self.quests: AsyncCollection[Doc] = self.db["quests"]
        self.completions: AsyncCollection[Doc] = self.db["completions"]
        self.progress: AsyncCollection[Doc] = self.db["progress"]
        self.daily_claims: AsyncCollection[Doc] = self.db["daily_claims"]
        self.completion_payouts = Payouts(
            COMPLETION_SOURCE, self.completions, "completed_at", lambda d: f"quest {d['quest_id']}"
        )
        self.daily_payouts = Payouts(
            DAILY_SOURCE,
            self.daily_claims,
            "claimed_at",
            lambda d: f"daily reward {d['day']} (day {d['streak']} in a row)",
        )
        self.payouts = (self.completion_payouts, self.daily_payouts)

    async def ensure_indexes(self) -> None:
        await self.completions.create_index(
            [("user_id", ASCENDING), ("quest_id", ASCENDING), ("period", ASCENDING)], unique=True
        )
        await self.completions.create_index([("user_id", ASCENDING), ("completed_at", DESCENDING)])
        await self.completions.create_index(
            [("credit_pending", ASCENDING), ("completed_at", ASCENDING)],
            partialFilterExpression={"credit_pending": True},
        )
        await self.progress.create_index(
            [("lb_synced", ASCENDING), ("updated_at", ASCENDING)],
            partialFilterExpression={"lb_synced": False},
        )
        await self.progress.create_index([("xp", DESCENDING)])
        await self.daily_claims.create_index(
            [("credit_pending", ASCENDING), ("claimed_at", ASCENDING)],
            partialFilterExpression={"credit_pending": True},
        )

    async def transaction(self, callback: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``callback`` once in a multi-document transaction (the caller retries)."""
        async with self.client.start_session() as session:
            await session.start_transaction(READ_CONCERN, WRITE_CONCERN)
            try:
                result = await callback(session)
            except BaseException:
                if session.in_transaction:
                    await session.abort_transaction()
                raise
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    await session.commit_transaction()
                    return result
                except PyMongoError as error:
                    unknown = error.has_error_label("UnknownTransactionCommitResult")
                    if not unknown or attempt == COMMIT_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

    # catalogue -----------------------------------------------------------------

    async def quest(self, quest_id: str) -> Doc | None:
        return await self.quests.find_one({"_id": quest_id})

    async def quests_by_ids(self, ids: list[str]) -> dict[str, Doc]:
        found = self.quests.find({"_id": {"$in": ids}})
        return {doc["_id"]: doc async for doc in found}

    async def catalogue(self, after: str | None, limit: int) -> list[Doc]:
        """Quests that are not archived, by id, after ``after``."""
        query: Doc = {"archived": {"$ne": True}}
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.quests.find(query).sort("_id", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def prerequisite_graph(self) -> dict[str, list[str]]:
        """Every quest's prerequisites (for the cycle check of an admin write)."""
        found = self.quests.find({}, {"prerequisite_ids": 1})
        return {doc["_id"]: list(doc.get("prerequisite_ids") or []) async for doc in found}

    # completions and progress ---------------------------------------------------

    async def user_progress(self, user_id: str) -> Doc | None:
        return await self.progress.find_one({"_id": user_id})

    async def completion_of(self, user_id: str, quest_id: str, period: str) -> Doc | None:
        return await self.completions.find_one(
            {"user_id": user_id, "quest_id": quest_id, "period": period}
        )

    async def has_completed(self, user_id: str, quest_id: str) -> bool:
        return (
            await self.completions.find_one({"user_id": user_id, "quest_id": quest_id}) is not None
        )

    async def history(self, user_id: str, limit: int = MAX_HISTORY) -> list[Doc]:
        """The user's completions, newest first."""
        cursor = (
            self.completions.find({"user_id": user_id})
            .sort([("completed_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return await cursor.to_list()

    # coin rewards (completions and daily claims) -----------------------------------

    async def pending_credits(
        self, payouts: Payouts, older_than: datetime, limit: int
    ) -> list[Doc]:
        cursor = (
            payouts.collection.find({"credit_pending": True, payouts.at: {"$lte": older_than}})
            .sort(payouts.at, ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def count_pending_credits(self) -> int:
        """Coin rewards the wallet has not confirmed yet, of every kind."""
        total = 0
        for payouts in self.payouts:
            total += await payouts.collection.count_documents({"credit_pending": True})
        return total

    async def confirm_credit(
        self, payouts: Payouts, doc_id: str, entry_id: str, now: datetime
    ) -> None:
        await payouts.collection.update_one(
            {"_id": doc_id, "credit_pending": True},
            {"$set": {"credit_pending": False, "credit_entry_id": entry_id, "credited_at": now}},
        )

    async def note_credit_failure(self, payouts: Payouts, doc_id: str, problem: str) -> None:
        await payouts.collection.update_one(
            {"_id": doc_id},
            {"$set": {"credit_error": problem[:500]}, "$inc": {"credit_attempts": 1}},
        )

    async def unsynced_progress(self, older_than: datetime, limit: int) -> list[Doc]:
        cursor = self.progress.find(
            {"lb_synced": False, "updated_at": {"$lte": older_than}},
            {"xp": 1, "reached_at": 1, "version": 1},
        ).limit(limit)
        return await cursor.to_list()

    async def mark_synced(self, user_id: str, version: int) -> None:
        """The leaderboard has this version's score (a newer version stays unsynced)."""
        await self.progress.update_one(
            {"_id": user_id, "version": version}, {"$set": {"lb_synced": True}}
        )

    async def scores(self, batch_size: int = 1000) -> AsyncIterator[Doc]:
        """Every user with XP: ``_id``, ``xp``, ``reached_at`` (the leaderboard's source)."""
        cursor = self.progress.find(
            {"xp": {"$gt": 0}}, {"xp": 1, "reached_at": 1}, batch_size=batch_size
        )
        async for doc in cursor:
            yield doc
