"""Buying boosts with mined coins: the debit and the level change together or not at all.

A purchase is a document in the mining database (``boost_purchases``,
``_id`` = ``<user>:<Idempotency-Key>``), driven through these states::

    pending ──Wallet.Debit ok──▶ applied ──levels mirrored to Redis──▶ (settled)
       └────insufficient_funds──▶ refused (settled; nothing debited, nothing bought)

1. :meth:`Purchases.open` inserts it ``pending`` with its level and price
   fixed. Its ``claim`` (``<user>:<boost>:<level>``, unique) lets only one
   purchase of a level exist: a concurrent second one is
   :class:`PurchaseInFlight` (or reads the new level and buys the next one).
   A refused purchase gives its claim up, so the level can be bought later.
2. :meth:`Purchases.debit` calls ``Wallet.Debit`` (source ``mining.boost``,
   source id = the purchase id): idempotent, so repeating it after a crash
   debits once and answers the first debit.
3. :meth:`Purchases.apply` marks it ``applied`` and raises the user's level
   in ``boost_levels`` (``$max``, version + 1) in ONE MongoDB transaction.
4. :meth:`Purchases.mirror` writes the levels to the user's Redis hash
   (:func:`services.mining.clicks.boosts_key`), which the click script reads,
   then marks the purchase settled.

A crash between any two steps leaves a purchase unsettled; a retry with the
same key, or the sweeper (:meth:`Purchases.run_sweeper`, in the mining
service process) once it is ``MINING_BOOST_SWEEP_AGE_SECONDS`` old, drives it
on from where it stopped. MongoDB is the record of truth for levels; the Redis
hash is rebuilt from it at start, on ``ListBoosts`` and by every mirror (a
version check keeps an older write from putting older levels back).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.errors import DomainError, decode_rpc_error
from runtime.money import to_money
from runtime.redis_pipe import PipelinedRedis
from runtime.stores import STORE_OUTAGES
from services.mining import metrics
from services.mining.boosts import Boost, Catalogue
from services.mining.clicks import BOOST_FIELDS, boosts_key
from services.mining.errors import (
    BoostLevelChanged,
    BoostMaxLevel,
    BoostNotFound,
    IdempotencyKeyReused,
    InsufficientFunds,
    PurchaseInFlight,
    PurchaseRefused,
    WalletUnavailable,
)

if TYPE_CHECKING:
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub

log = logging.getLogger(__name__)

Doc = dict[str, Any]
Clock = Callable[[], datetime]
#: The wallet's source of every boost debit (its source id is the purchase id).
SOURCE = "mining.boost"
MIRROR_SCRIPT = (Path(__file__).with_name("lua") / "mirror_boosts.lua").read_text()
#: Purchases one sweep takes.
SWEEP_PAGE = 100
#: Wallet refusals after which nothing was debited: the purchase is refused.
_REFUSALS = frozenset({grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT})


class State(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REFUSED = "refused"


def purchase_id(user_id: str, key: str) -> str:
    return f"{user_id}:{key}"


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class Levels:
    """A user's levels (boost id -> level) and the version of their document."""

    levels: dict[str, int]
    version: int

    def of(self, boost_id: str) -> int:
        return self.levels.get(boost_id, 0)


class Purchases:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        catalogue: Catalogue,
        wallet: WalletServiceAsyncStub,
        redis: PipelinedRedis,
        *,
        timeout_seconds: float = 5.0,
        clock: Clock = utcnow,
    ) -> None:
        self.client = client
        db = client[database]
        self.purchases = db["boost_purchases"]
        self.levels = db["boost_levels"]
        self.catalogue = catalogue
        self.wallet = wallet
        self.redis = redis
        self.timeout = timeout_seconds
        self.now = clock
        self._mirror = redis.script(MIRROR_SCRIPT)

    async def ensure_indexes(self) -> None:
        await self.purchases.create_index("claim", unique=True)
        await self.purchases.create_index([("settled", ASCENDING), ("updated_at", ASCENDING)])

    # the flow ------------------------------------------------------------------

    async def buy(
        self, user_id: str, key: str, boost_id: str, expected: int | None
    ) -> tuple[Doc, bool]:
        """Buy the next level of ``boost_id`` (``expected``: the level the caller
        means to buy); ``(purchase, duplicate)``. A refused purchase raises
        :class:`InsufficientFunds`, on a replay too."""
        boost = self.catalogue.get(boost_id)
        if boost is None:
            known = ", ".join(b.id for b in self.catalogue.boosts) or "none"
            raise BoostNotFound(f"no boost {boost_id!r}; boosts: {known}", field="boostId")
        for _ in range(5):
            doc = await self.purchases.find_one({"_id": purchase_id(user_id, key)})
            duplicate = doc is not None
            if doc is not None:
                same = doc["boost"] == boost_id and expected in (None, doc["level"])
                if not same:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used for another purchase; use a new key",
                        field="idempotencyKey",
                    )
            else:
                doc = await self.open(user_id, key, boost, expected)
                if doc is None:
                    continue  # the same key won a race, or the level was bought meanwhile
            return _settled(await self.drive(doc)), duplicate
        raise PurchaseInFlight("concurrent purchases kept colliding; retry", retry_after=1)

    async def open(self, user_id: str, key: str, boost: Boost, expected: int | None) -> Doc | None:
        """Step 1: the pending purchase of the user's next level (``None``: look again)."""
        level = (await self.levels_of(user_id)).of(boost.id) + 1
        price = boost.price(level)
        if price is None:
            raise BoostMaxLevel(
                f"{boost.id} is at its maximum level ({boost.max_level})", field="boostId"
            )
        if expected is not None and expected != level:
            raise BoostLevelChanged(
                f"the next level of {boost.id} is {level}, not {expected}", field="level"
            )
        now = self.now()
        doc: Doc = {
            "_id": purchase_id(user_id, key),
            "user_id": user_id,
            "boost": boost.id,
            "level": level,
            "price": price,
            "currency": self.catalogue.currency,
            "state": str(State.PENDING),
            "claim": f"{user_id}:{boost.id}:{level}",
            "settled": False,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self.purchases.insert_one(doc)
        except DuplicateKeyError as error:
            if "claim" not in ((error.details or {}).get("keyPattern") or {}):
                return None  # a concurrent request with the same key
            other = await self.purchases.find_one({"claim": doc["claim"]})
            if other is not None and other["state"] == State.PENDING:
                raise PurchaseInFlight(
                    f"level {level} of {boost.id} is being bought by another request",
                    retry_after=1,
                ) from None
            return None  # bought meanwhile: read the level again
        return doc

    async def drive(self, doc: Doc) -> Doc:
        """Steps 2-4 from wherever ``doc`` stopped; the purchase as it is after."""
        if doc["state"] == State.PENDING:
            doc = await self.debit(doc)
        if doc["state"] == State.APPLIED and not doc.get("settled"):
            await self.mirror(doc["user_id"])
            await self.purchases.update_one(
                {"_id": doc["_id"]}, {"$set": {"settled": True, "updated_at": self.now()}}
            )
            doc = {**doc, "settled": True}
        return doc

    async def debit(self, doc: Doc) -> Doc:
        """Step 2 (``Wallet.Debit``), then step 3, or the refusal."""
        request = wallet_pb2.DebitRequest(
            user_id=doc["user_id"],
            amount=common_pb2.Money(currency=doc["currency"], units=doc["price"]),
            source=SOURCE,
            source_id=doc["_id"],
            memo=f"boost {doc['boost']} level {doc['level']}",
        )
        try:
            reply = await self.wallet.Debit(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            info = decode_rpc_error(error)
            if info.code in _REFUSALS:
                return await self.refuse(doc, info.reason or "refused", info.message)
            raise WalletUnavailable(
                "the wallet did not answer; retry with the same Idempotency-Key",
                retry_after=1,
            ) from error
        return await self.apply(doc, reply.entry_id, reply.balance.units)

    async def apply(self, doc: Doc, entry_id: str, balance: int) -> Doc:
        """Step 3: applied and the level raised, in one transaction."""
        now = self.now()
        changes = {"state": str(State.APPLIED), "entry_id": entry_id, "balance": balance}

        async def write(session: AsyncClientSession) -> bool:
            marked = await self.purchases.update_one(
                {"_id": doc["_id"], "state": str(State.PENDING)},
                {"$set": {**changes, "updated_at": now}},
                session=session,
            )
            if marked.modified_count != 1:
                return False  # settled by another driver meanwhile
            await self.levels.update_one(
                {"_id": doc["user_id"]},
                {
                    "$max": {f"levels.{doc['boost']}": doc["level"]},
                    "$inc": {"version": 1},
                    "$set": {"updated_at": now},
                },
                upsert=True,
                session=session,
            )
            return True

        for attempt in range(3):
            try:
                applied = await self._transaction(write)
                break
            except DuplicateKeyError:
                if attempt == 2:
                    raise
                continue  # two first purchases of a user raced to create the levels
        if not applied:
            current = await self.purchases.find_one({"_id": doc["_id"]})
            return current or doc
        metrics.BOOST_PURCHASES.labels(doc["boost"], "applied").inc()
        log.info(
            "boost bought",
            extra={"user_id": doc["user_id"], "boost": doc["boost"], "level": doc["level"]},
        )
        return {**doc, **changes}

    async def refuse(self, doc: Doc, reason: str, message: str) -> Doc:
        """The wallet refused the debit: refused, settled, and the level's claim given up."""
        changes = {
            "state": str(State.REFUSED),
            "reason": reason,
            "message": message,
            "claim": f"refused:{doc['_id']}",
            "settled": True,
        }
        marked = await self.purchases.update_one(
            {"_id": doc["_id"], "state": str(State.PENDING)},
            {"$set": {**changes, "updated_at": self.now()}},
        )
        if marked.modified_count != 1:
            return await self.purchases.find_one({"_id": doc["_id"]}) or doc
        metrics.BOOST_PURCHASES.labels(doc["boost"], "refused").inc()
        return {**doc, **changes}

    async def _transaction(self, write: Callable[[AsyncClientSession], Any]) -> bool:
        async with self.client.start_session() as session:
            result: bool = await session.with_transaction(
                write, read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            )
            return result

    # levels ------------------------------------------------------------------------

    async def levels_of(self, user_id: str) -> Levels:
        doc = await self.levels.find_one({"_id": user_id})
        if doc is None:
            return Levels({}, 0)
        return Levels(dict(doc.get("levels", {})), int(doc.get("version", 0)))

    async def mirror(self, user_id: str, levels: Levels | None = None) -> bool:
        """Step 4: write the user's effective levels to Redis (unless a newer
        version is there); ``True`` when written."""
        levels = levels or await self.levels_of(user_id)
        args: list[Any] = [levels.version]
        for effect, field in BOOST_FIELDS.items():
            boost = self.catalogue.by_effect(effect)
            args += [field, boost.effective(levels.of(boost.id)) if boost else 0]
        written = await self.redis.evalsha(self._mirror, [boosts_key(user_id)], args)
        return bool(written)

    async def rebuild(self) -> int:
        """Mirror every user's levels (at start: Redis may have lost them)."""
        count = 0
        async for doc in self.levels.find({}):
            levels = Levels(dict(doc.get("levels", {})), int(doc.get("version", 0)))
            await self.mirror(str(doc["_id"]), levels)
            count += 1
        return count

    # the sweeper -------------------------------------------------------------------

    async def sweep(self, age_seconds: float) -> int:
        """Drive every unsettled purchase older than ``age_seconds``; how many."""
        cutoff = self.now() - timedelta(seconds=age_seconds)
        found = self.purchases.find({"settled": False, "updated_at": {"$lt": cutoff}})
        swept = 0
        async for doc in found.limit(SWEEP_PAGE):
            try:
                await self.drive(doc)
            except DomainError as error:
                log.warning("boost purchase %s not settled: %s", doc["_id"], error)
                continue
            swept += 1
            metrics.BOOST_SWEPT.inc()
        return swept

    async def run_sweeper(self, interval_seconds: float, age_seconds: float) -> None:
        """Rebuild the Redis levels once, then sweep every ``interval_seconds``."""
        rebuilt = False
        while True:
            try:
                if not rebuilt:
                    count = await self.rebuild()
                    rebuilt = True
                    log.info("boost levels mirrored to Redis", extra={"users": count})
                await self.sweep(age_seconds)
            except STORE_OUTAGES as error:
                log.warning("boost sweep skipped: a store is unavailable (%s)", error)
            except Exception:
                log.exception("boost sweep failed; trying again next interval")
            await asyncio.sleep(interval_seconds)

    # answers -----------------------------------------------------------------------

    def money(self, units: int) -> common_pb2.Money:
        return to_money(self.catalogue.currency, units, self.catalogue.decimals)


def _settled(doc: Doc) -> Doc:
    """``doc`` if it bought the level; the refusal it got otherwise."""
    if doc["state"] == State.REFUSED:
        if doc.get("reason") == "insufficient_funds":
            raise InsufficientFunds(
                "your available balance does not cover this boost; nothing was debited",
                field="boostId",
            )
        raise PurchaseRefused(
            f"the wallet refused the debit ({doc.get('reason')}): {doc.get('message', '')}"
        )
    return doc
