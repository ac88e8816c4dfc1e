"""Mined-coin leaderboards per day and per ISO week, in Redis sorted sets.

Keys (score: minor units mined in the period, member: the user id):

- ``mining:leaderboard:day:<YYYY-MM-DD>`` — expires 3 days after its last post;
- ``mining:leaderboard:week:<YYYY>-W<ww>`` (ISO week) — expires after 3 weeks;
- ``mining:leaderboard:posted:<outbox id>`` — the batch was posted (two weeks).

Periods are the dates (and ISO weeks, Monday to Sunday) at UTC plus
``MINING_LEADERBOARD_UTC_OFFSET_MINUTES`` (120: days start at 22:00 UTC, the
daily rewards' convention), so "reset on schedule" is simply a new key each
period; nothing is ever zeroed.

**Exactly once.** The worker posts a batch (:func:`post_batch`) after the
wallet confirmed its credit, under the batch's outbox id: one Lua call sets
the ``posted`` marker (``SET NX``) and only when it was not set adds every
user's units to both boards, so a worker that retries (or two sweepers that
race) posts a batch once. The marker outlives any retry of the outbox.

Reads (:func:`read`) are one Lua call: the top ``limit``, the user's rank and
units, and the players around them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

__all__ = [
    "Period",
    "Row",
    "Standing",
    "board_key",
    "period_id",
    "post_batch",
    "read",
]

PREFIX = "mining:leaderboard"
POSTED_TTL_SECONDS = 14 * 86_400
DAY_TTL_SECONDS = 3 * 86_400
WEEK_TTL_SECONDS = 21 * 86_400


class Period(enum.Enum):
    DAY = "day"
    WEEK = "week"


def local_date(now: datetime, offset_minutes: int = 0) -> date:
    """The leaderboard day ``now`` falls in: the date at UTC+``offset_minutes``
    (as ``DAILY_REWARD_UTC_OFFSET_MINUTES`` reads it for daily rewards)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (now.astimezone(UTC) + timedelta(minutes=offset_minutes)).date()


def period_id(period: Period, now: datetime, offset_minutes: int = 0) -> str:
    """``2026-12-01`` for a day, ``2026-W49`` for an ISO week."""
    day = local_date(now, offset_minutes)
    if period is Period.DAY:
        return day.isoformat()
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def board_key(period: Period, now: datetime, offset_minutes: int = 0) -> str:
    return f"{PREFIX}:{period.value}:{period_id(period, now, offset_minutes)}"


def posted_key(outbox_id: str) -> str:
    return f"{PREFIX}:posted:{outbox_id}"


# KEYS: posted marker, day board, week board
# ARGV: posted ttl, day ttl, week ttl, then (user, units) pairs. 1: posted now, 0: before.
_POST = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 4, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[2], ARGV[i + 1], ARGV[i])
  redis.call('ZINCRBY', KEYS[3], ARGV[i + 1], ARGV[i])
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""

# KEYS: board; ARGV: limit, user ("" none), around.
# Reply: {top (member, score...), own rank (-1 none), own score, first around rank, around rows}
_READ = """
local top = {}
if tonumber(ARGV[1]) > 0 then
  top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
end
if ARGV[2] == '' then return {top, -1, '0', 0, {}} end
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[2])
if not rank then return {top, -1, '0', 0, {}} end
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
local around = tonumber(ARGV[3])
if around <= 0 then return {top, rank, score, 0, {}} end
local first = math.max(rank - around, 0)
local near = redis.call('ZREVRANGE', KEYS[1], first, rank + around, 'WITHSCORES')
return {top, rank, score, first, near}
"""


async def post_batch(
    redis: aioredis.Redis,
    outbox_id: str,
    units_by_user: Mapping[str, int],
    now: datetime,
    *,
    offset_minutes: int = 0,
) -> bool:
    """Add a credited batch's units per user to today's and this week's boards,
    once per ``outbox_id``; False when the batch was posted before."""
    args: list[Any] = [POSTED_TTL_SECONDS, DAY_TTL_SECONDS, WEEK_TTL_SECONDS]
    for user, units in units_by_user.items():
        if units > 0:
            args += [user, int(units)]
    keys = [
        posted_key(outbox_id),
        board_key(Period.DAY, now, offset_minutes),
        board_key(Period.WEEK, now, offset_minutes),
    ]
    return bool(await redis.register_script(_POST)(keys=keys, args=args))


@dataclass(frozen=True, slots=True)
class Row:
    #: 1 is the best.
    rank: int
    user_id: str
    units: int


@dataclass(frozen=True, slots=True)
class Standing:
    key: str
    top: tuple[Row, ...]
    own: Row | None
    around: tuple[Row, ...]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rows(flat: Sequence[Any], first_rank: int) -> tuple[Row, ...]:
    pairs = zip(flat[0::2], flat[1::2], strict=True)
    return tuple(
        Row(first_rank + i, _text(member), int(float(_text(score))))
        for i, (member, score) in enumerate(pairs)
    )


async def read(
    redis: aioredis.Redis,
    period: Period,
    now: datetime,
    *,
    limit: int,
    user_id: str = "",
    around: int = 0,
    offset_minutes: int = 0,
) -> Standing:
    """The board of the period ``now`` is in: the top ``limit``, the user's own
    row and ``around`` players on each side of them (one call)."""
    key = board_key(period, now, offset_minutes)
    reply = await redis.register_script(_READ)(keys=[key], args=[limit, user_id, around])
    top, rank, score, first, near = reply
    own = None if int(rank) < 0 else Row(int(rank) + 1, user_id, int(float(_text(score))))
    return Standing(key, _rows(top, 1), own, _rows(near, int(first) + 1))
