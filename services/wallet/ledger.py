"""The ledger's one write path: entries and balances change together or not at all.

Every change of a balance is a :class:`Posting`: one append-only entry in
``entries`` whose ``_id`` is derived from its ``(source, source_id)``
(:func:`entry_id_of`), so a business event can never post twice, plus its
effect on the account document, which holds ``available`` and ``held``:

    kind      available  held
    credit        +x       .
    hold          -x      +x
    release       +x      -x
    debit          .      -x      (settles a hold: an approved withdrawal)
    spend         -x       .      (a purchase inside the product: Wallet.Debit)

:func:`post` inserts the entries and applies one ``$inc`` per account inside
the caller's transaction (accounts that only grow in one bulk write: a
mining batch touches many). A decrease carries its cover in the update's
filter (``available >= x``), so a balance can never go negative: when it
would, nothing matches and the transaction is aborted with
:class:`InsufficientFunds`. :func:`in_transaction` runs a callback in a
MongoDB multi-document transaction and retries the whole callback on
``TransientTransactionError`` (write conflicts) and the commit on
``UnknownTransactionCommitResult``, for a bounded time. A crash at any
point leaves both the entries and the balances, or neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from runtime.stores import find_in
from services.wallet.errors import InsufficientFunds, LedgerBusy, LedgerInvariantBroken

T = TypeVar("T")
Doc = dict[str, Any]
Session = AsyncClientSession


class Kind(enum.StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"
    HOLD = "hold"
    RELEASE = "release"
    SPEND = "spend"


#: (available, held) multipliers of an entry's amount.
EFFECTS: dict[Kind, tuple[int, int]] = {
    Kind.CREDIT: (1, 0),
    Kind.DEBIT: (0, -1),
    Kind.HOLD: (-1, 1),
    Kind.RELEASE: (1, -1),
    Kind.SPEND: (-1, 0),
}


def account_id(user_id: str, currency: str) -> str:
    """An account's ``_id``: ``<currency>:<user_id>`` (codes never hold a colon)."""
    return f"{currency}:{user_id}"


def new_id() -> str:
    return uuid.uuid4().hex


def entry_id_of(source: str, source_id: str) -> str:
    """The ledger entry id of ``(source, source_id)``: 128 bits of its SHA-256.

    The key is the ``_id``, so its one index keeps an event from posting twice;
    a second unique index on ``(source, source_id)`` cost SecantusDB about 60 µs
    of CPU per entry (of 135), on the hottest write the wallet has.
    """
    return hashlib.sha256(f"{source}\0{source_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Posting:
    """One ledger entry to write. ``amount`` is positive minor units."""

    user_id: str
    currency: str
    kind: Kind
    amount: int
    source: str
    source_id: str
    memo: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What makes the entry unique in the ledger: ``(source, source_id)``."""
        return (self.source, self.source_id)

    @property
    def entry_id(self) -> str:
        return entry_id_of(self.source, self.source_id)

    def document(self, now: datetime) -> Doc:
        return {
            "_id": self.entry_id,
            "user_id": self.user_id,
            "currency": self.currency,
            "kind": str(self.kind),
            "amount": self.amount,
            "source": self.source,
            "source_id": self.source_id,
            "memo": self.memo,
            "created_at": now,
        }


def deltas(postings: Sequence[Posting]) -> dict[tuple[str, str], tuple[int, int]]:
    """Net (available, held) change per (user, currency)."""
    net: dict[tuple[str, str], tuple[int, int]] = {}
    for posting in postings:
        if posting.amount <= 0:
            raise ValueError("a posting's amount must be positive")
        available, held = EFFECTS[posting.kind]
        old = net.get((posting.user_id, posting.currency), (0, 0))
        net[(posting.user_id, posting.currency)] = (
            old[0] + available * posting.amount,
            old[1] + held * posting.amount,
        )
    return net


async def post(
    entries: AsyncCollection[Doc],
    accounts: AsyncCollection[Doc],
    postings: Sequence[Posting],
    now: datetime,
    session: Session,
) -> list[Doc]:
    """Write ``postings`` and their balance changes in ``session``'s transaction.

    Returns the entry documents. Raises :class:`InsufficientFunds` when an
    account cannot cover a decrease of ``available`` (the caller's
    transaction is then aborted, so nothing is written).
    """
    documents = [posting.document(now) for posting in postings]
    await entries.insert_many(documents, ordered=True, session=session)
    increases: list[tuple[Doc, Doc]] = []
    for (user_id, currency), (available, held) in sorted(deltas(postings).items()):
        query: Doc = {"_id": account_id(user_id, currency)}
        update: Doc = {
            "$inc": {"available": available, "held": held, "version": 1},
            "$set": {"updated_at": now},
            "$setOnInsert": {"user_id": user_id, "currency": currency, "created_at": now},
        }
        if available >= 0 and held >= 0:
            # Credits to many accounts (a mining batch): one round trip for all.
            increases.append((query, update))
            continue
        if available < 0:
            query["available"] = {"$gte": -available}
        if held < 0:
            query["held"] = {"$gte": -held}
        result = await accounts.update_one(query, update, session=session)
        if result.matched_count == 0:
            if available < 0:
                raise InsufficientFunds(
                    f"the available {currency} balance does not cover this amount",
                    field="amount",
                )
            raise LedgerInvariantBroken(f"held {currency} funds are missing for {user_id}")
    if increases:
        await _increase(accounts, increases, session)
    return documents


async def _increase(
    accounts: AsyncCollection[Doc], increases: list[tuple[Doc, Doc]], session: Session
) -> None:
    """Apply increases to many accounts in one round trip: plain updates first
    (an upsert of an existing document costs SecantusDB twice as much, and
    most credits go to accounts that exist), then upserts for the accounts the
    updates did not find (new ones)."""
    done = await accounts.bulk_write(
        [UpdateOne(query, update) for query, update in increases], ordered=True, session=session
    )
    if done.matched_count == len(increases):
        return
    ids = [query["_id"] for query, _ in increases]
    found = {doc["_id"] async for doc in find_in(accounts, "_id", ids, {"_id": 1}, session=session)}
    new = [UpdateOne(q, u, upsert=True) for q, u in increases if q["_id"] not in found]
    created = await accounts.bulk_write(new, ordered=True, session=session)
    if done.matched_count + created.upserted_count + created.matched_count != len(increases):
        raise LedgerInvariantBroken("an account update was lost")


#: Transactions read a snapshot and commit with a majority write concern
#: (a real replica set acknowledges only what survives a failover).
READ_CONCERN = ReadConcern("snapshot")
WRITE_CONCERN = WriteConcern("majority")
#: How long one transaction may keep retrying write conflicts. Conflicts
#: between live writers clear in milliseconds; one that lasts is a crashed
#: writer's transaction, which the server aborts only after
#: ``transactionLifetimeLimitSeconds`` (60 s), so give up and let the caller retry.
TIME_LIMIT_SECONDS = 5.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.005, 0.5


async def in_transaction(
    client: AsyncMongoClient[Doc],
    callback: Callable[[Session], Awaitable[T]],
    *,
    time_limit: float = TIME_LIMIT_SECONDS,
) -> T:
    """Run ``callback(session)`` in one multi-document transaction.

    The whole callback is retried (with jittered backoff) on a
    ``TransientTransactionError``, the commit alone on an
    ``UnknownTransactionCommitResult``; any other error aborts the
    transaction and propagates. Past ``time_limit`` seconds of retrying,
    :class:`LedgerBusy` (the outcome of an unknown commit is then settled by
    the caller's retry, which every unique key makes safe).
    """
    deadline = time.monotonic() + time_limit
    attempt = 0
    async with client.start_session() as session:
        while True:
            attempt += 1
            await session.start_transaction(READ_CONCERN, WRITE_CONCERN)
            try:
                result = await callback(session)
            except BaseException as error:
                if session.in_transaction:
                    await session.abort_transaction()
                if not _transient(error):
                    raise
                await _backoff(attempt, deadline, error)
                continue
            while True:
                try:
                    await session.commit_transaction()
                    return result
                except PyMongoError as error:
                    if error.has_error_label("UnknownTransactionCommitResult"):
                        await _backoff(attempt, deadline, error)
                        continue
                    if not error.has_error_label("TransientTransactionError"):
                        raise
                    await _backoff(attempt, deadline, error)
                    break  # run the whole transaction again


def _transient(error: BaseException) -> bool:
    return isinstance(error, PyMongoError) and error.has_error_label("TransientTransactionError")


async def _backoff(attempt: int, deadline: float, error: BaseException) -> None:
    delay = random.uniform(0, min(_BACKOFF_MAX, _BACKOFF_FIRST * 2**attempt))  # noqa: S311
    if time.monotonic() + delay > deadline:
        raise LedgerBusy("the ledger is busy; retry shortly", retry_after=1) from error
    await asyncio.sleep(delay)


class KeyedLock:
    """One :class:`asyncio.Lock` per key, dropped when nobody holds or awaits it.

    Writers in one process that would conflict on the same account take
    turns here instead of aborting each other's transactions; writers in
    other processes are still settled by the database and the retries.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
