"""The XP leaderboard: a Redis sorted set, a copy of MongoDB's progress.

**Order.** Higher XP first; on equal XP, whoever reached that score first
ranks higher. The sorted set's score is the XP itself (exact up to 2^53) and
the member is ``<14-digit (MAX_MS - reached_at in ms)>:<user_id>``: Redis
orders equal scores by member, so a reverse range puts the earliest
``reached_at`` first (ties within the same millisecond fall back to the user
id, so the order is always total and the same after a rebuild). A hash maps
each user to their current member.

**Updates** (:meth:`Leaderboard.record`, one Lua call after a completion
commits) replace a user's member only with a higher XP, so updates that
arrive late or twice never move anyone backwards. When the set is missing,
the update is parked in a ``pending`` hash that the next rebuild applies.

**Rebuild** (:meth:`Leaderboard.rebuild`; ``python -m services.quests
rebuild-leaderboard``; automatically when a read finds the set missing):
one process at a time (a lock key with a token), into temporary keys from
MongoDB's ``progress``, then one Lua call renames them over the live keys
and applies the parked updates. A sentinel member (score ``-inf``) keeps an
empty leaderboard distinguishable from a missing one.

**Around me** (:meth:`Leaderboard.around`): one Lua call reads a user's
rank and the members ``count`` places above and below it from the same
sorted set, so the ranks it answers agree with each other.

**Cache.** The top :data:`TOP_N` with usernames is cached as JSON for
``QUESTS_LEADERBOARD_CACHE_SECONDS``. A change that lands in the top N bumps
a generation counter and drops the cache; a reader stores what it built only
if the generation is still the one it started from, so a stale page is never
cached over a fresh change. Hits and misses are counted in
``cache_hits_total{cache="leaderboard"}`` / ``cache_misses_total``.

Keys share the ``{quests:lb}`` hash tag, so each script touches one Redis
Cluster slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis.asyncio as aioredis

from runtime.metrics import CACHE_HITS, CACHE_MISSES
from services.quests.errors import LeaderboardRebuilding
from services.quests.metrics import LEADERBOARD_REBUILDS
from services.quests.store import QuestsStore

log = logging.getLogger(__name__)

PREFIX = "{quests:lb}"
SCORES = f"{PREFIX}:scores"
MEMBERS = f"{PREFIX}:members"
PENDING = f"{PREFIX}:pending"
CACHE = f"{PREFIX}:top"
GENERATION = f"{PREFIX}:generation"
LOCK = f"{PREFIX}:rebuild-lock"
SENTINEL = "~"
MAX_MS = 10**14 - 1
TOP_N = 100
LOCK_MS = 120_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: How long a reader waits for another process's rebuild.
WAIT_SECONDS = 10.0

# KEYS: scores, members, pending, cache, generation; ARGV: user, xp, member, top_n
_RECORD = """
local xp = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local parked = redis.call('HGET', KEYS[3], ARGV[1])
  if (not parked) or tonumber(string.match(parked, '^[^|]+')) < xp then
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
  end
  return -2
end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  local score = redis.call('ZSCORE', KEYS[1], old)
  if score and tonumber(score) >= xp then return -1 end
  redis.call('ZREM', KEYS[1], old)
end
redis.call('ZADD', KEYS[1], xp, ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[3])
if rank < tonumber(ARGV[4]) then
  redis.call('INCR', KEYS[5])
  redis.call('DEL', KEYS[4])
end
return rank
"""

# KEYS: tmp scores, tmp members, scores, members, pending, cache, generation, lock
# ARGV: lock token
_SWAP = """
if redis.call('GET', KEYS[8]) ~= ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return -1
end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[4])
else
  redis.call('DEL', KEYS[4])
end
local parked = redis.call('HGETALL', KEYS[5])
for i = 1, #parked, 2 do
  local user = parked[i]
  local xp_text, member = string.match(parked[i + 1], '^([^|]+)|(.+)$')
  local xp = tonumber(xp_text)
  local old = redis.call('HGET', KEYS[4], user)
  local score = old and redis.call('ZSCORE', KEYS[3], old)
  if not (score and tonumber(score) >= xp) then
    if old then redis.call('ZREM', KEYS[3], old) end
    redis.call('ZADD', KEYS[3], xp, member)
    redis.call('HSET', KEYS[4], user, member)
  end
end
redis.call('DEL', KEYS[5], KEYS[6], KEYS[8])
redis.call('INCR', KEYS[7])
return redis.call('ZCARD', KEYS[3]) - 1
"""

# KEYS: cache, generation; ARGV: generation read, value, ttl seconds
_FILL = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


# KEYS: scores, members; ARGV: user, count. {first 0-based rank, rows} or false.
_AROUND = """
local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member then return false end
local rank = redis.call('ZREVRANK', KEYS[1], member)
if not rank then return false end
local count = tonumber(ARGV[2])
local first = math.max(rank - count, 0)
return {first, redis.call('ZREVRANGE', KEYS[1], first, rank + count, 'WITHSCORES')}
"""


def member_of(user_id: str, reached_at: datetime) -> str:
    """The sorted-set member encoding the tie-break (earlier sorts higher)."""
    return f"{MAX_MS - _millis(reached_at):014d}:{user_id}"


def _millis(value: datetime) -> int:
    """Milliseconds since the epoch, in integers (no float rounding)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MS


def parse_member(member: str) -> tuple[str, datetime]:
    """``(user_id, reached_at)`` of a member."""
    inverted, _, user_id = member.partition(":")
    millis = MAX_MS - int(inverted)
    return user_id, _EPOCH + millis * _MS


@dataclass(frozen=True, slots=True)
class Standing:
    rank: int  # 1-based
    user_id: str
    xp: int
    reached_at: datetime
    username: str = ""


@dataclass(frozen=True, slots=True)
class Top:
    standings: list[Standing]
    cached: bool


Rows = list[tuple[str, float]]
#: Usernames of user ids (missing ids: no username); may raise when auth is down.
Usernames = Callable[[Sequence[str]], Awaitable[Mapping[str, str]]]


class Leaderboard:
    def __init__(
        self,
        redis: aioredis.Redis,
        store: QuestsStore,
        *,
        cache_seconds: int = 10,
    ) -> None:
        self.redis = redis
        self.store = store
        self.cache_seconds = cache_seconds
        self._record = redis.register_script(_RECORD)
        self._swap = redis.register_script(_SWAP)
        self._fill = redis.register_script(_FILL)
        self._around = redis.register_script(_AROUND)

    async def record(self, user_id: str, xp: int, reached_at: datetime) -> int:
        """Set a user's score (only upwards). The 0-based rank, -1 when the set
        already had this score or more, -2 when parked for the next rebuild."""
        result = await self._record(
            keys=[SCORES, MEMBERS, PENDING, CACHE, GENERATION],
            args=[user_id, xp, member_of(user_id, reached_at), TOP_N],
        )
        return int(result)

    async def rebuild(self) -> int | None:
        """Rebuild from MongoDB; the number of users, or None when another
        process holds the rebuild lock."""
        token = uuid.uuid4().hex
        if not await self.redis.set(LOCK, token, nx=True, px=LOCK_MS):
            return None
        tmp_scores, tmp_members = f"{SCORES}:tmp:{token}", f"{MEMBERS}:tmp:{token}"
        started = time.perf_counter()
        try:
            await self.redis.zadd(tmp_scores, {SENTINEL: float("-inf")})
            pipe = self.redis.pipeline(transaction=False)
            queued = 0
            async for doc in self.store.scores():
                member = member_of(doc["_id"], doc["reached_at"])
                pipe.zadd(tmp_scores, {member: int(doc["xp"])})
                pipe.hset(tmp_members, doc["_id"], member)
                queued += 1
                if queued % 500 == 0:
                    await pipe.execute()
            await pipe.execute()
            count = await self._swap(
                keys=[tmp_scores, tmp_members, SCORES, MEMBERS, PENDING, CACHE, GENERATION, LOCK],
                args=[token],
            )
        except BaseException:
            await self.redis.delete(tmp_scores, tmp_members)
            if await self.redis.get(LOCK) == token:
                await self.redis.delete(LOCK)
            raise
        if int(count) < 0:
            log.warning("leaderboard rebuild lost its lock; another rebuild replaced it")
            return None
        LEADERBOARD_REBUILDS.inc()
        log.info(
            "leaderboard rebuilt",
            extra={"users": int(count), "seconds": round(time.perf_counter() - started, 3)},
        )
        return int(count)

    async def ensure(self) -> None:
        """Rebuild when the sorted set is missing (one process rebuilds; the
        others wait for it, then LEADERBOARD_REBUILDING)."""
        if await self.redis.exists(SCORES):
            return
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if await self.rebuild() is not None:
                return
            await asyncio.sleep(0.05)
            if await self.redis.exists(SCORES):
                return
        raise LeaderboardRebuilding(
            "the leaderboard is being rebuilt; retry shortly", retry_after=1
        )

    async def top(self, limit: int, usernames: Usernames) -> Top:
        """The first ``limit`` (at most :data:`TOP_N`) standings, from the cache when fresh."""
        if self.cache_seconds:
            cached = await self.redis.get(CACHE)
            if cached is not None:
                CACHE_HITS.labels("leaderboard").inc()
                return Top([_standing(row) for row in json.loads(cached)][:limit], cached=True)
            CACHE_MISSES.labels("leaderboard").inc()
        await self.ensure()
        generation = await self.redis.get(GENERATION) or "0"
        rows = cast(Rows, await self.redis.zrevrange(SCORES, 0, TOP_N, withscores=True))
        standings: list[Standing] = []
        for member, score in rows:
            if member == SENTINEL:
                continue
            user_id, reached_at = parse_member(str(member))
            standings.append(Standing(len(standings) + 1, user_id, int(score), reached_at))
        names, complete = await _names(usernames, [s.user_id for s in standings])
        standings = [_named(s, names) for s in standings[:TOP_N]]
        if self.cache_seconds and complete:
            value = json.dumps([_row(s) for s in standings], separators=(",", ":"))
            await self._fill(keys=[CACHE, GENERATION], args=[generation, value, self.cache_seconds])
        return Top(standings[:limit], cached=False)

    async def standing(self, user_id: str) -> Standing | None:
        """A user's own standing, or None without XP."""
        await self.ensure()
        member = await self.redis.hget(MEMBERS, user_id)
        if member is None:
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrevrank(SCORES, member)
        pipe.zscore(SCORES, member)
        rank, score = await pipe.execute()
        if rank is None or score is None:
            return None
        _, reached_at = parse_member(str(member))
        return Standing(int(rank) + 1, user_id, int(score), reached_at)

    async def around(self, user_id: str, count: int) -> list[Standing] | None:
        """Up to ``count`` standings above the user, the user's, up to ``count``
        below, best first (read in one script, so the ranks agree); None when the
        user is not on the leaderboard. Without usernames."""
        await self.ensure()
        found = await self._around(keys=[SCORES, MEMBERS], args=[user_id, count])
        if not found:
            return None
        first, flat = int(found[0]), found[1]
        standings: list[Standing] = []
        for index in range(0, len(flat), 2):
            member = str(flat[index])
            if member == SENTINEL:
                continue
            owner, reached_at = parse_member(member)
            rank = first + index // 2 + 1
            standings.append(Standing(rank, owner, int(float(flat[index + 1])), reached_at))
        return standings

    async def snapshot(self) -> list[tuple[str, float]]:
        """Every member and score, best first (for checks and tests)."""
        rows = cast(Rows, await self.redis.zrevrange(SCORES, 0, -1, withscores=True))
        return [(str(member), float(score)) for member, score in rows]


async def _names(usernames: Usernames, user_ids: list[str]) -> tuple[Mapping[str, str], bool]:
    """Usernames, and whether they could be fetched (a page without them is not cached)."""
    if not user_ids:
        return {}, True
    try:
        return await usernames(user_ids), True
    except Exception as error:  # the ranks still answer; names come back with auth
        log.warning("usernames unavailable for the leaderboard", extra={"error": str(error)})
        return {}, False


def _named(standing: Standing, names: Mapping[str, str]) -> Standing:
    return Standing(
        standing.rank,
        standing.user_id,
        standing.xp,
        standing.reached_at,
        names.get(standing.user_id, ""),
    )


def _row(standing: Standing) -> list[Any]:
    return [
        standing.rank,
        standing.user_id,
        standing.xp,
        _millis(standing.reached_at),
        standing.username,
    ]


def _standing(row: list[Any]) -> Standing:
    rank, user_id, xp, millis, username = row
    return Standing(int(rank), str(user_id), int(xp), _EPOCH + int(millis) * _MS, str(username))
