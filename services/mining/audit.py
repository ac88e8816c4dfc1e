"""The exactly-once audit of mining rewards: click records against the ledger.

An offline check for tests, benchmarks and operators. It is the one place
that reads both the mining database and the wallet's (its ``entries``
collection, read-only); no service does.

Every recorded click names the outbox document that owes its reward
(``outbox_id``, :mod:`services.mining.outbox`). So for each (outbox id,
user) the clicks' rewards must add up to exactly one ledger entry
``mining.batch`` / ``<outbox id>:<user>`` of that amount to that user, or,
until the wallet has confirmed it, to that user's line in the outbox
document still pending. A click recorded before the outbox existed (no
``outbox_id``) must have exactly one ``mining.click`` entry with its id.

:func:`audit` reports:

- ``doubles``: a credit posted more than once, or a click credited both on
  its own and in a batch;
- ``missing``: a reward owed that is neither credited nor pending;
- ``wrong``: credited or pending with another amount or user than its clicks;
- ``unknown``: a mining credit (or pending line) without clicks behind it.

All four empty is ``exactly_once``; with nothing pending either, ``settled``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.mining.outbox import CLICK_SOURCE, SOURCE, Owed, split_source_id

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Audit:
    #: Click records, and the reward units they earned.
    clicks: int
    reward_units: int
    #: Outbox documents still there, and the units they owe not credited yet.
    outbox_pending: int
    pending_units: int
    #: Ledger entries from mining (both sources), and the units they credit.
    ledger_entries: int
    credited_units: int
    doubles: tuple[str, ...]
    missing: tuple[str, ...]
    wrong: tuple[str, ...]
    unknown: tuple[str, ...]
    #: Click id -> reward units of every click whose credit the wallet holds.
    credited_clicks: dict[str, int] = field(repr=False, compare=False)

    @property
    def exactly_once(self) -> bool:
        return not (self.doubles or self.missing or self.wrong or self.unknown)

    @property
    def settled(self) -> bool:
        """Exactly once, and nothing left to credit."""
        return self.exactly_once and self.outbox_pending == 0

    def summary(self) -> dict[str, Any]:
        """Everything but the per-click map, for a report."""
        return {
            "clicks": self.clicks,
            "reward_units": self.reward_units,
            "outbox_pending": self.outbox_pending,
            "pending_units": self.pending_units,
            "ledger_entries": self.ledger_entries,
            "credited_units": self.credited_units,
            "doubles": len(self.doubles),
            "missing": len(self.missing),
            "wrong": len(self.wrong),
            "unknown": len(self.unknown),
            "exactly_once": self.exactly_once,
            "settled": self.settled,
        }


@dataclass(slots=True)
class _Group:
    units: int = 0
    clicks: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class _Clicks:
    count: int = 0
    units: int = 0
    #: (outbox id, user) -> the clicks it owes.
    groups: dict[tuple[str, str], _Group] = field(default_factory=dict)
    #: Clicks from before the outbox with a reward: id -> (user, units).
    legacy: dict[str, tuple[str, int]] = field(default_factory=dict)
    batched: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Ledger:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (source, source id) -> (user, amount).
    posted: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    units: int = 0


async def _clicks(mining: AsyncDatabase[Doc]) -> _Clicks:
    seen = _Clicks()
    async for doc in mining["clicks"].find({}, {"user_id": 1, "reward_units": 1, "outbox_id": 1}):
        units = int(doc.get("reward_units", 0))
        seen.count += 1
        seen.units += units
        outbox_id = doc.get("outbox_id")
        if outbox_id is None:
            if units > 0:
                seen.legacy[doc["_id"]] = (doc["user_id"], units)
            continue
        seen.batched.add(doc["_id"])
        group = seen.groups.setdefault((outbox_id, doc["user_id"]), _Group())
        group.units += units
        group.clicks.append((doc["_id"], units))
    return seen


async def _outbox(mining: AsyncDatabase[Doc]) -> tuple[int, dict[tuple[str, str], int]]:
    """How many documents are pending, and their lines: (outbox id, user) -> units."""
    lines: dict[tuple[str, str], int] = {}
    documents = 0
    async for raw in mining["outbox"].find({}):
        documents += 1
        owed = Owed.from_document(raw)
        lines.update(((owed.id, line.user_id), line.units) for line in owed.lines)
    return documents, lines


async def _ledger(wallet: AsyncDatabase[Doc]) -> _Ledger:
    seen = _Ledger()
    async for entry in wallet["entries"].find(
        {"source": {"$in": [SOURCE, CLICK_SOURCE]}},
        {"source": 1, "source_id": 1, "user_id": 1, "amount": 1},
    ):
        key = (entry["source"], entry["source_id"])
        seen.counts[key] += 1
        seen.posted[key] = (entry["user_id"], int(entry["amount"]))
        seen.units += int(entry["amount"])
    return seen


def _without_clicks(
    clicks: _Clicks, pending: dict[tuple[str, str], int], ledger: _Ledger
) -> tuple[list[str], list[str]]:
    """Credits (and pending lines) no click owes; clicks credited on their own
    although a batch owes them."""
    unknown = [f"outbox/{o}:{u}" for o, u in pending if (o, u) not in clicks.groups]
    doubles = []
    for source, sid in ledger.counts:
        if source == SOURCE and split_source_id(sid) not in clicks.groups:
            unknown.append(f"{source}/{sid}")
        elif source == CLICK_SOURCE and sid in clicks.batched:
            doubles.append(f"{source}/{sid}")
        elif source == CLICK_SOURCE and sid not in clicks.legacy:
            unknown.append(f"{source}/{sid}")
    return unknown, doubles


async def audit(mining: AsyncDatabase[Doc], wallet: AsyncDatabase[Doc]) -> Audit:
    """Audit every mining reward: ``mining`` is the mining service's database,
    ``wallet`` the wallet's. Run it on a quiet pipeline (a batch in flight may
    show as missing between its two writes)."""
    clicks = await _clicks(mining)
    outbox_pending, pending = await _outbox(mining)
    ledger = await _ledger(wallet)

    doubles = [f"{source}/{sid}" for (source, sid), n in ledger.counts.items() if n > 1]
    missing: list[str] = []
    wrong: list[str] = []
    credited_clicks: dict[str, int] = {}
    pending_units = 0
    for (outbox_id, user_id), group in clicks.groups.items():
        sid = f"{outbox_id}:{user_id}"
        posted = ledger.posted.get((SOURCE, sid))
        if posted is not None:
            if posted != (user_id, group.units):
                wrong.append(f"{SOURCE}/{sid}")
            credited_clicks.update(group.clicks)
        elif (outbox_id, user_id) in pending:
            if pending[(outbox_id, user_id)] != group.units:
                wrong.append(f"outbox/{sid}")
            pending_units += group.units
        elif group.units > 0:
            missing.append(f"{SOURCE}/{sid}")
    for click, (user_id, units) in clicks.legacy.items():
        posted = ledger.posted.get((CLICK_SOURCE, click))
        if posted is None:
            missing.append(f"{CLICK_SOURCE}/{click}")
            continue
        if posted != (user_id, units):
            wrong.append(f"{CLICK_SOURCE}/{click}")
        credited_clicks[click] = units

    unknown, credited_twice = _without_clicks(clicks, pending, ledger)
    doubles += credited_twice
    return Audit(
        clicks=clicks.count,
        reward_units=clicks.units,
        outbox_pending=outbox_pending,
        pending_units=pending_units,
        ledger_entries=sum(ledger.counts.values()),
        credited_units=ledger.units,
        doubles=tuple(sorted(doubles)),
        missing=tuple(sorted(missing)),
        wrong=tuple(sorted(wrong)),
        unknown=tuple(sorted(unknown)),
        credited_clicks=credited_clicks,
    )
