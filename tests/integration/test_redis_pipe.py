"""The guard's pipelined Redis connection against a real Redis server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop

from runtime.embedded import free_port
from runtime.redis_pipe import PipelinedRedis, PipelineUnavailable

ECHO = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"


@pytest.fixture
async def pipe(redis_url: str) -> AsyncIterator[PipelinedRedis]:
    client = PipelinedRedis(redis_url, timeout_seconds=0.05)
    try:
        yield client
    finally:
        await client.close()


async def test_concurrent_calls_share_one_connection_in_order(
    redis_url: str, redis: aioredis.Redis
) -> None:
    # A timeout a busy machine cannot reach: this test is about order, and
    # 500 calls queued at once would not all answer within the fixture's 50 ms.
    pipe = PipelinedRedis(redis_url, timeout_seconds=10)
    sha = pipe.script(ECHO)
    before = (await redis.info("stats"))["total_connections_received"]
    try:
        replies = await asyncio.gather(*(pipe.evalsha(sha, [f"k{n % 7}"], [n]) for n in range(500)))
    finally:
        await pipe.close()
    after = (await redis.info("stats"))["total_connections_received"]
    assert after - before == 1, "every call went over the pipe's one connection"
    assert [reply[:2] for reply in replies] == [
        [f"k{n % 7}".encode(), str(n).encode()] for n in range(500)
    ]
    counts = [await redis.get(f"k{n}") for n in range(7)]
    assert sorted(int(str(count)) for count in counts) == [71] * 4 + [72] * 3


async def test_a_flushed_script_cache_is_reloaded(
    pipe: PipelinedRedis, redis: aioredis.Redis
) -> None:
    sha = pipe.script(ECHO)
    await pipe.evalsha(sha, ["a"], [1])
    await redis.script_flush()
    assert (await pipe.evalsha(sha, ["a"], [2]))[2] == 2


async def test_the_database_in_the_url_is_selected(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/3"
    pipe = PipelinedRedis(url, timeout_seconds=1)
    other = aioredis.Redis.from_url(url)
    try:
        await other.delete("in-db-3")
        await pipe.evalsha(pipe.script(ECHO), ["in-db-3"], [1])
        assert await other.get("in-db-3") == b"1"
    finally:
        await pipe.close()
        await other.aclose()


async def busy_loop_then_answer(redis_url: str) -> bytes:
    pipe = PipelinedRedis(redis_url, timeout_seconds=0.05)
    try:
        sha = pipe.script(ECHO)
        await pipe.evalsha(sha, ["warm"], [0])
        call = asyncio.ensure_future(pipe.evalsha(sha, ["busy"], [1]))
        await asyncio.sleep(0)  # the command is queued...
        await asyncio.sleep(0)  # ...and written
        time.sleep(0.2)  # noqa: ASYNC251 - the loop stuck in other work for 4x the timeout
        reply: list[bytes] = await call
        return reply[0]
    finally:
        await pipe.close()


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_busy_event_loop_is_not_mistaken_for_a_slow_redis(
    redis_url: str, loop_factory: Any
) -> None:
    """A loop stuck for 4x the timeout while Redis answered in time must not
    fail the call; on asyncio and on uvloop (the gateway's loop under uvicorn)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(busy_loop_then_answer(redis_url)) == b"busy"


async def test_a_stalled_redis_fails_calls_after_the_timeout(
    pipe: PipelinedRedis, redis_url: str
) -> None:
    sha = pipe.script(ECHO)
    await pipe.evalsha(sha, ["before"], [0])
    staller: Any = aioredis.Redis.from_url(redis_url)
    stall = asyncio.ensure_future(staller.execute_command("DEBUG", "SLEEP", "1.5"))
    await asyncio.sleep(0.2)  # Redis is asleep by now
    started = time.monotonic()
    with pytest.raises(PipelineUnavailable, match="did not answer within 50 ms"):
        await pipe.evalsha(sha, ["during"], [1])
    assert time.monotonic() - started < 1.0, "it waited for Redis to wake up"
    await stall
    await staller.aclose()
    # the late reply is matched to the failed call, not to the next one
    assert (await pipe.evalsha(sha, ["after"], [2]))[:2] == [b"after", b"2"]


async def test_nothing_listening_fails_at_once_and_not_again_and_again() -> None:
    pipe = PipelinedRedis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.05)
    sha = pipe.script(ECHO)
    started = time.monotonic()
    for _ in range(50):
        with pytest.raises(PipelineUnavailable, match="cannot reach Redis"):
            await pipe.evalsha(sha, ["k"], [1])
    assert time.monotonic() - started < 2.0  # 50 connection attempts would take longer
    await pipe.close()
