"""The gateway's click batcher against the real mining service (real gRPC,
Redis and MongoDB-wire servers): concurrent clicks go in one SubmitClicks call,
each answered as SubmitClick would, and a failed call fails every click in it."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
import redis.asyncio as aioredis

from gateway.click_batcher import BATCH_SIZE, ClickBatcher
from minequest.mining.v1 import mining_pb2 as pb
from minequest.mining.v1 import mining_pb2_grpc
from services.mining.settings import STREAM, MiningSettings
from tests.integration.conftest import mining_channel, mining_env

pytestmark = pytest.mark.integration


def settings(mongodb_uri: str, redis_url: str, database: str) -> MiningSettings:
    return MiningSettings.from_env(
        mining_env(mongodb_uri, redis_url, database, MINING_ENERGY_MAX="5")
    )


def calls_and_clicks() -> tuple[float, float]:
    samples = {s.name: s.value for m in BATCH_SIZE.collect() for s in m.samples}
    return samples["gateway_click_batch_size_count"], samples["gateway_click_batch_size_sum"]


async def test_concurrent_clicks_share_one_call_and_keep_their_own_answers(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    async with mining_channel(settings(mongodb_uri, redis_url, database_name)) as channel:
        batcher = ClickBatcher(
            mining_pb2_grpc.MiningServiceStub(channel), max_clicks=100, window_seconds=0.02
        )
        tired = uuid.uuid4().hex
        clicks = [
            pb.SubmitClickRequest(user_id=uuid.uuid4().hex, idempotency_key=uuid.uuid4().hex)
            for _ in range(30)
        ] + [
            pb.SubmitClickRequest(user_id=tired, idempotency_key=uuid.uuid4().hex, count=4)
            for _ in range(2)
        ]
        before_calls, before_clicks = calls_and_clicks()
        before_stream = await redis.xlen(STREAM)
        results = await asyncio.gather(*(batcher.submit(click) for click in clicks))
        calls, sent = calls_and_clicks()

    assert (calls - before_calls, sent - before_clicks) == (1, 32)  # one call for all
    for click, result in zip(clicks[:30], results[:30], strict=True):
        assert result.accepted.key == click.idempotency_key
        assert result.accepted.accepted_taps == 1
    # The same user twice in one call: the second sees the energy the first left.
    assert results[30].accepted.accepted_taps == 4
    assert results[31].accepted.accepted_taps == 1
    assert await redis.xlen(STREAM) == before_stream + 32


async def test_the_batch_limit_splits_calls_and_off_means_one_call_each(
    mongodb_uri: str, redis_url: str, database_name: str
) -> None:
    async with mining_channel(settings(mongodb_uri, redis_url, database_name)) as channel:
        stub = mining_pb2_grpc.MiningServiceStub(channel)
        capped = ClickBatcher(stub, max_clicks=10, window_seconds=0.05)
        clicks = [
            pb.SubmitClickRequest(user_id=uuid.uuid4().hex, idempotency_key=uuid.uuid4().hex)
            for _ in range(25)
        ]
        before, _ = calls_and_clicks()
        await asyncio.gather(*(capped.submit(click) for click in clicks))
        assert calls_and_clicks()[0] - before == 3  # 10 + 10 + the last 5 after the window

        single = ClickBatcher(stub, max_clicks=1, window_seconds=0.05)
        before, _ = calls_and_clicks()
        reused = pb.SubmitClickRequest(
            user_id=clicks[0].user_id, idempotency_key=clicks[0].idempotency_key, count=2
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await single.submit(reused)
        assert refused.value.code() is grpc.StatusCode.ALREADY_EXISTS
        assert calls_and_clicks()[0] == before  # SubmitClick, not a batch


async def test_a_failed_call_fails_every_click_in_it() -> None:
    # Nothing listens on this channel's address: the call fails as a whole.
    channel = grpc.aio.insecure_channel("127.0.0.1:9")
    try:
        batcher = ClickBatcher(
            mining_pb2_grpc.MiningServiceStub(channel), max_clicks=100, window_seconds=0.01
        )
        clicks = [
            pb.SubmitClickRequest(user_id=uuid.uuid4().hex, idempotency_key=uuid.uuid4().hex)
            for _ in range(5)
        ]
        outcomes = await asyncio.gather(
            *(batcher.submit(click) for click in clicks), return_exceptions=True
        )
    finally:
        await channel.close()
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes), outcomes
    assert {o.code() for o in outcomes} == {grpc.StatusCode.UNAVAILABLE}  # type: ignore[union-attr]
