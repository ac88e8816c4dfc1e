"""Daily rewards: one claim per user and day, a streak, paid exactly once.

**Days.** A day is the calendar date at UTC plus
``DAILY_REWARD_UTC_OFFSET_MINUTES`` (0: days start at UTC midnight; 120:
at 22:00 UTC, midnight at UTC+2). Every function takes ``now`` from the
service's clock, so tests move days without waiting.

**Streak and reward.** Claiming on day *d* continues the streak of day
*d - 1*'s claim (its ``streak`` + 1); without a claim yesterday the streak
starts again at 1. A claim pays ``DAILY_REWARDS[streak - 1]`` (coins, held as
minor units) of ``DAILY_REWARD_CURRENCY``, the table's last value once the streak is
longer than the table.

**Exactly once.** The claim document's ``_id`` is ``<user_id>:<day>``, so of
any number of concurrent claims exactly one insert succeeds; the others meet
the duplicate key and answer ALREADY_EXISTS ``already_claimed`` naming the
winner (or, when they carry the winner's idempotency key, the winner's
claim again: a retry). The document is committed with ``credit_pending:
true`` before ``Wallet.Credit`` is called with source ``rewards.daily`` and
source id = the claim id, which the wallet posts at most once; a credit lost
to a crash or a wallet outage is retried by the next GET or claim of that
day and by the credit sweeper (services/quests/credits.py), until the wallet
confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from runtime.money import to_money
from runtime.timestamps import aware, to_timestamp
from services.quests.errors import AlreadyClaimed, ProgressBusy
from services.quests.settings import DailyRewardSettings
from services.quests.store import QuestsStore

Doc = dict[str, Any]
_DAY = timedelta(days=1)


def day_of(now: datetime, offset_minutes: int) -> date:
    """The reward day ``now`` falls in."""
    return (aware(now).astimezone(UTC) + timedelta(minutes=offset_minutes)).date()


def day_start(day: date, offset_minutes: int) -> datetime:
    """The instant (UTC) ``day`` begins."""
    return datetime.combine(day, time(), UTC) - timedelta(minutes=offset_minutes)


def claim_id(user_id: str, day: date) -> str:
    """A claim's id: one per user and day, and its Wallet.Credit source id."""
    return f"{user_id}:{day.isoformat()}"


def reward_units(rewards: DailyRewardSettings, streak: int) -> int:
    """What the ``streak``-th consecutive day pays (the last value repeats)."""
    return rewards.units[min(max(streak, 1), len(rewards.units)) - 1]


def coin(rewards: DailyRewardSettings, units: int) -> Doc:
    return {"currency": rewards.currency, "units": units, "precision": rewards.decimals}


def new_claim(
    rewards: DailyRewardSettings, user_id: str, day: date, *, streak: int, key: str, now: datetime
) -> Doc:
    return {
        "_id": claim_id(user_id, day),
        "user_id": user_id,
        "day": day.isoformat(),
        "streak": streak,
        "coin_reward": coin(rewards, reward_units(rewards, streak)),
        "credit_pending": True,
        "idempotency_key": key,
        "claimed_at": now,
    }


def claim_metadata(doc: Doc) -> dict[str, str]:
    """What an ``already_claimed`` error says about the day's claim."""
    reward = doc["coin_reward"]
    stamp = to_timestamp(doc["claimed_at"])
    money = to_money(reward["currency"], int(reward["units"]), int(reward.get("precision", 0)))
    return {
        "claim_id": doc["_id"],
        "day": doc["day"],
        "streak": str(doc["streak"]),
        "claimed_at": stamp.ToJsonString() if stamp else "",
        "currency": money.currency,
        "units": str(money.units),
        "amount": money.amount,
    }


@dataclass(frozen=True, slots=True)
class Claimed:
    claim: Doc
    #: True when this was a retry of the same claim (same idempotency key).
    replayed: bool


class Taken(AlreadyClaimed):
    """Today's reward was claimed by another request (``claim``: its document)."""

    def __init__(self, claim: Doc) -> None:
        super().__init__(
            "you have already claimed today's reward",
            metadata=claim_metadata(claim),
        )
        self.claim = claim


async def claim(
    store: QuestsStore, rewards: DailyRewardSettings, user_id: str, key: str, now: datetime
) -> Claimed:
    """Claim ``user_id``'s reward for the day of ``now``, once (module docstring).
    Raises :class:`Taken` when the day is claimed by another request."""
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what MongoDB keeps
    day = day_of(now, rewards.utc_offset_minutes)
    existing = await store.daily_claims.find_one({"_id": claim_id(user_id, day)})
    if existing is None:
        yesterday = await store.daily_claims.find_one(
            {"_id": claim_id(user_id, day - _DAY)}, {"streak": 1}
        )
        streak = int(yesterday["streak"]) + 1 if yesterday else 1
        doc = new_claim(rewards, user_id, day, streak=streak, key=key, now=now)
        try:
            await store.daily_claims.insert_one(doc)
            return Claimed(doc, replayed=False)
        except DuplicateKeyError:
            existing = await store.daily_claims.find_one({"_id": doc["_id"]})
            if existing is None:  # the winner's write is not visible yet
                raise ProgressBusy("your claim is busy; retry shortly", retry_after=1) from None
    if existing.get("idempotency_key") == key:
        return Claimed(existing, replayed=True)
    raise Taken(existing)


@dataclass(frozen=True, slots=True)
class Status:
    today: date
    #: Consecutive days claimed up to today (or yesterday); 0 when broken.
    streak: int
    #: Today's claim, once made.
    claim: Doc | None
    today_units: int
    next_units: int
    next_claim_at: datetime


async def status(
    store: QuestsStore, rewards: DailyRewardSettings, user_id: str, now: datetime
) -> Status:
    """Where ``user_id``'s streak stands at ``now``."""
    offset = rewards.utc_offset_minutes
    today = day_of(now, offset)
    ids = [claim_id(user_id, today), claim_id(user_id, today - _DAY)]
    found = {doc["_id"]: doc async for doc in store.daily_claims.find({"_id": {"$in": ids}})}
    mine, yesterday = found.get(ids[0]), found.get(ids[1])
    if mine is not None:
        streak = int(mine["streak"])
        return Status(
            today,
            streak,
            mine,
            int(mine["coin_reward"]["units"]),
            reward_units(rewards, streak + 1),
            day_start(today + _DAY, offset),
        )
    streak = int(yesterday["streak"]) if yesterday else 0
    units = reward_units(rewards, streak + 1)
    return Status(today, streak, None, units, units, aware(now))
