"""The mining service through a real gRPC channel on real Redis and MongoDB-wire
servers: queueing, dedupe, energy, tap rate, daily cap, backpressure, status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from minequest.mining.v1 import mining_pb2 as pb
from minequest.mining.v1 import mining_pb2_grpc
from runtime.redis_pipe import PipelinedRedis
from services.mining.clicks import Click, ClickGate, Outcome
from services.mining.settings import STREAM, MiningSettings
from tests.integration.conftest import mining_channel, mining_env, refused

if TYPE_CHECKING:
    from minequest.mining.v1.mining_pb2_grpc import MiningServiceAsyncStub as Stub

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


def settings(mongodb_uri: str, redis_url: str, database: str, **extra: str) -> MiningSettings:
    return MiningSettings.from_env(mining_env(mongodb_uri, redis_url, database, **extra))


@pytest.fixture
async def mining(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> AsyncIterator[Stub]:
    async with mining_channel(settings(mongodb_uri, redis_url, database_name)) as channel:
        yield mining_pb2_grpc.MiningServiceStub(channel)


def user() -> str:
    return uuid.uuid4().hex


def key() -> str:
    return uuid.uuid4().hex


def stamp(ms: int) -> Timestamp:
    value = Timestamp()
    value.FromMilliseconds(ms)
    return value


async def test_a_click_is_queued_once_and_a_replay_is_deduplicated(
    mining: Stub, redis: aioredis.Redis
) -> None:
    uid, k = user(), key()
    first = await mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=k, count=3))
    assert (first.key, first.state, first.accepted_taps, first.deduplicated) == (
        k,
        pb.CLICK_STATE_QUEUED,
        3,
        False,
    )
    again = await mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=k, count=3))
    assert (again.accepted_taps, again.deduplicated) == (3, True)

    entries: Any = await redis.xrange(STREAM)
    assert len(entries) == 1
    fields = entries[0][1]
    assert (fields["u"], fields["k"], fields["n"]) == (uid, k, "3")
    assert int(fields["r"]) == 3 * 100_000  # 0.001 MQC a tap, 8 decimals

    # The same key from another user is another click.
    other = await mining.SubmitClick(pb.SubmitClickRequest(user_id=user(), idempotency_key=k))
    assert not other.deduplicated
    assert await redis.xlen(STREAM) == 2

    info = await refused(
        mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=k, count=4))
    )
    assert (info.code, info.reason) == (grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused")
    assert await redis.xlen(STREAM) == 2


async def test_status_is_the_callers_own(mining: Stub) -> None:
    uid, k = user(), key()
    await mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=k, count=2))
    status = await mining.GetClickStatus(pb.GetClickStatusRequest(user_id=uid, key=k))
    assert (status.state, status.accepted_taps) == (pb.CLICK_STATE_QUEUED, 2)
    for who, which in ((user(), k), (uid, key())):
        info = await refused(
            mining.GetClickStatus(pb.GetClickStatusRequest(user_id=who, key=which))
        )
        assert (info.code, info.reason) == (grpc.StatusCode.NOT_FOUND, "click_not_found")


async def test_bad_batches_are_refused_naming_the_field(mining: Stub) -> None:
    uid = user()
    cases = [
        (pb.SubmitClickRequest(user_id=uid, idempotency_key=key(), count=-1), "count"),
        (pb.SubmitClickRequest(user_id=uid, idempotency_key=key(), count=501), "count"),
        (
            pb.SubmitClickRequest(
                user_id=uid,
                idempotency_key=key(),
                count=2,
                first_tap_at=stamp(2_000_000),
                last_tap_at=stamp(1_000_000),
            ),
            "last_tap_at",
        ),
        (
            pb.SubmitClickRequest(
                user_id=uid, idempotency_key=key(), last_tap_at=stamp(4_000_000_000_000)
            ),
            "last_tap_at",
        ),
        (pb.SubmitClickRequest(user_id=uid), "idempotency_key"),
        (pb.SubmitClickRequest(user_id=uid, idempotency_key="has space"), "idempotency_key"),
        (pb.SubmitClickRequest(idempotency_key=key()), "user_id"),
    ]
    for request, field in cases:
        info = await refused(mining.SubmitClick(request))
        assert (info.code, info.field) == (grpc.StatusCode.INVALID_ARGUMENT, field), request


async def test_energy_runs_out_then_refills_with_the_time_it_says(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    config = settings(
        mongodb_uri,
        redis_url,
        database_name,
        MINING_ENERGY_MAX="10",
        MINING_ENERGY_REGEN_PER_SECOND="2",
        MINING_MAX_TAPS_PER_SECOND="1000",
    )
    async with gate_for(config, redis_url) as gate:
        uid, t0 = user(), 1_700_000_000_000
        first = await gate.submit(uid, key(), Click(8, -1, "8"), "", now_ms=t0)
        assert (first.outcome, first.accepted, first.energy) == (Outcome.QUEUED, 8, 2)
        # Asks for 5, has energy for 2.
        second = await gate.submit(uid, key(), Click(5, -1, "5"), "", now_ms=t0)
        assert (second.outcome, second.accepted, second.energy) == (Outcome.QUEUED, 2, 0)
        empty = await gate.submit(uid, key(), Click(1, -1, "1"), "", now_ms=t0)
        # Two energy a second: one tap's worth in 500 ms.
        assert (empty.outcome, empty.retry_after_ms) == (Outcome.ENERGY_EXHAUSTED, 500)
        later = await gate.submit(uid, key(), Click(5, -1, "5"), "", now_ms=t0 + 1500)
        assert (later.outcome, later.accepted) == (Outcome.QUEUED, 3)
        # Never above the maximum, however long the user was away.
        rested = await gate.submit(uid, key(), Click(50, -1, "50"), "", now_ms=t0 + DAY_MS // 2)
        assert rested.accepted == 10


async def test_the_tap_rate_caps_what_a_batch_may_claim(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    config = settings(
        mongodb_uri,
        redis_url,
        database_name,
        MINING_MAX_TAPS_PER_SECOND="10",
        MINING_TAP_BURST_SECONDS="2",
    )
    async with gate_for(config, redis_url) as gate:
        uid, t0 = user(), 1_700_000_000_000
        # 100 taps claimed within 1 s at 10 taps/s: 11 (both ends count).
        claimed = await gate.submit(uid, key(), Click(100, 1000, "a"), "", now_ms=t0)
        assert claimed.accepted == 11
        # A bot sending no times still cannot pass the burst (2 s at 10/s = 20 tokens).
        rest = await gate.submit(uid, key(), Click(100, -1, "b"), "", now_ms=t0)
        assert rest.accepted == 9
        stopped = await gate.submit(uid, key(), Click(1, -1, "c"), "", now_ms=t0)
        assert (stopped.outcome, stopped.retry_after_ms) == (Outcome.TAP_RATE_EXCEEDED, 100)
        refilled = await gate.submit(uid, key(), Click(100, -1, "d"), "", now_ms=t0 + 1000)
        assert refilled.accepted == 10


async def test_the_daily_cap_holds_until_midnight_utc(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    config = settings(
        mongodb_uri,
        redis_url,
        database_name,
        MINING_DAILY_TAP_CAP="30",
        MINING_ENERGY_REGEN_PER_SECOND="1000",
        MINING_MAX_TAPS_PER_SECOND="1000",
    )
    async with gate_for(config, redis_url) as gate:
        uid = user()
        t0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + DAY_MS - 60_000  # 23:59 UTC
        assert (await gate.submit(uid, key(), Click(25, -1, "a"), "", now_ms=t0)).accepted == 25
        assert (await gate.submit(uid, key(), Click(25, -1, "b"), "", now_ms=t0)).accepted == 5
        capped = await gate.submit(uid, key(), Click(1, -1, "c"), "", now_ms=t0 + 1000)
        assert (capped.outcome, capped.retry_after_ms) == (Outcome.DAILY_CAP_REACHED, 59_000)
        peek = await gate.peek(uid, now_ms=t0 + 1000)
        assert peek.today_taps == 30
        tomorrow = await gate.submit(uid, key(), Click(25, -1, "d"), "", now_ms=t0 + 60_000)
        assert tomorrow.accepted == 25


async def test_a_refused_click_reads_throttled_and_may_be_sent_again(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    config = settings(
        mongodb_uri,
        redis_url,
        database_name,
        MINING_ENERGY_MAX="1",
        MINING_ENERGY_REGEN_PER_SECOND="0.001",
    )
    async with mining_channel(config) as channel:
        mining = mining_pb2_grpc.MiningServiceStub(channel)
        uid, k = user(), key()
        await mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=key()))
        info = await refused(
            mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=k))
        )
        assert (info.code, info.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "energy_exhausted")
        assert info.retry_after is not None
        assert 900 <= info.retry_after <= 1000
        status = await mining.GetClickStatus(pb.GetClickStatusRequest(user_id=uid, key=k))
        assert (status.state, status.error_code) == (pb.CLICK_STATE_THROTTLED, "energy_exhausted")
        assert status.HasField("retry_at")
        # The energy comes back (here by hand): the same key is accepted, not deduplicated.
        await redis.hset(f"mq:mine:{{{uid}}}:state", "em", 1000)
        again = await mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=k))
        assert (again.accepted_taps, again.deduplicated) == (1, False)


async def test_a_full_queue_refuses_with_queue_full(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    config = settings(mongodb_uri, redis_url, database_name, MINING_QUEUE_MAX_DEPTH="3")
    async with mining_channel(config) as channel:
        mining = mining_pb2_grpc.MiningServiceStub(channel)
        for _ in range(3):
            await mining.SubmitClick(pb.SubmitClickRequest(user_id=user(), idempotency_key=key()))
        info = await refused(
            mining.SubmitClick(pb.SubmitClickRequest(user_id=user(), idempotency_key=key()))
        )
        assert (info.code, info.reason, info.retry_after) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "queue_full",
            1,
        )
        assert await redis.xlen(STREAM) == 3


async def test_mining_status_shows_energy_and_today(mining: Stub) -> None:
    uid = user()
    await mining.SubmitClick(pb.SubmitClickRequest(user_id=uid, idempotency_key=key(), count=7))
    status = await mining.GetMiningStatus(pb.GetMiningStatusRequest(user_id=uid))
    assert (status.today_taps, status.max_energy, status.total_taps) == (7, 1000, 0)
    assert 993 <= status.energy <= 994
    assert status.total_reward.amount == "0.00000000"
    assert status.daily_tap_cap == 20_000


async def test_redis_down_is_unavailable(mongodb_uri: str, database_name: str) -> None:
    from runtime.embedded import free_port

    config = settings(mongodb_uri, f"redis://127.0.0.1:{free_port()}/0", database_name)
    async with mining_channel(config) as channel:
        mining = mining_pb2_grpc.MiningServiceStub(channel)
        info = await refused(
            mining.SubmitClick(pb.SubmitClickRequest(user_id=user(), idempotency_key=key()))
        )
        assert (info.code, info.reason) == (grpc.StatusCode.UNAVAILABLE, "store_unavailable")


class gate_for:
    """A ClickGate of ``config`` on its own pipelined connection."""

    def __init__(self, config: MiningSettings, redis_url: str) -> None:
        self.redis = PipelinedRedis(redis_url, timeout_seconds=2.0)
        self.gate = ClickGate(
            self.redis,
            config.rules,
            config.reward,
            max_depth=config.queue_max_depth,
            status_ttl_seconds=config.status_ttl_seconds,
            throttled_ttl_seconds=config.throttled_status_ttl_seconds,
        )

    async def __aenter__(self) -> ClickGate:
        return self.gate

    async def __aexit__(self, *exc: object) -> None:
        await self.redis.close()


async def test_a_batch_answers_each_click_as_submit_click_would(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    """One SubmitClicks call: clicks of several users, one invalid, one replayed,
    one key reused with another batch, the same user twice (the second sees the
    energy the first left)."""
    config = settings(
        mongodb_uri,
        redis_url,
        database_name,
        MINING_ENERGY_MAX="10",
        MINING_MAX_TAPS_PER_SECOND="1000",
    )
    async with mining_channel(config) as channel:
        mining = mining_pb2_grpc.MiningServiceStub(channel)
        tired, other, replayed = user(), user(), key()
        await mining.SubmitClick(pb.SubmitClickRequest(user_id=other, idempotency_key=replayed))
        before = await redis.xlen(STREAM)
        clicks = [
            pb.SubmitClickRequest(user_id=tired, idempotency_key=key(), count=8),
            pb.SubmitClickRequest(user_id=tired, idempotency_key=key(), count=8),
            pb.SubmitClickRequest(user_id=tired, idempotency_key=key(), count=1),
            pb.SubmitClickRequest(user_id=other, idempotency_key=key(), count=-1),
            pb.SubmitClickRequest(user_id=other, idempotency_key=replayed),
            pb.SubmitClickRequest(user_id=other, idempotency_key=replayed, count=3),
            pb.SubmitClickRequest(user_id=other, idempotency_key=key(), count=2),
        ]
        reply = await mining.SubmitClicks(pb.SubmitClicksRequest(clicks=clicks))

    results = list(reply.results)
    assert len(results) == len(clicks)
    assert [r.WhichOneof("outcome") for r in results] == [
        "accepted", "accepted", "error", "error", "accepted", "error", "accepted"
    ]  # fmt: skip
    assert results[0].accepted.accepted_taps == 8
    assert results[0].accepted.key == clicks[0].idempotency_key
    assert results[1].accepted.accepted_taps == 2  # what the first left of 10
    exhausted = results[2].error
    assert (exhausted.code, exhausted.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
        "energy_exhausted",
    )
    assert exhausted.retry_after.seconds >= 1
    invalid = results[3].error
    assert (invalid.code, invalid.reason, invalid.field) == (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        "invalid_click",
        "count",
    )
    assert results[4].accepted.deduplicated
    reused = results[5].error
    assert (reused.code, reused.reason) == (
        grpc.StatusCode.ALREADY_EXISTS.value[0],
        "idempotency_key_reused",
    )
    assert results[6].accepted.accepted_taps == 2
    assert await redis.xlen(STREAM) == before + 3


async def test_a_batch_over_the_limit_is_refused_whole(mining: Stub, redis: aioredis.Redis) -> None:
    before = await redis.xlen(STREAM)
    clicks = [pb.SubmitClickRequest(user_id=user(), idempotency_key=key()) for _ in range(501)]
    info = await refused(mining.SubmitClicks(pb.SubmitClicksRequest(clicks=clicks)))
    assert (info.code, info.field) == (grpc.StatusCode.INVALID_ARGUMENT, "clicks")
    assert await redis.xlen(STREAM) == before
