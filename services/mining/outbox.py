"""The mining outbox: rewards owed to the wallet, committed with the clicks.

One document per worker batch in the mining database's ``outbox``
collection, written in the same transaction as the batch's new click records
(each of which carries the document's id as ``outbox_id``)::

    {_id: <hex id>, created_at, clicks, taps,
     lines: [{user_id, units, taps, clicks}, ...]}     # one line per user

Each line is one ``Wallet.Credit`` entry: source ``mining.batch``, source id
``<outbox id>:<user id>``, which the wallet posts at most once. A document
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
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
from pymongo.asynchronous.collection import AsyncCollection

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2
from runtime.errors import decode_rpc_error

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


@dataclass(frozen=True, slots=True)
class Line:
    """What one user earned in one batch."""

    user_id: str
    units: int
    taps: int
    clicks: int


@dataclass(frozen=True, slots=True)
class Owed:
    """One outbox document: a batch's rewards, one line per user."""

    id: str
    created_at: datetime
    lines: tuple[Line, ...]

    def source_id(self, line: Line) -> str:
        return f"{self.id}:{line.user_id}"

    def document(self) -> Doc:
        return {
            "_id": self.id,
            "created_at": self.created_at,
            "clicks": sum(line.clicks for line in self.lines),
            "taps": sum(line.taps for line in self.lines),
            "lines": [
                {"user_id": x.user_id, "units": x.units, "taps": x.taps, "clicks": x.clicks}
                for x in self.lines
            ],
        }

    @classmethod
    def from_document(cls, doc: Doc) -> Owed:
        lines = tuple(
            Line(x["user_id"], int(x["units"]), int(x["taps"]), int(x["clicks"]))
            for x in doc["lines"]
        )
        return cls(str(doc["_id"]), doc["created_at"], lines)


def owed_for(records: Iterable[ClickRecord], now: datetime) -> Owed | None:
    """The outbox document of a batch's new clicks (None when they earn nothing).
    Users whose clicks earn nothing get no line."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for record in records:
        line = sums[record.user_id]
        line[0] += record.reward_units
        line[1] += record.taps
        line[2] += 1
    lines = tuple(Line(user, *sums[user]) for user in sums if sums[user][0] > 0)
    return Owed(uuid.uuid4().hex, now, lines) if lines else None


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
    ) -> None:
        self.collection = collection
        self.wallet = wallet
        self.currency = currency
        self.timeout = timeout_seconds

    async def pending(self, ids: Collection[str]) -> list[Owed]:
        """The documents among ``ids`` not credited yet (a gone one is credited)."""
        if not ids:
            return []
        found = self.collection.find({"_id": {"$in": list(ids)}})
        return [Owed.from_document(doc) async for doc in found]

    async def credit(self, owed: Sequence[Owed], clicks: Sequence[ClickRecord] = ()) -> None:
        """Post every line of ``owed`` (one call per document, or per
        :data:`CREDIT_CALL_MAX` lines of it) and ``clicks`` one entry each,
        under their legacy source. Raises the wallet's error; posting twice is
        harmless."""
        for doc in owed:
            await self._call(
                [
                    self._entry(line.user_id, line.units, SOURCE, doc.source_id(line), line)
                    for line in doc.lines
                ]
            )
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
        self, user_id: str, units: int, source: str, source_id: str, what: Line | str
    ) -> wallet_pb2.CreditEntry:
        memo = what if isinstance(what, str) else f"{what.clicks} clicks, {what.taps} taps"
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
