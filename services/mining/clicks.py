"""The Redis side of accepting clicks: one script per batch of clicks, one per peek.

Keys (the user's in one hash slot, ``{<user id>}``):

- ``mining-clicks`` — the stream workers drain (entries are deleted once done,
  so its length is the backlog);
- ``mq:mine:{<user>}:state`` — energy, tap tokens, today's taps;
- ``mq:mine:{<user>}:click:<key>`` — one click's status: ``s`` state
  (q queued, d done, f failed, t throttled), ``n`` taps, ``fp`` fingerprint,
  ``r`` reward units, ``e`` error code, ``ra`` retry-at ms;
- ``mq:mine:{<user>}:boosts`` — the user's boost levels (:data:`BOOST_FIELDS`:
  ``e`` tank, ``r`` regen, ``t`` tap; ``v`` the version of MongoDB's levels
  document they mirror). No TTL: a mirror of the record of truth
  (``boost_levels``, :mod:`services.mining.purchases`), written after each
  purchase and rebuilt when missing; absent means level 0 everywhere.

The submit script touches the stream and every clicking user's keys
together, so on Redis Cluster they would have to share one slot: run the
click pipeline on one primary (one stream), or shard streams (and batches)
by user hash tag.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.metrics import REDIS_LATENCY_MS
from runtime.redis_pipe import PipelinedRedis
from services.mining.boosts import Effect, Steps
from services.mining.settings import STREAM, Reward, TapRules

_LUA = Path(__file__).with_name("lua")
SUBMIT_SCRIPT = (_LUA / "submit_clicks.lua").read_text()
PEEK_SCRIPT = (_LUA / "peek.lua").read_text()


def state_key(user_id: str) -> str:
    return f"mq:mine:{{{user_id}}}:state"


def status_key(user_id: str, key: str) -> str:
    return f"mq:mine:{{{user_id}}}:click:{key}"


def boosts_key(user_id: str) -> str:
    return f"mq:mine:{{{user_id}}}:boosts"


#: The boost levels hash's field per effect (read by submit_clicks.lua and peek.lua).
BOOST_FIELDS: dict[Effect, str] = {
    Effect.ENERGY_MAX: "e",
    Effect.ENERGY_REGEN: "r",
    Effect.TAP_REWARD: "t",
}
#: The version of the MongoDB levels document the hash mirrors (never goes back).
BOOST_VERSION_FIELD = "v"


def click_id(user_id: str, key: str) -> str:
    """The click's id everywhere below Redis: MongoDB ``_id`` and the wallet's
    ``source_id``. Keys are the caller's, so the id carries the user."""
    return f"{user_id}:{key}"


class Outcome(enum.IntEnum):
    QUEUED = 1
    DEDUPLICATED = 2
    KEY_REUSED = 3
    QUEUE_FULL = 4
    ENERGY_EXHAUSTED = 5
    DAILY_CAP_REACHED = 6
    TAP_RATE_EXCEEDED = 7


THROTTLE_REASONS = {
    Outcome.ENERGY_EXHAUSTED: "energy_exhausted",
    Outcome.DAILY_CAP_REACHED: "daily_cap_reached",
    Outcome.TAP_RATE_EXCEEDED: "tap_rate_exceeded",
}


@dataclass(frozen=True, slots=True)
class Submitted:
    outcome: Outcome
    accepted: int
    retry_after_ms: int
    depth: int
    energy: int


@dataclass(frozen=True, slots=True)
class Click:
    taps: int
    #: Milliseconds between the batch's first and last tap, as the client says; -1: unknown.
    span_ms: int
    #: What makes a retry the same request.
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Pending:
    """One click to accept: whose, under which key, and what it carries along."""

    user_id: str
    key: str
    click: Click
    request_id: str = ""
    #: W3C ``traceparent`` of the request, carried in the stream entry ("": none).
    trace_parent: str = ""


@dataclass(frozen=True, slots=True)
class Peek:
    energy_milli: int
    today_taps: int
    now_ms: int
    #: The user's effective boost levels, as the click script reads them.
    tank_level: int = 0
    regen_level: int = 0
    tap_level: int = 0


class ClickGate:
    def __init__(
        self,
        redis: PipelinedRedis,
        rules: TapRules,
        reward: Reward,
        *,
        max_depth: int,
        status_ttl_seconds: int,
        throttled_ttl_seconds: int,
        boosts: Steps | None = None,
        shadow_key: str | None = None,
    ) -> None:
        self.redis = redis
        self.rules = rules
        self.reward = reward
        #: One boost level's effect per effect (none: boosts change nothing).
        self.steps = boosts or Steps()
        self._steps = self.steps.args()
        #: Shadow mode: the suspects sorted set, whose members' clicks earn 0 (None: off).
        self.shadow_key = shadow_key
        self._submit = redis.script(SUBMIT_SCRIPT)
        self._peek = redis.script(PEEK_SCRIPT)
        self._latency = {
            name: REDIS_LATENCY_MS.labels(operation=f"mining_{name}")
            for name in ("submit", "peek", "status")
        }
        self._fixed = [
            max_depth,
            rules.energy_max,
            repr(rules.energy_regen_per_second),
            rules.energy_per_tap,
            repr(rules.max_taps_per_second),
            rules.tap_burst,
            rules.daily_tap_cap,
            reward.units_per_tap,
            status_ttl_seconds,
            throttled_ttl_seconds,
        ]

    async def submit_many(
        self, pending: Sequence[Pending], now_ms: int | None = None
    ) -> list[Submitted]:
        """Run the submit script once for the whole batch (one answer per click,
        in order); ``now_ms`` replaces Redis time (tests only)."""
        if not pending:
            return []
        keys = [STREAM]
        args: list[Any] = [*self._fixed, "" if now_ms is None else now_ms, *self._steps]
        for item in pending:
            click = item.click
            keys += [
                state_key(item.user_id),
                status_key(item.user_id, item.key),
                boosts_key(item.user_id),
            ]
            args += [
                click.taps,
                click.span_ms,
                click.fingerprint,
                item.user_id,
                item.key,
                item.request_id,
                item.trace_parent,
            ]
        if self.shadow_key is not None:
            keys.append(self.shadow_key)
        reply = await self._timed("submit", self.redis.evalsha(self._submit, keys, args))
        return [
            Submitted(Outcome(code), int(accepted), int(retry), int(depth), int(energy))
            for code, accepted, retry, depth, energy in zip(*[iter(reply)] * 5, strict=True)
        ]

    async def submit(
        self, user_id: str, key: str, click: Click, request_id: str, now_ms: int | None = None
    ) -> Submitted:
        """One click: :meth:`submit_many` of one."""
        (result,) = await self.submit_many([Pending(user_id, key, click, request_id)], now_ms)
        return result

    async def peek(self, user_id: str, now_ms: int | None = None) -> Peek:
        args = [
            self.rules.energy_max,
            repr(self.rules.energy_regen_per_second),
            "" if now_ms is None else now_ms,
            *self._steps[:2],
        ]
        keys = [state_key(user_id), boosts_key(user_id)]
        reply = await self._timed("peek", self.redis.evalsha(self._peek, keys, args))
        return Peek(*(int(value) for value in reply))

    async def status(self, user_id: str, key: str) -> dict[str, str]:
        """A click's status fields (empty when unknown)."""
        raw = await self._timed("status", self.redis.execute("HGETALL", status_key(user_id, key)))
        return {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}

    async def _timed(self, operation: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self._latency[operation].observe((time.perf_counter() - started) * 1000)
