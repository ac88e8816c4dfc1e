"""The guard's scripts on a real Redis: bucket arithmetic against a reference
model, all-or-nothing charging across tiers, and the idempotency record's life."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from fractions import Fraction

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.protection.idempotency import StoredAnswer, claim_token, fingerprint, record_key
from gateway.protection.policy import KeyKind, Tier
from gateway.protection.store import Charge, Claim, ClaimOutcome, Guard
from gateway.protojson import RequestBody
from runtime.redis_pipe import PipelinedRedis

START_US = 1_700_000_000_000_000


@pytest.fixture
async def guard(redis_url: str) -> AsyncIterator[Guard]:
    client = PipelinedRedis(redis_url, timeout_seconds=1.0)
    try:
        yield Guard(client, lease_ms=30_000, retention_ms=60_000)
    finally:
        await client.close()


def tier(name: str, interval_us: int, burst: int) -> Tier:
    return Tier(
        name=name,
        key=KeyKind.GLOBAL,
        rate=1,
        period_seconds=interval_us / 1e6,
        burst=burst,
        field=None,
    )


@dataclass
class Bucket:
    """The reference: a token bucket refilled continuously, in exact fractions."""

    interval_us: int
    burst: int
    tokens: Fraction
    last_us: int

    def refill(self, now_us: int) -> None:
        elapsed = max(0, now_us - self.last_us)
        self.tokens = min(Fraction(self.burst), self.tokens + Fraction(elapsed, self.interval_us))
        self.last_us = max(self.last_us, now_us)


def charges(prefix: str, tiers: list[Tier]) -> list[Charge]:
    return [Charge(t, f"test:{prefix}:{t.name}") for t in tiers]


# Bucket keys expire in real time once their bucket would be full; with the
# test's own clock that only agrees while intervals outlast an example's run.
tier_specs = st.lists(
    st.tuples(st.integers(500_000, 5_000_000), st.integers(1, 12)), min_size=1, max_size=3
)
forward_steps = st.lists(st.integers(0, 3_000_000) | st.integers(0, 86_400_000_000), max_size=40)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(specs=tier_specs, steps=forward_steps)
async def test_buckets_match_a_token_bucket_model(
    guard: Guard, specs: list[tuple[int, int]], steps: list[int]
) -> None:
    """Refill, burst and several tiers (all or none charged), with the clock
    moving forward by anything from nothing to a day between requests."""
    tiers = [tier(f"t{i}", interval, burst) for i, (interval, burst) in enumerate(specs)]
    model = [Bucket(t.emission_interval_us, t.burst, Fraction(t.burst), START_US) for t in tiers]
    prefix = uuid.uuid4().hex
    now = START_US
    for step in steps:
        now += step
        for bucket in model:
            bucket.refill(now)
        expected = all(bucket.tokens >= 1 for bucket in model)
        if expected:
            for bucket in model:
                bucket.tokens -= 1
        verdict = await guard.check(charges(prefix, tiers), now_us=now)
        assert verdict.passed is expected
        if expected:
            assert verdict.limited_by is None
            assert [s.remaining for s in verdict.tiers] == [int(b.tokens) for b in model]
        else:
            assert verdict.limited_by is not None
            assert verdict.retry_after_seconds > 0
            refusing = tiers.index(verdict.limited_by)
            assert model[refusing].tokens < 1


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    specs=tier_specs,
    steps=st.lists(st.integers(-5_000_000, 3_000_000), max_size=40),
)
async def test_a_clock_jumping_back_never_lets_more_through(
    guard: Guard, specs: list[tuple[int, int]], steps: list[int]
) -> None:
    """If Redis time jumps backwards (a failover to a skewed replica), no tier
    lets through more than its burst plus its rate over the span of time the
    clock covered, and nothing goes negative."""
    tiers = [tier(f"t{i}", interval, burst) for i, (interval, burst) in enumerate(specs)]
    prefix = uuid.uuid4().hex
    now = lowest = highest = START_US
    allowed = 0
    for step in steps:
        now += step
        lowest, highest = min(lowest, now), max(highest, now)
        verdict = await guard.check(charges(prefix, tiers), now_us=now)
        allowed += verdict.passed
        assert all(state.remaining >= 0 for state in verdict.tiers)
    for t in tiers:
        assert allowed <= t.burst + (highest - lowest) // t.emission_interval_us


async def test_a_refusal_charges_no_tier(guard: Guard) -> None:
    wide, narrow = tier("wide", 1_000_000, 5), tier("narrow", 1_000_000, 1)
    prefix = uuid.uuid4().hex
    assert (await guard.check(charges(prefix, [wide, narrow]), now_us=START_US)).passed
    refused = await guard.check(charges(prefix, [wide, narrow]), now_us=START_US)
    assert not refused.passed
    assert refused.limited_by is narrow
    assert refused.retry_after_seconds == pytest.approx(1.0)
    # the wide tier still has 4 of its 5 tokens: the refusal took none
    alone = await guard.check(charges(prefix, [wide]), now_us=START_US)
    assert alone.tiers[0].remaining == 3


async def test_shadow_mode_lets_through_and_reports(guard: Guard) -> None:
    one = tier("one", 1_000_000, 1)
    prefix = uuid.uuid4().hex
    await guard.check(charges(prefix, [one]), now_us=START_US, shadow=True)
    verdict = await guard.check(charges(prefix, [one]), now_us=START_US, shadow=True)
    assert verdict.passed
    assert verdict.limited_by is one


async def test_server_time_is_used_when_no_clock_is_given(guard: Guard) -> None:
    one = tier("one", 60_000_000, 2)
    prefix = uuid.uuid4().hex
    first = await guard.check(charges(prefix, [one]))
    second = await guard.check(charges(prefix, [one]))
    third = await guard.check(charges(prefix, [one]))
    assert (first.passed, second.passed, third.passed) == (True, True, False)
    assert 59 < third.retry_after_seconds <= 60


async def test_bucket_keys_expire_once_full_again(guard: Guard, redis: aioredis.Redis) -> None:
    # One charge on a 1 s interval: the bucket is full again after 1 s (plus
    # 1 ms of rounding), and the key lives no longer than that.
    one = tier("one", 1_000_000, 3)
    prefix = uuid.uuid4().hex
    await guard.check(charges(prefix, [one]))
    ttl = await redis.pttl(f"test:{prefix}:one")
    assert 0 < ttl <= 1_001


def new_claim(body: bytes = b'{"a":1}') -> Claim:
    return Claim(
        record_key("u:1", "POST", "/x", uuid.uuid4().hex),
        fingerprint("POST", "/x", b"", RequestBody(body)),
        claim_token(),
    )


async def test_claim_then_store_then_replay(guard: Guard) -> None:
    claim = new_claim()
    assert (await guard.check([], claim=claim)).claim is ClaimOutcome.CLAIMED
    again = Claim(claim.key, claim.fingerprint, claim_token())
    in_flight = await guard.check([], claim=again)
    assert in_flight.claim is ClaimOutcome.IN_FLIGHT
    assert 0 < in_flight.in_flight_seconds <= 30
    answer = StoredAnswer(201, (("content-type", "application/json"),), b'{"id":"w1"}')
    assert await guard.finish(claim, answer)
    replay = await guard.check([], claim=again)
    assert replay.claim is ClaimOutcome.FINISHED
    assert replay.answer == answer


async def test_another_fingerprint_is_refused_in_flight_and_after(guard: Guard) -> None:
    claim = new_claim()
    await guard.check([], claim=claim)
    other = Claim(claim.key, fingerprint("POST", "/x", b"", RequestBody(b'{"a":2}')), claim_token())
    assert (await guard.check([], claim=other)).claim is ClaimOutcome.MISMATCH
    await guard.finish(claim, StoredAnswer(200, (), b"{}"))
    assert (await guard.check([], claim=other)).claim is ClaimOutcome.MISMATCH


async def test_release_lets_a_retry_run_again(guard: Guard) -> None:
    claim = new_claim()
    await guard.check([], claim=claim)
    assert await guard.finish(claim, None)
    retry = Claim(claim.key, claim.fingerprint, claim_token())
    assert (await guard.check([], claim=retry)).claim is ClaimOutcome.CLAIMED


async def test_only_the_lease_holder_may_finish(
    guard: Guard, redis_url: str, redis: aioredis.Redis
) -> None:
    client = PipelinedRedis(redis_url, timeout_seconds=1.0)
    short = Guard(client, lease_ms=50, retention_ms=60_000)
    try:
        claim = new_claim()
        await short.check([], claim=claim)
        # the lease lapses (a gateway died); a retry claims the key again
        await redis.pexpire(claim.key, 1)
        await _wait_gone(redis, claim.key)
        retry = Claim(claim.key, claim.fingerprint, claim_token())
        assert (await short.check([], claim=retry)).claim is ClaimOutcome.CLAIMED
        # the late first request can no longer overwrite the retry's record
        assert not await short.finish(claim, StoredAnswer(200, (), b'{"late":true}'))
        assert await short.finish(retry, StoredAnswer(201, (), b'{"retry":true}'))
        replay = await short.check([], claim=Claim(claim.key, claim.fingerprint, claim_token()))
        assert replay.answer is not None
        assert replay.answer.body == b'{"retry":true}'
    finally:
        await client.close()


async def test_a_refused_request_claims_nothing(guard: Guard) -> None:
    one = tier("one", 60_000_000, 1)
    prefix = uuid.uuid4().hex
    await guard.check(charges(prefix, [one]))
    claim = new_claim()
    refused = await guard.check(charges(prefix, [one]), claim=claim)
    assert not refused.passed
    assert refused.claim is ClaimOutcome.NONE
    assert (await guard.check([], claim=claim)).claim is ClaimOutcome.CLAIMED


async def _wait_gone(client: aioredis.Redis, key: str) -> None:
    import asyncio

    for _ in range(100):
        if not await client.exists(key):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{key} did not expire")
