"""``python -m services.mining inspect`` and ``replay-dead``: look into the pipeline.

``inspect`` prints the stream's length, each consumer group with its pending
count and lag, each consumer's pending entries and idle time, the age of the
oldest pending entry, and the dead letters (newest first); given the mining
database, also the outbox backlog (credits committed with their clicks and
not confirmed by the wallet yet, and the oldest one's age). ``--json``
prints the same as one JSON object.

``replay-dead`` puts dead letters back on the stream (status ``queued``
again, attempts reset) and deletes them from the dead-letter stream; a click
already recorded and credited is not recorded or credited again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from pymongo.asynchronous.collection import AsyncCollection

from services.mining.clicks import status_key
from services.mining.outbox import Backlog, backlog
from services.mining.settings import DEAD_LETTERS, STREAM

#: Fields the worker adds to a dead letter; the rest is the original entry.
DEAD_LETTER_FIELDS = ("id", "error_code", "error", "attempts", "failed_at")


@dataclass(slots=True)
class Consumer:
    name: str
    pending: int
    idle_ms: int


@dataclass(slots=True)
class Group:
    name: str
    pending: int
    last_delivered_id: str
    consumers: list[Consumer] = field(default_factory=list)


@dataclass(slots=True)
class DeadLetter:
    id: str
    original_id: str
    error_code: str
    error: str
    attempts: int
    user_id: str
    key: str


@dataclass(slots=True)
class Report:
    stream: str
    length: int
    groups: list[Group]
    oldest_pending_age_seconds: float | None
    dead_letters: int
    recent_dead_letters: list[DeadLetter]
    #: None: the mining database was not looked at.
    outbox: Backlog | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _age_seconds(stream_id: str, now_ms: int) -> float:
    return max(0.0, (now_ms - int(stream_id.split("-", maxsplit=1)[0])) / 1000)


async def inspect(
    redis: aioredis.Redis,
    *,
    dead_letters: int = 10,
    outbox: AsyncCollection[dict[str, Any]] | None = None,
) -> Report:
    now_ms = int(time.time() * 1000)
    length = await redis.xlen(STREAM)
    groups: list[Group] = []
    oldest: str | None = None
    if length or await redis.exists(STREAM):
        for info in await redis.xinfo_groups(STREAM):
            group = Group(
                name=info["name"],
                pending=info["pending"],
                last_delivered_id=info["last-delivered-id"],
            )
            for consumer in await redis.xinfo_consumers(STREAM, group.name):
                group.consumers.append(
                    Consumer(consumer["name"], consumer["pending"], consumer["idle"])
                )
            summary = await redis.xpending(STREAM, group.name)
            if summary["pending"] and (oldest is None or summary["min"] < oldest):
                oldest = summary["min"]
            groups.append(group)
    letters: Any = await redis.xrevrange(DEAD_LETTERS, count=dead_letters) if dead_letters else []
    return Report(
        stream=STREAM,
        length=length,
        groups=groups,
        oldest_pending_age_seconds=_age_seconds(oldest, now_ms) if oldest else None,
        dead_letters=await redis.xlen(DEAD_LETTERS),
        recent_dead_letters=[
            DeadLetter(
                id=letter_id,
                original_id=fields.get("id", ""),
                error_code=fields.get("error_code", ""),
                error=fields.get("error", ""),
                attempts=int(fields.get("attempts", 0) or 0),
                user_id=fields.get("u", ""),
                key=fields.get("k", ""),
            )
            for letter_id, fields in letters
        ],
        outbox=None
        if outbox is None
        else await backlog(outbox, datetime.fromtimestamp(now_ms / 1000, UTC)),
    )


def render(report: Report) -> str:
    lines = [f"stream {report.stream}: {report.length} entries not done"]
    if not report.groups:
        lines.append("  no consumer group yet (no worker has started)")
    for group in report.groups:
        lines.append(
            f"  group {group.name}: {group.pending} pending, "
            f"last delivered {group.last_delivered_id}"
        )
        for consumer in group.consumers:
            lines.append(
                f"    consumer {consumer.name}: {consumer.pending} pending, "
                f"idle {consumer.idle_ms / 1000:.1f} s"
            )
    age = report.oldest_pending_age_seconds
    lines.append(f"oldest pending entry: {'none' if age is None else f'{age:.1f} s old'}")
    lines.append(f"dead letters ({DEAD_LETTERS}): {report.dead_letters}")
    for letter in report.recent_dead_letters:
        lines.append(
            f"  {letter.id} user {letter.user_id} key {letter.key}: {letter.error_code} "
            f"after {letter.attempts} attempt(s): {letter.error}"
        )
    if report.outbox is not None:
        owed = report.outbox
        age = owed.oldest_age_seconds
        lines.append(
            f"outbox: {owed.documents} batch(es) not credited yet "
            f"({owed.clicks} clicks, {owed.units} units); "
            f"oldest: {'none' if age is None else f'{age:.1f} s old'}"
        )
    return "\n".join(lines)


async def replay_dead(redis: aioredis.Redis, *, count: int | None = None) -> int:
    """Move up to ``count`` dead letters (all when None), oldest first, back onto
    the stream; returns how many moved."""
    moved = 0
    while count is None or moved < count:
        batch: Any = await redis.xrange(DEAD_LETTERS, count=min(100, (count or 100) - moved) or 100)
        if not batch:
            break
        for letter_id, fields in batch:
            original = {k: v for k, v in fields.items() if k not in DEAD_LETTER_FIELDS}
            async with redis.pipeline(transaction=True) as pipe:
                pipe.xadd(STREAM, original)
                if original.get("u") and original.get("k"):
                    key = status_key(original["u"], original["k"])
                    pipe.hset(key, mapping={"s": "q"})
                    pipe.hdel(key, "e")
                pipe.xdel(DEAD_LETTERS, letter_id)
                await pipe.execute()
            moved += 1
    return moved
