"""MongoDB persistence of the wallet service (its own database only).

Collections and their keys:

- ``accounts``: ``_id`` = ``<currency>:<user_id>``; ``available``, ``held``
  (minor units, never negative) and a ``version`` bumped by every change.
- ``entries``: the append-only ledger; ``_id`` = a hash of ``(source,
  source_id)`` (:func:`services.wallet.ledger.entry_id_of`), so an event posts
  once; ``(user_id, created_at, _id)`` serves the history pages. A database
  from before the derived ids keeps its unique ``(source, source_id)`` index
  (:data:`LEGACY_KEY_INDEX`), which keeps guarding its older entries: keys
  are then looked up both ways.
- ``withdrawals``: unique ``(user_id, idempotency_key)``, so a retried
  request finds its withdrawal; ``(user_id, …)`` and ``(state, …)`` pages.
- ``withdrawal_days``: ``_id`` = ``<currency>:<user_id>:<YYYY-MM-DD>``, the
  amount a user has withdrawn that UTC day, changed in the same transaction
  as the hold (so the daily limit holds under concurrency).
- ``deposits``: ``_id`` = ``<chain>:<tx_hash>:<log_index>``; matched or kept
  unmatched for an admin.
- ``deposit_references``: ``_id`` = user id; unique ``reference``.

Writes that move money go through :mod:`services.wallet.ledger` in one
transaction; this module holds the reads and the small single-document writes.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minequest.common.v1 import common_pb2
from runtime.pages import page_size
from runtime.stores import find_in
from services.wallet import pages
from services.wallet.ledger import (
    TIME_LIMIT_SECONDS,
    Session,
    account_id,
    entry_id_of,
    in_transaction,
)

T = TypeVar("T")
Doc = dict[str, Any]

REFERENCE_PREFIX = "MQ"
#: The unique index of databases whose entries had random ids (before 2026-12).
LEGACY_KEY_INDEX = "source_1_source_id_1"


def new_reference() -> str:
    """``MQ`` and 16 base32 characters (80 random bits): unguessable enough
    that nobody finds another user's reference by trying."""
    return REFERENCE_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode()


class WalletStore:
    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[database]
        self.accounts: AsyncCollection[Doc] = self.db["accounts"]
        self.entries: AsyncCollection[Doc] = self.db["entries"]
        self.withdrawals: AsyncCollection[Doc] = self.db["withdrawals"]
        self.withdrawal_days: AsyncCollection[Doc] = self.db["withdrawal_days"]
        self.deposits: AsyncCollection[Doc] = self.db["deposits"]
        self.references: AsyncCollection[Doc] = self.db["deposit_references"]
        #: Whether entries may also have random ids (:data:`LEGACY_KEY_INDEX`).
        self.legacy_entries = True

    async def ensure_indexes(self) -> None:
        newest = [("created_at", DESCENDING), ("_id", DESCENDING)]
        self.legacy_entries = LEGACY_KEY_INDEX in await self.entries.index_information()
        await self.entries.create_index([("user_id", ASCENDING), *newest])
        await self.withdrawals.create_index(
            [("user_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True
        )
        await self.withdrawals.create_index([("user_id", ASCENDING), *newest])
        await self.withdrawals.create_index([("state", ASCENDING), *newest])
        await self.deposits.create_index([("matched", ASCENDING), *newest])
        await self.references.create_index("reference", unique=True)
        # Daily withdrawal totals are only needed on their day (kept two).
        await self.withdrawal_days.create_index("expires_at", expireAfterSeconds=0)

    async def transaction(
        self, callback: Callable[[Session], Awaitable[T]], time_limit: float = TIME_LIMIT_SECONDS
    ) -> T:
        return await in_transaction(self.client, callback, time_limit=time_limit)

    # balances and history --------------------------------------------------

    async def balances(self, user_id: str, currencies: Iterable[str]) -> dict[str, Doc]:
        ids = [account_id(user_id, code) for code in currencies]
        found = self.accounts.find({"_id": {"$in": ids}})
        return {doc["currency"]: doc async for doc in found}

    async def page(
        self, collection: AsyncCollection[Doc], query: Doc, page: common_pb2.PageRequest
    ) -> tuple[list[Doc], common_pb2.PageResponse]:
        """One page of ``query``, newest first."""
        size = page_size(page)
        cursor = (
            collection.find(pages.page_filter(query, page)).sort(pages.NEWEST_FIRST).limit(size + 1)
        )
        return pages.split_page(await cursor.to_list(), size)

    async def entry(self, key: tuple[str, str]) -> Doc | None:
        """The entry posted for ``(source, source_id)``, if any."""
        found = await self.entries.find_one({"_id": entry_id_of(*key)})
        if found is None and self.legacy_entries:
            found = await self.entries.find_one({"source": key[0], "source_id": key[1]})
        return found

    async def existing_entries(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """``{(source, source_id): entry_id}`` of the keys already posted."""
        by_id = {entry_id_of(*key): key for key in keys}
        found: dict[tuple[str, str], str] = {
            by_id[doc["_id"]]: doc["_id"]
            async for doc in find_in(self.entries, "_id", by_id, {"_id": 1})
        }
        if not self.legacy_entries:
            return found
        by_source: dict[str, list[str]] = {}
        for source, source_id in by_id.values():
            if (source, source_id) not in found:
                by_source.setdefault(source, []).append(source_id)
        for source, ids in by_source.items():  # one source per query: no $or
            async for doc in find_in(
                self.entries, "source_id", ids, {"source_id": 1}, where={"source": source}
            ):
                found[(source, doc["source_id"])] = doc["_id"]
        return found

    # withdrawals --------------------------------------------------------------

    async def withdrawal(self, withdrawal_id: str, user_id: str | None = None) -> Doc | None:
        query: Doc = {"_id": withdrawal_id}
        if user_id is not None:
            query["user_id"] = user_id
        return await self.withdrawals.find_one(query)

    async def withdrawal_by_key(self, user_id: str, key: str) -> Doc | None:
        return await self.withdrawals.find_one({"user_id": user_id, "idempotency_key": key})

    async def pending_by_currency(self) -> dict[str, int]:
        """How many withdrawals wait for a decision, per currency."""
        cursor = await self.withdrawals.aggregate(
            [{"$match": {"state": "pending"}}, {"$group": {"_id": "$currency", "n": {"$sum": 1}}}]
        )
        return {doc["_id"]: int(doc["n"]) async for doc in cursor}

    # deposits -----------------------------------------------------------------

    async def deposit(self, deposit_id: str) -> Doc | None:
        return await self.deposits.find_one({"_id": deposit_id})

    async def user_of_reference(self, reference: str) -> str | None:
        doc = await self.references.find_one({"reference": reference})
        return None if doc is None else str(doc["_id"])

    async def reference_of(self, user_id: str, now: datetime) -> str:
        """The user's deposit reference, created on first use, then stable."""
        for _ in range(5):
            doc = await self.references.find_one({"_id": user_id})
            if doc is not None:
                return str(doc["reference"])
            try:
                reference = new_reference()
                await self.references.insert_one(
                    {"_id": user_id, "reference": reference, "created_at": now}
                )
                return reference
            except DuplicateKeyError:
                continue  # a concurrent first request won, or (rarely) a taken reference
        raise RuntimeError("could not create a deposit reference")
