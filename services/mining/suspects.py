"""Accounts the bot signals flagged (:mod:`services.mining.signals`), in Redis.

Keys:

- ``mining:suspects`` — sorted set, member the user id, score when it was
  flagged (epoch ms). The click script checks it (``ZSCORE``, in the same
  script, no extra round trip) when ``MINING_BOT_SHADOW_MODE`` is on: a
  flagged account's clicks still answer 202 but are queued with reward 0.
- ``mining:suspects:reasons`` — hash, user id → JSON ``{"at": ms,
  "reasons": [{"code", "text", "at"}]}``: why.
- ``mining:signals:{<user>}`` — the user's rolling signal state (TTL);
  clearing a flag deletes it so the account starts over.

A flag is the record of an admin decision still to take, so neither key has a
TTL: a suspect stays listed (and shadowed) until an admin clears it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

__all__ = [
    "REASONS",
    "SUSPECTS",
    "Flag",
    "Suspect",
    "clear",
    "count",
    "flag",
    "page",
    "state_key",
]

SUSPECTS = "mining:suspects"
REASONS = "mining:suspects:reasons"


def state_key(user_id: str) -> str:
    """The user's rolling bot-signal state (services.mining.signals)."""
    return f"mining:signals:{{{user_id}}}"


@dataclass(frozen=True, slots=True)
class Flag:
    """Why an account looks like a bot: a reason code and the figures, in words."""

    code: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Suspect:
    user_id: str
    flagged_at: datetime
    reasons: tuple[Flag, ...]


# KEYS: suspects, reasons; ARGV: now ms, then (user, reasons JSON) pairs.
# Reply: the users flagged now (already flagged ones keep their first flag).
_FLAG = """
local added = {}
for i = 2, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    added[#added + 1] = ARGV[i]
  end
end
return added
"""

# KEYS: suspects, reasons, the user's signal state; ARGV: user. Reply: the
# reasons JSON that was cleared, or false when the user was not flagged.
_CLEAR = """
local why = redis.call('HGET', KEYS[2], ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if removed == 0 then return false end
return why or '{}'
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def encode(flags: Sequence[Flag], now: datetime) -> str:
    return json.dumps(
        {
            "at": _ms(now),
            "reasons": [{"code": f.code, "text": f.text, "at": _ms(f.at)} for f in flags],
        },
        ensure_ascii=False,
    )


def decode(user_id: str, raw: str | bytes | None, score: float | None = None) -> Suspect:
    data: dict[str, Any] = json.loads(raw) if raw else {}
    at = int(data.get("at", score or 0))
    reasons = tuple(
        Flag(str(item.get("code", "")), str(item.get("text", "")), _at(int(item.get("at", at))))
        for item in data.get("reasons", [])
    )
    return Suspect(user_id, _at(at), reasons)


async def flag(
    redis: aioredis.Redis, flags: Mapping[str, Sequence[Flag]], now: datetime
) -> list[str]:
    """Flag each user with its reasons (one call); the users flagged now."""
    if not flags:
        return []
    args: list[Any] = [_ms(now)]
    for user, reasons in flags.items():
        args += [user, encode(reasons, now)]
    added = await redis.register_script(_FLAG)(keys=[SUSPECTS, REASONS], args=args)
    return [_text(item) for item in added]


async def clear(redis: aioredis.Redis, user_id: str) -> Suspect | None:
    """Clear a flag and the user's signal state; the flag cleared (None: not flagged)."""
    keys = [SUSPECTS, REASONS, state_key(user_id)]
    raw = await redis.register_script(_CLEAR)(keys=keys, args=[user_id])
    if raw is None:
        return None
    return decode(user_id, raw)


async def count(redis: aioredis.Redis) -> int:
    return int(await redis.zcard(SUSPECTS))


async def page(redis: aioredis.Redis, offset: int, size: int) -> tuple[list[Suspect], int]:
    """Suspects newest first from ``offset`` (at most ``size``), and how many there are."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrevrange(SUSPECTS, offset, offset + size - 1, withscores=True)
        pipe.zcard(SUSPECTS)
        rows, total = await pipe.execute()
    users = [(_text(member), score) for member, score in rows]
    if not users:
        return [], int(total)
    raws = await redis.hmget(REASONS, [user for user, _ in users])
    found = [decode(user, raw, score) for (user, score), raw in zip(users, raws, strict=True)]
    return found, int(total)
