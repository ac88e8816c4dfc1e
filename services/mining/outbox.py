"""The mining outbox: rewards owed to the wallet, committed with the clicks.

One document per worker batch in the mining database's ``outbox``
collection, written in the same transaction as the batch's new click records
(each of which carries the document's id as ``outbox_id``)::

    {_id: <hex id>, created_at, clicks, taps,
     lines: [{user_id, units, taps, clicks}, ...       # one line per user
             {user_id, units, kind: "referral"}, ...    # per inviter
             {user_id, units, kind: "join", of}]}       # per invitee's first earnings

Each line is one ``Wallet.Credit`` entry, which the wallet posts at most once:
a user's own mining under source ``mining.batch``, source id
``<outbox id>:<user id>``; the referral lines under the sources of
:mod:`services.mining.referrals`. A document
is deleted once the wallet has confirmed all its lines, so the collection
holds exactly the credits not confirmed yet (the backlog ``inspect``
shows), needs no index, and never grows with history; what was credited
stays findable from the click records (``outbox_id``) and the ledger
(``source_id``). :func:`services.mining.audit.audit` checks the two against
each other.

The worker credits a batch's document right after committing it; a crash in
between is repaired by the batch's retry (its clicks are recorded, so their
``outbox_id`` leads to the document) or by :meth:`Outbox.sweep`, which
credits every document older than ``MINING_OUTBOX_SWEEP_AGE_SECONDS`` (run
every ``MINING_OUTBOX_SWEEP_SECONDS`` in each worker process), so a credit
owed never depends on the Redis stream entry surviving.

Clicks recorded by a worker from before the outbox (no ``outbox_id``) were
credited one by one (source ``mining.click``, source id = click id); a retry
of such a click credits it the same way, which the wallet posts once.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
from pymongo.asynchronous.collection import AsyncCollection

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.errors import decode_rpc_error
from runtime.stores import find_in
from services.mining.referrals import JOIN_SOURCE, SHARE_SOURCE

if TYPE_CHECKING:
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub
    from services.mining.store import ClickRecord

log = logging.getLogger(__name__)

Doc = dict[str, Any]
#: Ledger source of a batch's per-user credit (source id ``<outbox id>:<user>``).
SOURCE = "mining.batch"
#: Ledger source of a click credited on its own (before the outbox existed).
CLICK_SOURCE = "mining.click"
#: Entries per ``Wallet.Credit`` call: the wallet's default ``WALLET_CREDIT_MAX_BATCH``.
CREDIT_CALL_MAX = 1000


MINED, REFERRAL, JOIN = "mined", "referral", "join"


@dataclass(frozen=True, slots=True)
class Line:
    """What one user earned in one batch: by mining, or as an inviter."""

    user_id: str
    units: int
    taps: int = 0
    clicks: int = 0
    kind: str = MINED
    #: The invitee a join bonus is for.
    of: str = ""

    @property
    def owed(self) -> bool:
        """Whether the wallet is owed anything for it (clicks may earn nothing)."""
        return self.units > 0

    @property
    def source(self) -> str:
        return {MINED: SOURCE, REFERRAL: SHARE_SOURCE, JOIN: JOIN_SOURCE}[self.kind]

    @property
    def memo(self) -> str:
        if self.kind == REFERRAL:
            return "referral share"
        if self.kind == JOIN:
            return f"referral bonus: {self.of} started mining"
        return f"{self.clicks} clicks, {self.taps} taps"

    def document(self) -> Doc:
        if self.kind == MINED:
            return {
                "user_id": self.user_id,
                "units": self.units,
                "taps": self.taps,
                "clicks": self.clicks,
            }
        doc: Doc = {"user_id": self.user_id, "units": self.units, "kind": self.kind}
        if self.of:
            doc["of"] = self.of
        return doc

    @classmethod
    def from_document(cls, doc: Doc) -> Line:
        return cls(
            doc["user_id"],
            int(doc["units"]),
            int(doc.get("taps", 0)),
            int(doc.get("clicks", 0)),
            doc.get("kind", MINED),
            doc.get("of", ""),
        )


@dataclass(frozen=True, slots=True)
class Owed:
    """One outbox document: a batch's rewards, one line per user."""

    id: str
    created_at: datetime
    lines: tuple[Line, ...]

    def source_id(self, line: Line) -> str:
        return line.of if line.kind == JOIN else f"{self.id}:{line.user_id}"

    def document(self) -> Doc:
        return {
            "_id": self.id,
            "created_at": self.created_at,
            "clicks": sum(line.clicks for line in self.lines),
            "taps": sum(line.taps for line in self.lines),
            "lines": [line.document() for line in self.lines],
        }

    @classmethod
    def from_document(cls, doc: Doc) -> Owed:
        lines = tuple(Line.from_document(x) for x in doc["lines"])
        return cls(str(doc["_id"]), doc["created_at"], lines)


def mined_lines(records: Iterable[ClickRecord]) -> list[Line]:
    """One line per user of what a batch's clicks earned, tapped and clicked:
    their totals' increase. Only lines with units are owed (:attr:`Line.owed`)."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for record in records:
        line = sums[record.user_id]
        line[0] += record.reward_units
        line[1] += record.taps
        line[2] += 1
    return [Line(user, units, taps, clicks) for user, (units, taps, clicks) in sums.items()]


def owed_for(lines: Sequence[Line], now: datetime) -> Owed | None:
    """The outbox document owing ``lines`` (None when there are none)."""
    return Owed(uuid.uuid4().hex, now, tuple(lines)) if lines else None


def split_source_id(source_id: str) -> tuple[str, str]:
    """``(outbox id, user id)`` of a ``mining.batch`` ledger entry's source id."""
    outbox_id, _, user_id = source_id.partition(":")
    return outbox_id, user_id


@dataclass(frozen=True, slots=True)
class Backlog:
    """Credits committed in the mining database, not confirmed by the wallet yet."""

    documents: int
    clicks: int
    units: int
    oldest_age_seconds: float | None


async def backlog(collection: AsyncCollection[Doc], now: datetime) -> Backlog:
    documents = clicks = units = 0
    oldest: datetime | None = None
    async for doc in collection.find({}, {"created_at": 1, "clicks": 1, "lines.units": 1}):
        documents += 1
        clicks += int(doc.get("clicks", 0))
        units += sum(int(line["units"]) for line in doc.get("lines", ()))
        if oldest is None or doc["created_at"] < oldest:
            oldest = doc["created_at"]
    age = None if oldest is None else max(0.0, (now - oldest).total_seconds())
    return Backlog(documents, clicks, units, age)


@dataclass(frozen=True, slots=True)
class SweepReport:
    credited: int = 0
    failed: int = 0


class Outbox:
    """Credits outbox documents through ``Wallet.Credit`` and deletes them."""

    def __init__(
        self,
        collection: AsyncCollection[Doc],
        wallet: WalletServiceAsyncStub,
        currency: str,
        timeout_seconds: float,
        credited: Callable[[Owed], Awaitable[object]] | None = None,
    ) -> None:
        self.collection = collection
        self.wallet = wallet
        self.currency = currency
        self.timeout = timeout_seconds
        #: Run for each document once the wallet holds all of it, before it is
        #: settled (so again after a crash there): the leaderboards' post.
        self.credited = credited

    async def pending(self, ids: Collection[str]) -> list[Owed]:
        """The documents among ``ids`` not credited yet (a gone one is credited)."""
        if not ids:
            return []
        return [Owed.from_document(doc) async for doc in find_in(self.collection, "_id", ids)]

    async def credit(self, owed: Sequence[Owed], clicks: Sequence[ClickRecord] = ()) -> None:
        """Post every line of ``owed`` (one call per document, or per
        :data:`CREDIT_CALL_MAX` lines of it) and ``clicks`` one entry each,
        under their legacy source. Raises the wallet's error; posting twice is
        harmless."""
        for doc in owed:
            await self._call(
                [
                    self._entry(
                        line.user_id, line.units, line.source, doc.source_id(line), line.memo
                    )
                    for line in doc.lines
                ]
            )
            if self.credited is not None:
                await self.credited(doc)
        await self._call(
            [
                self._entry(c.user_id, c.reward_units, CLICK_SOURCE, c.id, f"{c.taps} taps")
                for c in clicks
            ]
        )

    async def settle(self, owed: Sequence[Owed]) -> None:
        """Forget documents the wallet has confirmed."""
        if owed:
            await self.collection.delete_many({"_id": {"$in": [doc.id for doc in owed]}})

    async def sweep(self, older_than: datetime, limit: int) -> SweepReport:
        """Credit and settle, one by one, up to ``limit`` documents created before
        ``older_than`` (left behind by a crash, or refused so far). A document the
        wallet refuses stays for the next pass; an unreachable wallet ends the pass."""
        credited = failed = 0
        found = self.collection.find({"created_at": {"$lt": older_than}}).limit(limit)
        for doc in [Owed.from_document(doc) async for doc in found]:
            try:
                await self.credit([doc])
            except grpc.aio.AioRpcError as error:
                failed += 1
                info = decode_rpc_error(error)
                log.warning(
                    "outbox credit not posted; the next sweep retries it",
                    extra={"outbox_id": doc.id, "grpc_code": info.code.name, "reason": info.reason},
                )
                if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    break
                continue
            await self.settle([doc])
            credited += 1
        return SweepReport(credited, failed)

    def _entry(
        self, user_id: str, units: int, source: str, source_id: str, memo: str
    ) -> wallet_pb2.CreditEntry:
        return wallet_pb2.CreditEntry(
            user_id=user_id,
            amount=common_pb2.Money(currency=self.currency, units=units),
            source=source,
            source_id=source_id,
            memo=memo,
        )

    async def _call(self, entries: list[wallet_pb2.CreditEntry]) -> None:
        for start in range(0, len(entries), CREDIT_CALL_MAX):
            chunk = entries[start : start + CREDIT_CALL_MAX]
            await self.wallet.Credit(wallet_pb2.CreditRequest(entries=chunk), timeout=self.timeout)
