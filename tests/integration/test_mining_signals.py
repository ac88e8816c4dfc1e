"""Bot signals, suspects, shadow mode and the mined-coin leaderboards on real
Redis (and the real mining and auth services where a test goes through gRPC)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import redis.asyncio as aioredis

from minequest.mining.v1 import mining_pb2 as pb
from minequest.mining.v1 import mining_pb2_grpc
from services.mining import leaderboards, signals, suspects
from services.mining.leaderboards import Period
from services.mining.settings import STREAM, BotSignals, MiningSettings
from tests.integration.conftest import companion_auth, fails, mining_channel, mining_env

if TYPE_CHECKING:
    from minequest.mining.v1.mining_pb2_grpc import MiningServiceAsyncStub as Stub

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = BotSignals()
START = NOW.timestamp()


def user() -> str:
    return uuid.uuid4().hex


def timer(count: int, every: float, taps: int = 1, start: float = START) -> list[tuple[float, int]]:
    return [(start + i * every, taps) for i in range(count)]


def thumb(count: int, seed: int, start: float = START) -> list[tuple[float, int]]:
    """A person's batches: irregular gaps, a few taps each."""
    rng = random.Random(seed)
    at, clicks = start, []
    for _ in range(count):
        at += rng.uniform(0.4, 2.5)
        clicks.append((at, rng.randint(1, 15)))
    return clicks


async def observe_in_batches(
    redis: aioredis.Redis, clicks: dict[str, list[tuple[float, int]]], size: int = 7
) -> list[str]:
    """Feed the clicks as a worker would, a few per user per batch."""
    flagged: list[str] = []
    longest = max(len(rows) for rows in clicks.values())
    for start in range(0, longest, size):
        batch = {uid: rows[start : start + size] for uid, rows in clicks.items()}
        flagged += await signals.observe(redis, batch, SETTINGS, NOW)
    return flagged


async def test_a_timer_is_flagged_once_with_why_and_people_are_not(redis: aioredis.Redis) -> None:
    bot, people = user(), [user() for _ in range(5)]
    clicks = {bot: timer(45, 0.1)} | {uid: thumb(60, seed) for seed, uid in enumerate(people)}
    assert await observe_in_batches(redis, clicks) == [bot]
    # More of the same does not flag it again.
    assert (
        await signals.observe(redis, {bot: timer(40, 0.1, start=START + 10)}, SETTINGS, NOW) == []
    )
    rows, total = await suspects.page(redis, 0, 10)
    assert total == 1
    (suspect,) = rows
    assert suspect.user_id == bot
    assert suspect.flagged_at == NOW
    (reason,) = suspect.reasons
    assert reason.code == signals.FIXED_INTERVAL
    assert reason.text.startswith("interval 100.0 ms ± 0.0 ms over 30 intervals")


async def test_a_long_pause_restarts_the_interval_window(redis: aioredis.Redis) -> None:
    uid = user()
    first = timer(20, 0.1)
    after_lunch = timer(20, 0.1, start=START + 3600)
    assert await signals.observe(redis, {uid: first + after_lunch}, SETTINGS, NOW) == []
    state = await redis.hgetall(suspects.state_key(uid))
    assert int(state["n"]) == 19
    assert await redis.ttl(suspects.state_key(uid)) > 86_400


async def test_a_batch_observed_again_by_a_retrying_worker_changes_nothing(
    redis: aioredis.Redis,
) -> None:
    uid = user()
    batch = {uid: [(START + i * 0.5, 200) for i in range(9)]}
    assert await signals.observe(redis, batch, SETTINGS, NOW) == []
    before = await redis.hgetall(suspects.state_key(uid))
    assert await signals.observe(redis, batch, SETTINGS, NOW) == []
    assert await redis.hgetall(suspects.state_key(uid)) == before
    assert before["c"] == "9"


async def test_a_sustained_rate_at_the_cap_is_flagged_after_a_minute(redis: aioredis.Redis) -> None:
    uid, rng = user(), random.Random(7)
    # 19-20 taps a second (the cap is 20/s), at irregular moments: no fixed interval.
    clicks, at = [], START
    while at < START + 75:
        gap = rng.uniform(0.5, 1.5)
        at += gap
        clicks.append((at, round(19.5 * gap)))
    assert await observe_in_batches(redis, {uid: clicks[:50]}) == []
    assert await observe_in_batches(redis, {uid: clicks[50:]}) == [uid]
    (suspect,), _ = await suspects.page(redis, 0, 10)
    assert [r.code for r in suspect.reasons] == [signals.SUSTAINED_MAX_RATE]


async def test_clicks_in_a_row_at_the_per_click_maximum_are_flagged(redis: aioredis.Redis) -> None:
    uid, rng = user(), random.Random(5)
    at, clicks = START, []
    for i in range(12):
        at += rng.uniform(10, 40)
        clicks.append((at, SETTINGS.max_taps_per_click if i != 1 else 3))
    # The run is broken after the first click: 10 in a row come only with the last.
    assert await signals.observe(redis, {uid: clicks[:11]}, SETTINGS, NOW) == []
    assert await signals.observe(redis, {uid: clicks[11:]}, SETTINGS, NOW) == [uid]
    (suspect,), _ = await suspects.page(redis, 0, 10)
    assert suspect.reasons[0].text == "10 clicks in a row at the 200-tap maximum"


async def test_clearing_a_suspect_resets_its_signal_state(redis: aioredis.Redis) -> None:
    uid = user()
    assert await signals.observe(redis, {uid: timer(31, 0.25)}, SETTINGS, NOW) == [uid]
    assert await suspects.count(redis) == 1
    cleared = await suspects.clear(redis, uid)
    assert cleared is not None
    assert cleared.reasons[0].code == signals.FIXED_INTERVAL
    assert await suspects.count(redis) == 0
    assert await redis.exists(suspects.state_key(uid)) == 0
    assert await suspects.clear(redis, uid) is None
    # It starts over: 29 more intervals are not a window yet.
    assert (
        await signals.observe(redis, {uid: timer(30, 0.25, start=START + 60)}, SETTINGS, NOW) == []
    )


async def test_suspects_are_listed_newest_first_in_pages(redis: aioredis.Redis) -> None:
    users = [user() for _ in range(5)]
    for i, uid in enumerate(users):
        flag = suspects.Flag("batches_at_cap", f"flag {i}", NOW + timedelta(seconds=i))
        await suspects.flag(redis, {uid: [flag]}, NOW + timedelta(seconds=i))
    first, total = await suspects.page(redis, 0, 2)
    second, _ = await suspects.page(redis, 2, 10)
    assert total == 5
    assert [s.user_id for s in first + second] == users[::-1]


# leaderboards --------------------------------------------------------------------------


async def test_a_batch_is_posted_on_the_day_and_week_boards_once(redis: aioredis.Redis) -> None:
    a, b = user(), user()
    assert await leaderboards.post_batch(redis, "outbox-1", {a: 500, b: 300}, NOW) is True
    assert await leaderboards.post_batch(redis, "outbox-1", {a: 500, b: 300}, NOW) is False
    assert await leaderboards.post_batch(redis, "outbox-2", {b: 400, a: 0}, NOW) is True
    day, week = (leaderboards.board_key(p, NOW) for p in (Period.DAY, Period.WEEK))
    assert await redis.zrevrange(day, 0, -1, withscores=True) == [(b, 700.0), (a, 500.0)]
    assert await redis.zrevrange(week, 0, -1, withscores=True) == [(b, 700.0), (a, 500.0)]
    assert 2 * 86_400 < await redis.ttl(day) <= 3 * 86_400
    assert 20 * 86_400 < await redis.ttl(week) <= 21 * 86_400
    posted = await redis.ttl(leaderboards.posted_key("outbox-1"))
    assert 13 * 86_400 < posted <= 14 * 86_400


async def test_a_new_day_is_a_new_board_and_the_week_keeps_adding(redis: aioredis.Redis) -> None:
    uid = user()
    await leaderboards.post_batch(redis, "monday", {uid: 5}, datetime(2026, 11, 30, 9, tzinfo=UTC))
    await leaderboards.post_batch(redis, "tuesday", {uid: 7}, datetime(2026, 12, 1, 9, tzinfo=UTC))
    tuesday = await leaderboards.read(redis, Period.DAY, NOW, limit=10, user_id=uid)
    week = await leaderboards.read(redis, Period.WEEK, NOW, limit=10, user_id=uid)
    assert tuesday.own == leaderboards.Row(1, uid, 7)
    assert week.own == leaderboards.Row(1, uid, 12)


async def test_a_read_answers_the_top_the_own_row_and_the_players_around(
    redis: aioredis.Redis,
) -> None:
    users = [f"u{i:02d}" for i in range(20)]
    await leaderboards.post_batch(
        redis, "batch", {uid: (20 - i) * 10 for i, uid in enumerate(users)}, NOW
    )
    standing = await leaderboards.read(redis, Period.DAY, NOW, limit=3, user_id="u10", around=2)
    assert [(r.rank, r.user_id, r.units) for r in standing.top] == [
        (1, "u00", 200),
        (2, "u01", 190),
        (3, "u02", 180),
    ]
    assert standing.own == leaderboards.Row(11, "u10", 100)
    assert [r.user_id for r in standing.around] == ["u08", "u09", "u10", "u11", "u12"]
    assert [r.rank for r in standing.around] == [9, 10, 11, 12, 13]
    top = await leaderboards.read(redis, Period.DAY, NOW, limit=5, user_id="u01", around=3)
    assert [r.user_id for r in top.around] == ["u00", "u01", "u02", "u03", "u04"]
    nobody = await leaderboards.read(redis, Period.DAY, NOW, limit=1, user_id="ghost", around=2)
    assert nobody.own is None
    assert nobody.around == ()


# through the mining service ----------------------------------------------------------


@pytest.fixture
async def mining(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> AsyncIterator[Stub]:
    async with companion_auth(mongodb_uri, database_name) as auth_address:
        env = mining_env(mongodb_uri, redis_url, database_name, AUTH_SERVICE_ADDR=auth_address)
        async with mining_channel(MiningSettings.from_env(env)) as channel:
            yield mining_pb2_grpc.MiningServiceStub(channel)


async def click(mining: Stub, uid: str) -> pb.SubmitClickResponse:
    return await mining.SubmitClick(
        pb.SubmitClickRequest(user_id=uid, idempotency_key=uuid.uuid4().hex, count=2)
    )


async def rewards_queued(redis: aioredis.Redis, uid: str) -> list[int]:
    entries: Any = await redis.xrange(STREAM)
    return [int(fields["r"]) for _, fields in entries if fields["u"] == uid]


async def test_a_flagged_account_clicks_in_the_shadow_until_an_admin_clears_it(
    mining: Stub, redis: aioredis.Redis
) -> None:
    uid = user()
    flag = suspects.Flag(signals.FIXED_INTERVAL, "interval 100.0 ms ± 0.1 ms", NOW)
    assert await suspects.flag(redis, {uid: [flag]}, NOW) == [uid]
    shadowed = await click(mining, uid)
    assert shadowed.state == pb.CLICK_STATE_QUEUED
    assert shadowed.accepted_taps == 2
    listed = await mining.ListSuspects(pb.ListSuspectsRequest())
    assert [(s.user_id, s.shadowed) for s in listed.suspects] == [(uid, True)]
    assert listed.suspects[0].reasons[0].text == "interval 100.0 ms ± 0.1 ms"
    cleared = await mining.ClearSuspect(pb.ClearSuspectRequest(suspect_id=uid))
    assert cleared.suspect.user_id == uid
    await click(mining, uid)
    assert await rewards_queued(redis, uid) == [0, 2 * 100_000]
    await fails(
        mining.ClearSuspect(pb.ClearSuspectRequest(suspect_id=uid)),
        grpc.StatusCode.NOT_FOUND,
        "suspect_not_found",
    )


async def test_with_shadow_mode_off_a_flagged_account_is_only_listed(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    uid = user()
    await suspects.flag(redis, {uid: [suspects.Flag("batches_at_cap", "why", NOW)]}, NOW)
    env = mining_env(mongodb_uri, redis_url, database_name, MINING_BOT_SHADOW_MODE="false")
    async with mining_channel(MiningSettings.from_env(env)) as channel:
        stub = mining_pb2_grpc.MiningServiceStub(channel)
        await click(stub, uid)
        listed = await stub.ListSuspects(pb.ListSuspectsRequest())
    assert await rewards_queued(redis, uid) == [2 * 100_000]
    assert [(s.user_id, s.shadowed) for s in listed.suspects] == [(uid, False)]


async def test_the_mined_leaderboard_rpc_answers_money_and_the_callers_standing(
    mining: Stub, redis: aioredis.Redis
) -> None:
    now = datetime.now(UTC)
    await leaderboards.post_batch(redis, uuid.uuid4().hex, {"a": 300, "b": 200, "c": 100}, now)
    reply = await mining.GetMinedLeaderboard(
        pb.GetMinedLeaderboardRequest(period=pb.LEADERBOARD_PERIOD_WEEK, user_id="c", around=1)
    )
    assert reply.period_key == leaderboards.period_id(Period.WEEK, now)
    assert list(reply.entries) == []  # around without a limit: no top
    assert [(e.rank, e.user_id) for e in reply.around] == [(2, "b"), (3, "c")]
    assert reply.own.rank == 3
    assert reply.own.mined.amount == "0.00000100"
    top = await mining.GetMinedLeaderboard(pb.GetMinedLeaderboardRequest(limit=2))
    assert [(e.user_id, e.units, e.username) for e in top.entries] == [
        ("a", 300, ""),
        ("b", 200, ""),
    ]
    assert not top.HasField("own")
    assert top.max_age_seconds == 10
    await fails(
        mining.GetMinedLeaderboard(pb.GetMinedLeaderboardRequest(limit=101)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
