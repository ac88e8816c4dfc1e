"""The MiningService gRPC handlers: validate, one Redis script, answer.

``SubmitClick`` and ``SubmitClicks`` (a batch: the gateway coalesces
concurrent click requests into one) never wait for MongoDB or the wallet:
they queue and answer, one Redis script per call.
Every read is scoped to the caller, so another user's key is NOT_FOUND like
one that never existed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from grpc.aio import ServicerContext

from minequest.common.v1 import common_pb2
from minequest.mining.v1 import mining_pb2, mining_pb2_grpc
from runtime import context
from runtime.errors import DomainError, InvalidArgument, Unavailable, required
from runtime.idempotency import check_key
from runtime.money import to_money
from runtime.tracing import current_traceparent
from services.mining import metrics
from services.mining.boosts import Boost, Effect
from services.mining.clicks import THROTTLE_REASONS, Click, ClickGate, Outcome, Pending, Submitted
from services.mining.errors import (
    BoostNotFound,
    ClickNotFound,
    IdempotencyKeyReused,
    InvalidClick,
    QueueFull,
    Throttled,
    click_error,
)
from services.mining.oversight import Oversight
from services.mining.purchases import Purchases
from services.mining.store import MiningStore

Context = ServicerContext[Any, Any]

#: Clicks one SubmitClicks call may carry.
MAX_CLICKS_PER_CALL = 500
#: How far in the future a client's tap time may be (clock skew), in ms.
MAX_CLOCK_SKEW_MS = 60_000

STATES = {
    "q": mining_pb2.CLICK_STATE_QUEUED,
    "d": mining_pb2.CLICK_STATE_DONE,
    "f": mining_pb2.CLICK_STATE_FAILED,
    "t": mining_pb2.CLICK_STATE_THROTTLED,
}


def _millis(stamp: Timestamp) -> int:
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def read_click(request: mining_pb2.SubmitClickRequest, max_taps: int, now_ms: int) -> Click:
    """The batch a request carries, validated (raises InvalidClick naming the field)."""
    taps = request.count or 1
    if taps < 0 or taps > max_taps:
        raise InvalidClick(f"count must be 1-{max_taps} taps", field="count")
    has_first, has_last = request.HasField("first_tap_at"), request.HasField("last_tap_at")
    first = _millis(request.first_tap_at) if has_first else 0
    last = _millis(request.last_tap_at) if has_last else 0
    span = -1
    if has_first and has_last:
        if last < first:
            raise InvalidClick("last_tap_at is before first_tap_at", field="last_tap_at")
        span = last - first
    stamps = ((has_first, first, "first_tap_at"), (has_last, last, "last_tap_at"))
    for present, value, field in stamps:
        if present and value > now_ms + MAX_CLOCK_SKEW_MS:
            raise InvalidClick(f"{field} is in the future", field=field)
    return Click(taps=taps, span_ms=span, fingerprint=f"{taps}:{first}:{last}")


def _timestamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


class MiningService(mining_pb2_grpc.MiningServiceServicer):
    def __init__(
        self,
        gate: ClickGate,
        store: MiningStore,
        purchases: Purchases | None = None,
        oversight: Oversight | None = None,
    ) -> None:
        self.gate = gate
        self.store = store
        #: Suspects and the mined-coin leaderboards (None: not served).
        self.oversight = oversight
        #: Boost purchases (None: the service sells no boosts).
        self.purchases = purchases
        self.rules = gate.rules
        self.reward = gate.reward

    async def SubmitClick(
        self, request: mining_pb2.SubmitClickRequest, context_: Context
    ) -> mining_pb2.SubmitClickResponse:
        (answer,) = await self._accept([request])
        if isinstance(answer, DomainError):
            raise answer
        return answer

    async def SubmitClicks(
        self, request: mining_pb2.SubmitClicksRequest, context_: Context
    ) -> mining_pb2.SubmitClicksResponse:
        if len(request.clicks) > MAX_CLICKS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_CLICKS_PER_CALL} clicks per call", field="clicks")
        answers = await self._accept(request.clicks)
        return mining_pb2.SubmitClicksResponse(results=[_result(answer) for answer in answers])

    async def _accept(
        self, requests: Sequence[mining_pb2.SubmitClickRequest]
    ) -> list[mining_pb2.SubmitClickResponse | DomainError]:
        """Validate each click, accept the valid ones in one Redis script, and
        answer each as SubmitClick would (a reply, or the error to raise)."""
        now_ms = int(time.time() * 1000)
        # Per request, in order: its refusal, or the click to queue.
        slots: list[Pending | DomainError] = []
        for request in requests:
            try:
                user = required(request.user_id, "user_id")
                key = check_key(request.idempotency_key, "idempotency_key")
                click = read_click(request, self.rules.max_taps_per_request, now_ms)
            except InvalidArgument as error:
                metrics.click_request("invalid").inc()
                slots.append(error)
                continue
            request_id = request.request_id or context.request_id.get() or ""
            trace = request.trace_parent or current_traceparent()
            slots.append(Pending(user, key, click, request_id, trace))
        pending = [slot for slot in slots if isinstance(slot, Pending)]
        results = iter(await self.gate.submit_many(pending))
        answers: list[mining_pb2.SubmitClickResponse | DomainError] = []
        depth = -1
        for slot in slots:
            if isinstance(slot, DomainError):
                answers.append(slot)
                continue
            result = next(results)
            answers.append(_answer(slot.key, result))
            if result.outcome in (Outcome.QUEUED, Outcome.QUEUE_FULL):
                depth = max(depth, result.depth)
        if depth >= 0:
            metrics.QUEUE_DEPTH.set(depth)
        return answers

    async def GetClickStatus(
        self, request: mining_pb2.GetClickStatusRequest, context_: Context
    ) -> mining_pb2.GetClickStatusResponse:
        user = required(request.user_id, "user_id")
        key = check_key(request.key, "key")
        fields = await self.gate.status(user, key)
        state = fields.get("s")
        if state not in STATES:
            raise ClickNotFound(f"no click with key {key!r} (unknown, or older than its retention)")
        reply = mining_pb2.GetClickStatusResponse(
            key=key,
            state=STATES[state],
            accepted_taps=int(fields.get("n", 0)),
            error_code=fields.get("e", ""),
        )
        if state == "d":
            units = int(fields.get("r", 0))
            reply.reward_units = units
            reply.reward.CopyFrom(self._money(units))
        if state == "t" and "ra" in fields:
            reply.retry_at.CopyFrom(_timestamp(int(fields["ra"])))
        return reply

    async def GetMiningStatus(
        self, request: mining_pb2.GetMiningStatusRequest, context_: Context
    ) -> mining_pb2.GetMiningStatusResponse:
        user = required(request.user_id, "user_id")
        peek = await self.gate.peek(user)
        totals = await self.store.totals(user)
        steps = self.gate.steps
        energy_max = self.rules.energy_max + peek.tank_level * steps.tank
        regen = self.rules.energy_regen_per_second + peek.regen_level * float(steps.regen)
        missing_ms = math.ceil(max(0, energy_max * 1000 - peek.energy_milli) / regen)
        return mining_pb2.GetMiningStatusResponse(
            total_taps=totals.taps,
            total_reward_units=totals.reward_units,
            today_taps=peek.today_taps,
            energy=peek.energy_milli // 1000,
            max_energy=energy_max,
            energy_full_at=_timestamp(peek.now_ms + missing_ms),
            total_reward=self._money(totals.reward_units),
            daily_tap_cap=self.rules.daily_tap_cap,
            referral_units=totals.referral_units,
            referral_reward=self._money(totals.referral_units),
        )

    def _money(self, units: int) -> common_pb2.Money:
        return to_money(self.reward.currency, units, self.reward.decimals)

    # suspects and mined-coin leaderboards (services.mining.oversight) ------------

    def _oversight(self) -> Oversight:
        if self.oversight is None:
            raise Unavailable("suspects and leaderboards are not served here", retry_after=1)
        return self.oversight

    async def ListSuspects(
        self, request: mining_pb2.ListSuspectsRequest, context_: Context
    ) -> mining_pb2.ListSuspectsResponse:
        return await self._oversight().list_suspects(request)

    async def ClearSuspect(
        self, request: mining_pb2.ClearSuspectRequest, context_: Context
    ) -> mining_pb2.ClearSuspectResponse:
        return await self._oversight().clear_suspect(request)

    async def GetMinedLeaderboard(
        self, request: mining_pb2.GetMinedLeaderboardRequest, context_: Context
    ) -> mining_pb2.GetMinedLeaderboardResponse:
        return await self._oversight().leaderboard(request)

    # boosts ----------------------------------------------------------------------

    def _purchases(self) -> Purchases:
        if self.purchases is None:
            raise BoostNotFound("this service sells no boosts", field="boostId")
        return self.purchases

    async def ListBoosts(
        self, request: mining_pb2.ListBoostsRequest, context_: Context
    ) -> mining_pb2.ListBoostsResponse:
        user = required(request.user_id, "user_id")
        purchases = self._purchases()
        levels = await purchases.levels_of(user)
        if levels.version:
            await purchases.mirror(user, levels)  # rebuilds the click path's copy if lost
        boosts = purchases.catalogue.boosts
        return mining_pb2.ListBoostsResponse(
            boosts=[boost_message(purchases, boost, levels.of(boost.id)) for boost in boosts]
        )

    async def PurchaseBoost(
        self, request: mining_pb2.PurchaseBoostRequest, context_: Context
    ) -> mining_pb2.PurchaseBoostResponse:
        user = required(request.user_id, "user_id")
        key = check_key(request.idempotency_key, "idempotency_key")
        boost_id = required(request.boost_id, "boost_id")
        expected = request.level if request.HasField("level") else None
        purchases = self._purchases()
        doc, duplicate = await purchases.buy(user, key, boost_id, expected)
        boost = purchases.catalogue.get(doc["boost"])
        assert boost is not None  # buy() checked it
        level = max(doc["level"], (await purchases.levels_of(user)).of(boost.id))
        return mining_pb2.PurchaseBoostResponse(
            purchase_id=doc["_id"],
            boost=boost_message(purchases, boost, level),
            level=doc["level"],
            price=purchases.money(doc["price"]),
            debit_entry_id=doc["entry_id"],
            balance=purchases.money(doc["balance"]),
            duplicate=duplicate,
        )


EFFECTS = {
    Effect.ENERGY_MAX: mining_pb2.BOOST_EFFECT_ENERGY_MAX,
    Effect.ENERGY_REGEN: mining_pb2.BOOST_EFFECT_ENERGY_REGEN,
    Effect.TAP_REWARD: mining_pb2.BOOST_EFFECT_TAP_REWARD,
}


def boost_message(purchases: Purchases, boost: Boost, level: int) -> mining_pb2.Boost:
    """One boost as a user at ``level`` has it."""
    catalogue = purchases.catalogue
    message = mining_pb2.Boost(
        id=boost.id,
        title=boost.title,
        description=boost.description,
        effect=EFFECTS[boost.effect],
        level=level,
        max_level=boost.max_level,
        per_level=catalogue.describe(boost, 1),
        effect_now=catalogue.describe(boost, level),
    )
    price = boost.price(level + 1)
    if price is not None:
        message.next_price.CopyFrom(purchases.money(price))
    return message


def _answer(key: str, result: Submitted) -> mining_pb2.SubmitClickResponse | DomainError:
    """What SubmitClick answers for one click's script result (counted)."""
    outcome = result.outcome
    if outcome is Outcome.QUEUED or outcome is Outcome.DEDUPLICATED:
        deduplicated = outcome is Outcome.DEDUPLICATED
        metrics.click_request("deduplicated" if deduplicated else "queued").inc()
        return mining_pb2.SubmitClickResponse(
            key=key,
            state=mining_pb2.CLICK_STATE_QUEUED,
            accepted_taps=result.accepted,
            deduplicated=deduplicated,
            queue_depth=result.depth,
        )
    if outcome is Outcome.KEY_REUSED:
        metrics.click_request("key_reused").inc()
        return IdempotencyKeyReused(
            "this Idempotency-Key was used for another batch of taps; use a new key",
            field="idempotency_key",
        )
    if outcome is Outcome.QUEUE_FULL:
        metrics.click_request("queue_full").inc()
        return QueueFull(
            "the click queue is full; retry shortly", retry_after=result.retry_after_ms / 1000
        )
    reason = THROTTLE_REASONS[outcome]
    metrics.click_request(reason).inc()
    retry = result.retry_after_ms / 1000
    return Throttled(_throttle_message(outcome, retry), reason=reason, retry_after=retry)


def _result(answer: mining_pb2.SubmitClickResponse | DomainError) -> mining_pb2.SubmitClickResult:
    if isinstance(answer, DomainError):
        return mining_pb2.SubmitClickResult(error=click_error(answer))
    return mining_pb2.SubmitClickResult(accepted=answer)


def _throttle_message(outcome: Outcome, retry_seconds: float) -> str:
    when = f"in {math.ceil(retry_seconds)} s"
    if outcome is Outcome.ENERGY_EXHAUSTED:
        return f"out of energy: enough for a tap again {when}"
    if outcome is Outcome.DAILY_CAP_REACHED:
        return f"today's tap cap is reached: it resets at 00:00 UTC ({when})"
    return f"tapping faster than allowed: retry {when}"
