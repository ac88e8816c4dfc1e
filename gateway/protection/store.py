"""The Redis side of request protection: two scripts, one round trip each.

Before a protected request, :meth:`Guard.check` runs ``lua/guard_check.lua``:
every tier of the route's policy (GCRA token buckets on Redis server time)
and, when the request may pass, the claim of its idempotency record. After
the service answered, :meth:`Guard.finish` stores the answer or releases the
claim. So a protected request costs at most two Redis round trips.

Redis that is down or silent for longer than its timeout raises
:class:`GuardUnavailable` (within the timeout, never a hang); the middleware
then fails open or closed as the route's policy says. The calls go over one
pipelined connection (:mod:`runtime.redis_pipe`).

Keys are ``mq:rl:<policy>:<tier>:<value>`` and ``mq:idem:<digest>``. A script
touches several keys (the global bucket with the caller's), so on Redis
Cluster all of them would need one hash slot: run limits on one primary.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.protection.idempotency import StoredAnswer
from gateway.protection.model import Tier
from runtime.log import Throttle
from runtime.metrics import REDIS_LATENCY_MS
from runtime.redis_pipe import PipelinedRedis, PipelineUnavailable

__all__ = ["Charge", "Claim", "ClaimOutcome", "Guard", "GuardUnavailable", "TierState", "Verdict"]

log = logging.getLogger(__name__)
_LOG_THROTTLE = Throttle(5.0)

_LUA = Path(__file__).with_name("lua")
CHECK_SCRIPT = (_LUA / "guard_check.lua").read_text()
FINISH_SCRIPT = (_LUA / "guard_finish.lua").read_text()


class GuardUnavailable(Exception):
    """Redis did not answer in time (or at all)."""


class ClaimOutcome(enum.IntEnum):
    NONE = 0
    CLAIMED = 1
    MISMATCH = 2
    IN_FLIGHT = 3
    FINISHED = 4


@dataclass(frozen=True, slots=True)
class Charge:
    """One bucket a request draws a token from."""

    tier: Tier
    key: str


@dataclass(frozen=True, slots=True)
class Claim:
    """The idempotency record a request claims."""

    key: str
    fingerprint: str
    token: str

    @property
    def lease_value(self) -> bytes:
        return f"P{self.token}{self.fingerprint}".encode()


@dataclass(frozen=True, slots=True)
class TierState:
    tier: Tier
    remaining: int
    reset_seconds: float


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    #: The tier that refused (reported in shadow mode too), else None.
    limited_by: Tier | None
    retry_after_seconds: float
    tiers: tuple[TierState, ...]
    claim: ClaimOutcome
    answer: StoredAnswer | None = None
    in_flight_seconds: float = 0.0

    def tightest(self) -> TierState | None:
        """The tier whose headers the answer carries: the refusing one, else
        the one with the fewest tokens left (sooner reset on a tie)."""
        if not self.tiers:
            return None
        if self.limited_by is not None:
            return next(state for state in self.tiers if state.tier is self.limited_by)
        return min(self.tiers, key=lambda state: (state.remaining, -state.reset_seconds))


class Guard:
    def __init__(self, redis: PipelinedRedis | None, *, lease_ms: int, retention_ms: int) -> None:
        self.redis = redis
        self.lease_ms = lease_ms
        self.retention_ms = retention_ms
        self._latency = {
            operation: REDIS_LATENCY_MS.labels(operation=f"guard_{operation}")
            for operation in ("check", "finish", "token")
        }
        self._check = redis.script(CHECK_SCRIPT) if redis is not None else None
        self._finish = redis.script(FINISH_SCRIPT) if redis is not None else None

    async def check(
        self,
        charges: Sequence[Charge],
        *,
        shadow: bool = False,
        claim: Claim | None = None,
        now_us: int | None = None,
        operation: str = "check",
    ) -> Verdict:
        """Charge every tier and claim the record, atomically.

        ``operation`` names the call in ``redis_latency_ms`` (``token`` for the
        charge before a token is verified); ``now_us`` replaces Redis server
        time, for the tests only.
        """
        keys = [charge.key for charge in charges]
        args: list[str | int] = [
            len(charges),
            "" if now_us is None else now_us,
            "1" if shadow else "0",
            claim.fingerprint if claim else "",
            claim.token if claim else "",
            self.lease_ms,
        ]
        if claim is not None:
            keys.append(claim.key)
        for charge in charges:
            args += [charge.tier.emission_interval_us, charge.tier.burst]
        reply = await self._call(operation, self._check, keys, args)
        passed, limiting, retry_us, claim_code, data = reply[:5]
        states = tuple(
            TierState(charge.tier, int(reply[5 + 2 * i]), int(reply[6 + 2 * i]) / 1e6)
            for i, charge in enumerate(charges)
        )
        outcome = ClaimOutcome(int(claim_code))
        return Verdict(
            passed=bool(passed),
            limited_by=charges[int(limiting) - 1].tier if limiting else None,
            retry_after_seconds=int(retry_us) / 1e6,
            tiers=states,
            claim=outcome,
            answer=StoredAnswer.decode(bytes(data)) if outcome is ClaimOutcome.FINISHED else None,
            in_flight_seconds=int(data) / 1000 if outcome is ClaimOutcome.IN_FLIGHT else 0.0,
        )

    async def finish(self, claim: Claim, answer: StoredAnswer | None) -> bool:
        """Store ``answer`` (or release the claim when ``None``). False when the
        lease was lost or Redis failed: the lease then simply expires."""
        if self.redis is None:
            return False
        payload = answer.encode() if answer is not None else None
        record = b"D" + claim.fingerprint.encode() + payload if payload is not None else b""
        try:
            done = await self._call(
                "finish",
                self._finish,
                [claim.key],
                [claim.lease_value, record, self.retention_ms],
            )
        except GuardUnavailable as error:
            held = _LOG_THROTTLE.allow("finish")
            if held is not None:
                log.warning("idempotency record not finished: %s", error, extra={"held": held})
            return False
        return bool(done)

    async def _call(
        self,
        operation: str,
        script: bytes | None,
        keys: list[str],
        args: Sequence[str | int | bytes],
    ) -> Any:
        if self.redis is None or script is None:
            raise GuardUnavailable("no Redis configured (REDIS_URL)")
        started = time.perf_counter()
        try:
            return await self.redis.evalsha(script, keys, list(args))
        except PipelineUnavailable as error:
            raise GuardUnavailable(str(error)) from error
        finally:
            self._latency[operation].observe((time.perf_counter() - started) * 1000)


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1 (``Retry-After: 0`` invites a hot loop)."""
    return str(max(1, math.ceil(seconds)))
