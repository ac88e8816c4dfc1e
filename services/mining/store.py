"""The mining service's MongoDB database: click records, per-user totals and
the outbox of rewards owed to the wallet.

- ``clicks``: one document per processed click, ``_id`` = the click id
  (``<user>:<key>``), so a click is recorded once however often a worker
  retries it; ``outbox_id`` names the outbox document that credits it.
- ``miners``: one document per user with running totals.
- ``outbox``: see :mod:`services.mining.outbox`.

The store remembers which users have a ``miners`` document already (up to
:data:`KNOWN_MINERS_MAX`): their totals get a plain update, the others an
upsert, which costs SecantusDB twice as much. Should a remembered document be
missing after all, the transaction is aborted and run again with upserts, so
the memory can only cost a retry, never a lost total.

None has an index beyond ``_id``: no read looks clicks up by anything
else, the outbox holds only credits in flight, and every index is paid on
the hottest write there is.

:meth:`MiningStore.record` writes a whole batch in one transaction: the
clicks not yet recorded are bulk-inserted, each user's totals get one
``$inc`` for them and one outbox document owes their rewards, so totals
always equal the sum of the click records and every recorded click is owed
by exactly one outbox document (until the wallet confirms it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from runtime.stores import find_in, is_duplicate_key
from services.mining.outbox import JOIN, REFERRAL, Line, Owed, mined_lines, owed_for
from services.mining.referrals import NO_REFERRALS, NOBODY, Chain, ReferralSettings, shares

Doc = dict[str, Any]
#: How many users' ``miners`` documents the store remembers as existing.
KNOWN_MINERS_MAX = 200_000


class _MinerMissing(Exception):
    """A user remembered as known has no ``miners`` document: retry with upserts."""


@dataclass(frozen=True, slots=True)
class ClickRecord:
    id: str
    user_id: str
    key: str
    taps: int
    reward_units: int
    accepted_at: datetime
    stream_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class MinerTotals:
    taps: int
    reward_units: int
    clicks: int
    #: Earned from invitees' mining (shares and join bonuses), not in ``reward_units``.
    referral_units: int = 0


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`MiningStore.record` did with a batch."""

    #: Clicks recorded now.
    new: int
    #: The outbox document of the clicks recorded now (None: they earn nothing).
    owed: Owed | None
    #: Outbox documents of the batch's clicks recorded by an earlier try.
    earlier: frozenset[str]
    #: Clicks recorded earlier by a worker from before the outbox, with a reward.
    legacy: tuple[ClickRecord, ...]


class MiningStore:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        referrals: ReferralSettings = NO_REFERRALS,
    ) -> None:
        self.client = client
        db = client[database]
        self.clicks = db["clicks"]
        self.miners = db["miners"]
        self.outbox = db["outbox"]
        self.referrals = referrals
        #: Users known to have a ``miners`` document, and to have earned.
        self._known: set[str] = set()
        self._earned: set[str] = set()

    async def totals(self, user_id: str) -> MinerTotals:
        doc = await self.miners.find_one({"_id": user_id})
        if doc is None:
            return MinerTotals(0, 0, 0)
        return MinerTotals(
            doc.get("taps", 0),
            doc.get("reward_units", 0),
            doc.get("clicks", 0),
            doc.get("referral_units", 0),
        )

    async def record(
        self,
        records: Sequence[ClickRecord],
        now: datetime,
        chains: Mapping[str, Chain] | None = None,
    ) -> Recorded:
        """Record the batch's clicks that are not recorded yet, with their totals
        and their outbox document, in one transaction.

        The first try assumes the batch is new (the common case) and skips
        looking up what is recorded already; a duplicate click aborts it, and
        the second try records only what is missing and says which outbox
        documents owe the clicks recorded before.

        ``chains`` says who invited the batch's users (none: nobody): their
        inviters' shares and join bonuses join the outbox document
        (:mod:`services.mining.referrals`).
        """
        unique: dict[str, ClickRecord] = {}
        for record in records:
            unique.setdefault(record.id, record)
        if not unique:
            return Recorded(0, None, frozenset(), ())
        chains = chains or {}
        try:
            recorded = await self._record(unique, now, chains)
        except _MinerMissing:
            self._known.clear()
            recorded = await self._record(unique, now, chains)
        # Only now, committed: a user remembered as having earned owes no join bonus.
        if len(self._earned) > KNOWN_MINERS_MAX:
            self._earned.clear()
        self._earned.update(r.user_id for r in unique.values() if r.reward_units > 0)
        return recorded

    async def _record(
        self, unique: dict[str, ClickRecord], now: datetime, chains: Mapping[str, Chain]
    ) -> Recorded:
        try:
            return await self._transaction(
                lambda session: self._write(unique, now, session, chains)
            )
        except PyMongoError as error:
            if not is_duplicate_key(error):
                raise

        async def missing_only(session: AsyncClientSession) -> Recorded:
            known: dict[str, str | None] = {
                doc["_id"]: doc.get("outbox_id")
                async for doc in find_in(
                    self.clicks, "_id", unique, {"outbox_id": 1}, session=session
                )
            }
            fresh = {key: record for key, record in unique.items() if key not in known}
            done = await self._write(fresh, now, session, chains)
            legacy = tuple(
                unique[key]
                for key, outbox in known.items()
                if outbox is None and unique[key].reward_units > 0
            )
            earlier = frozenset(outbox for outbox in known.values() if outbox is not None)
            return Recorded(done.new, done.owed, earlier, legacy)

        return await self._transaction(missing_only)

    async def _write(
        self,
        fresh: dict[str, ClickRecord],
        now: datetime,
        session: AsyncClientSession,
        chains: Mapping[str, Chain],
    ) -> Recorded:
        if not fresh:
            return Recorded(0, None, frozenset(), ())
        totals = mined_lines(fresh.values())
        mined = [line for line in totals if line.owed]
        earned = {line.user_id: line.units for line in mined}
        invited = {
            inviter: (units, 0) for inviter, units in shares(earned, chains, self.referrals).items()
        }
        joins = await self._first_earnings(earned, chains, session)
        for invitee in joins:
            inviter = chains[invitee].inviter
            units, bonus = invited.get(inviter, (0, 0))
            invited[inviter] = (units, bonus + self.referrals.join_bonus_units)
        lines = [
            *mined,
            *(Line(user, units, kind=REFERRAL) for user, (units, _) in invited.items() if units),
            *(
                Line(chains[u].inviter, self.referrals.join_bonus_units, kind=JOIN, of=u)
                for u in joins
            ),
        ]
        owed = owed_for(lines, now)
        outbox_id = None if owed is None else owed.id
        await self.clicks.insert_many(
            [_click_doc(record, now, outbox_id) for record in fresh.values()], session=session
        )
        updates: list[tuple[str, Doc]] = []
        for line in totals:
            update: Doc = {
                "$inc": {"taps": line.taps, "reward_units": line.units, "clicks": line.clicks}
            }
            if line.owed:
                update["$min"] = {"earned_at": now}
            updates.append((line.user_id, update))
        updates.extend(
            (inviter, {"$inc": {"referral_units": units + bonus}})
            for inviter, (units, bonus) in invited.items()
        )
        known = self._known
        done = await self.miners.bulk_write(
            [
                UpdateOne({"_id": user}, update, upsert=user not in known)
                for user, update in updates
            ],
            ordered=False,
            session=session,
        )
        if done.matched_count + done.upserted_count != len(updates):
            raise _MinerMissing
        if owed is not None:
            await self.outbox.insert_one(owed.document(), session=session)
        if len(known) + len(updates) > KNOWN_MINERS_MAX:
            known.clear()
        known.update(user for user, _ in updates)
        return Recorded(len(fresh), owed, frozenset(), ())

    async def _first_earnings(
        self, earned: Mapping[str, int], chains: Mapping[str, Chain], session: AsyncClientSession
    ) -> list[str]:
        """The invitees among ``earned`` who earn for the first time now (their
        inviter is owed the join bonus): no ``earned_at`` yet in this transaction's
        snapshot. Users remembered as having earned are not looked up."""
        if not self.referrals.join_bonus_units:
            return []
        candidates = [
            user for user in earned if chains.get(user, NOBODY).inviter and user not in self._earned
        ]
        if not candidates:
            return []
        before = {
            doc["_id"]
            async for doc in find_in(
                self.miners,
                "_id",
                candidates,
                {"_id": 1},
                where={"earned_at": {"$exists": True}},
                session=session,
            )
        }
        return [user for user in candidates if user not in before]

    async def _transaction(
        self, write: Callable[[AsyncClientSession], Awaitable[Recorded]]
    ) -> Recorded:
        async with self.client.start_session() as session:
            return await session.with_transaction(
                write,
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
            )


def _click_doc(record: ClickRecord, now: datetime, outbox_id: str | None) -> Doc:
    doc: Doc = {
        "_id": record.id,
        "user_id": record.user_id,
        "key": record.key,
        "taps": record.taps,
        "reward_units": record.reward_units,
        "accepted_at": record.accepted_at,
        "recorded_at": now,
        "stream_id": record.stream_id,
        "request_id": record.request_id,
    }
    if outbox_id is not None:
        doc["outbox_id"] = outbox_id
    return doc
