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

Given the auth database too (its ``users``: who invited whom), it checks the
referral rewards the same way (:mod:`services.mining.referrals`): for each
outbox document and inviter, exactly one ``mining.referral`` credit (or
pending line) of the shares its invitees' clicks in that document earn at
the given percentages; for each invitee who has earned, exactly one
``mining.referral_join`` credit to the inviter; and no referral credit
nothing owes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.mining.outbox import CLICK_SOURCE, SOURCE, Owed, split_source_id
from services.mining.referrals import (
    JOIN_SOURCE,
    NOBODY,
    SHARE_SOURCE,
    Chain,
    ReferralSettings,
    shares,
)

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


Key = tuple[str, str]


async def _outbox(mining: AsyncDatabase[Doc]) -> tuple[int, dict[Key, tuple[str, int]]]:
    """How many documents are pending, and their lines: (source, source id) ->
    (user, units), as the ledger will hold them."""
    lines: dict[Key, tuple[str, int]] = {}
    documents = 0
    async for raw in mining["outbox"].find({}):
        documents += 1
        owed = Owed.from_document(raw)
        lines.update(
            ((line.source, owed.source_id(line)), (line.user_id, line.units)) for line in owed.lines
        )
    return documents, lines


async def _ledger(wallet: AsyncDatabase[Doc]) -> _Ledger:
    seen = _Ledger()
    async for entry in wallet["entries"].find(
        {"source": {"$in": [SOURCE, CLICK_SOURCE, SHARE_SOURCE, JOIN_SOURCE]}},
        {"source": 1, "source_id": 1, "user_id": 1, "amount": 1},
    ):
        key = (entry["source"], entry["source_id"])
        seen.counts[key] += 1
        seen.posted[key] = (entry["user_id"], int(entry["amount"]))
        seen.units += int(entry["amount"])
    return seen


def _without_clicks(
    clicks: _Clicks, pending: dict[Key, tuple[str, int]], ledger: _Ledger
) -> tuple[list[str], list[str]]:
    """Mined credits (and pending lines) no click owes; clicks credited on their
    own although a batch owes them."""
    unknown = [
        f"outbox/{sid}"
        for source, sid in pending
        if source == SOURCE and split_source_id(sid) not in clicks.groups
    ]
    doubles = []
    for source, sid in ledger.counts:
        if source == SOURCE and split_source_id(sid) not in clicks.groups:
            unknown.append(f"{source}/{sid}")
        elif source == CLICK_SOURCE and sid in clicks.batched:
            doubles.append(f"{source}/{sid}")
        elif source == CLICK_SOURCE and sid not in clicks.legacy:
            unknown.append(f"{source}/{sid}")
    return unknown, doubles


async def _chains(auth: AsyncDatabase[Doc]) -> dict[str, Chain]:
    inviter_of = {
        doc["_id"]: doc["referred_by"]
        async for doc in auth["users"].find(
            {"referred_by": {"$nin": [None, ""]}}, {"referred_by": 1}
        )
    }
    return {
        user: Chain(inviter, inviter_of.get(inviter, "")) for user, inviter in inviter_of.items()
    }


def _referral_problems(
    clicks: _Clicks,
    chains: dict[str, Chain],
    settings: ReferralSettings,
    pending: dict[Key, tuple[str, int]],
    ledger: _Ledger,
) -> dict[str, list[str]]:
    """What is owed to inviters, against what the ledger and the outbox hold."""
    owed: dict[Key, tuple[str, int]] = {}
    by_outbox: dict[str, dict[str, int]] = {}
    earners: set[str] = set()
    for (outbox_id, user), group in clicks.groups.items():
        if group.units > 0:
            by_outbox.setdefault(outbox_id, {})[user] = group.units
            earners.add(user)
    for outbox_id, earned in by_outbox.items():
        for inviter, units in shares(earned, chains, settings).items():
            owed[(SHARE_SOURCE, f"{outbox_id}:{inviter}")] = (inviter, units)
    if settings.join_bonus_units:
        for user in earners:
            inviter = chains.get(user, NOBODY).inviter
            if inviter:
                owed[(JOIN_SOURCE, user)] = (inviter, settings.join_bonus_units)
    found: dict[str, list[str]] = {"missing": [], "wrong": [], "unknown": []}
    for key, want in owed.items():
        name = f"{key[0]}/{key[1]}"
        got = ledger.posted.get(key, pending.get(key))
        if got is None:
            found["missing"].append(name)
        elif got != want:
            found["wrong"].append(name)
    found["unknown"] = [
        f"{source}/{sid}"
        for source, sid in {*ledger.counts, *pending}
        if source in (SHARE_SOURCE, JOIN_SOURCE) and (source, sid) not in owed
    ]
    return found


async def audit(
    mining: AsyncDatabase[Doc],
    wallet: AsyncDatabase[Doc],
    auth: AsyncDatabase[Doc] | None = None,
    referrals: ReferralSettings | None = None,
) -> Audit:
    """Audit every mining reward: ``mining`` is the mining service's database,
    ``wallet`` the wallet's; with ``auth`` (the auth service's database) and the
    ``referrals`` settings the pipeline ran with, the inviters' rewards too.
    Run it on a quiet pipeline (a batch in flight may show as missing between
    its two writes)."""
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
        elif (SOURCE, sid) in pending:
            if pending[(SOURCE, sid)] != (user_id, group.units):
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
    if auth is not None:
        found = _referral_problems(
            clicks, await _chains(auth), referrals or ReferralSettings(), pending, ledger
        )
        missing += found["missing"]
        wrong += found["wrong"]
        unknown += found["unknown"]
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
