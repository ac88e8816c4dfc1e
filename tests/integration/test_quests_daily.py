"""Daily rewards and the around-me leaderboard through a real quests service
(gRPC), with the real auth and wallet services, on the real Redis and
MongoDB-wire servers: concurrent claims paid once, streaks grown and reset on
an injected clock, the day boundary's offset, a lost credit paid by the next
look and by the sweeper exactly once; neighbours on the leaderboard with their
ranks."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import redis.asyncio as aioredis

from minequest.quests.v1 import quests_pb2 as pb
from minequest.quests.v1 import quests_pb2_grpc
from minequest.wallet.v1 import wallet_pb2
from runtime.embedded import free_port
from runtime.errors import decode_rpc_error
from services.quests.server import quests_parts
from tests.integration.conftest import (
    SmtpServer,
    fails,
    quests_channel,
)
from tests.integration.quests_world import Clock, Stores, World, open_stores, running

if TYPE_CHECKING:
    from minequest.quests.v1.quests_pb2_grpc import QuestsServiceAsyncStub as Stub
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub

pytestmark = pytest.mark.integration

#: A short table, so the cap is reached in a test.
TABLE = {"DAILY_REWARDS": "0.000001,0.000002,0.000003"}  # 100, 200, 300 units


@pytest.fixture
async def stores(
    tmp_path: Path,
    mongodb_uri: str,
    redis_url: str,
    database_name: str,
    smtp_server: SmtpServer,
) -> AsyncIterator[Stores]:
    async with open_stores(tmp_path, mongodb_uri, redis_url, database_name, smtp_server) as opened:
        yield opened


def daily(stores: Stores, clock: Clock, **extra: str) -> AbstractAsyncContextManager[World]:
    """The quests service with the short reward table (and ``extra``)."""
    return running(stores, clock, **{**TABLE, **extra})


@pytest.fixture
async def world(stores: Stores) -> AsyncIterator[World]:
    async with daily(stores, Clock()) as started:
        yield started


def claiming(quests: Stub, user_id: str, key: str | None = None) -> Any:
    return quests.ClaimDailyReward(
        pb.ClaimDailyRewardRequest(user_id=user_id, idempotency_key=key or uuid.uuid4().hex)
    )


async def looking(quests: Stub, user_id: str) -> pb.GetDailyRewardResponse:
    return await quests.GetDailyReward(pb.GetDailyRewardRequest(user_id=user_id))


async def ledger(wallet: WalletServiceAsyncStub, user_id: str) -> list[tuple[str, str, str]]:
    reply = await wallet.ListLedgerEntries(wallet_pb2.ListLedgerEntriesRequest(user_id=user_id))
    return [(e.source, e.source_id, e.amount.amount) for e in reply.entries]


# daily rewards ---------------------------------------------------------------------


async def test_thirty_concurrent_claims_pay_once_and_refuse_the_rest(world: World) -> None:
    user = uuid.uuid4().hex
    results = await asyncio.gather(
        *(claiming(world.quests, user) for _ in range(30)), return_exceptions=True
    )
    wins = [r for r in results if isinstance(r, pb.ClaimDailyRewardResponse)]
    losses = [decode_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(wins) == 1, [r for r in results if not isinstance(r, pb.ClaimDailyRewardResponse)]
    assert len(losses) == 29
    claim = wins[0].claim
    assert (claim.id, claim.day, claim.streak, claim.credit_pending) == (
        f"{user}:2026-03-01",
        "2026-03-01",
        1,
        False,
    )
    assert (claim.reward.currency, claim.reward.units, claim.reward.amount) == (
        "MQC",
        100,
        "0.00000100",
    )
    for loss in losses:
        assert (loss.code, loss.reason) == (grpc.StatusCode.ALREADY_EXISTS, "already_claimed")
        assert loss.metadata["claim_id"] == claim.id
        assert (loss.metadata["streak"], loss.metadata["units"]) == ("1", "100")
        assert loss.metadata["claimed_at"] == claim.claimed_at.ToJsonString()
    assert await ledger(world.wallet, user) == [("rewards.daily", claim.id, "0.00000100")]
    assert wins[0].next_reward.units == 200
    assert wins[0].next_claim_at.ToDatetime(UTC) == datetime(2026, 3, 2, tzinfo=UTC)


async def test_the_same_key_again_answers_the_same_claim(world: World) -> None:
    user, key = uuid.uuid4().hex, uuid.uuid4().hex
    first = await claiming(world.quests, user, key)
    again = await claiming(world.quests, user, key)
    assert again.claim == first.claim
    await fails(claiming(world.quests, user), grpc.StatusCode.ALREADY_EXISTS, "already_claimed")
    await fails(
        world.quests.ClaimDailyReward(pb.ClaimDailyRewardRequest(user_id=user)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key_required",
    )
    assert len(await ledger(world.wallet, user)) == 1


async def test_consecutive_days_grow_the_streak_to_the_cap_and_a_missed_day_resets_it(
    world: World,
) -> None:
    user = uuid.uuid4().hex
    paid = []
    for _ in range(4):
        reply = await claiming(world.quests, user)
        paid.append((reply.claim.day, reply.claim.streak, reply.claim.reward.units))
        world.clock.advance(days=1)
    assert paid == [
        ("2026-03-01", 1, 100),
        ("2026-03-02", 2, 200),
        ("2026-03-03", 3, 300),
        ("2026-03-04", 4, 300),  # past the table: its last value
    ]
    status = await looking(world.quests, user)  # 2026-03-05, not claimed yet: streak alive
    assert (status.today, status.streak, status.claimed_today) == ("2026-03-05", 4, False)
    assert not status.HasField("claim")

    world.clock.advance(days=1)  # 2026-03-05 missed
    status = await looking(world.quests, user)
    assert (status.streak, status.today_reward.units, status.next_reward.units) == (0, 100, 100)
    assert status.next_claim_at.ToDatetime(UTC) == world.clock.now
    reply = await claiming(world.quests, user)
    assert (reply.claim.day, reply.claim.streak, reply.claim.reward.units) == ("2026-03-06", 1, 100)
    assert [units for _, _, units in paid] == [100, 200, 300, 300]
    entries = await ledger(world.wallet, user)
    assert sorted(source_id for _, source_id, _ in entries) == [
        f"{user}:2026-03-0{day}" for day in (1, 2, 3, 4, 6)
    ]


async def test_the_status_says_what_today_and_the_next_claim_pay(world: World) -> None:
    user = uuid.uuid4().hex
    before = await looking(world.quests, user)
    assert (before.streak, before.claimed_today, before.today) == (0, False, "2026-03-01")
    assert [m.units for m in before.reward_table] == [100, 200, 300]
    assert [m.amount for m in before.reward_table] == ["0.00000100", "0.00000200", "0.00000300"]
    assert (before.today_reward.units, before.next_reward.units) == (100, 100)

    claimed = await claiming(world.quests, user)
    after = await looking(world.quests, user)
    assert (after.streak, after.claimed_today) == (1, True)
    assert (after.today_reward.units, after.next_reward.units) == (100, 200)
    assert after.next_claim_at.ToDatetime(UTC) == datetime(2026, 3, 2, tzinfo=UTC)
    assert after.claim == claimed.claim


async def test_the_day_starts_at_the_configured_offset_from_utc(stores: Stores) -> None:
    # UTC+2: the day of 2026-03-02 starts at 22:00 UTC on 2026-03-01.
    clock = Clock(datetime(2026, 3, 1, 21, 59, tzinfo=UTC))
    async with daily(stores, clock, DAILY_REWARD_UTC_OFFSET_MINUTES="120") as world:
        user = uuid.uuid4().hex
        first = await claiming(world.quests, user)
        assert first.claim.day == "2026-03-01"
        assert first.next_claim_at.ToDatetime(UTC) == datetime(2026, 3, 1, 22, tzinfo=UTC)
        clock.advance(minutes=1)
        second = await claiming(world.quests, user)
        assert (second.claim.day, second.claim.streak) == ("2026-03-02", 2)


async def test_a_credit_lost_to_a_wallet_outage_is_paid_once_by_the_next_look(
    world: World,
) -> None:
    dead = dataclasses.replace(world.settings, wallet_service_addr=f"127.0.0.1:{free_port()}")
    user = uuid.uuid4().hex
    async with quests_channel(dead, world.clock) as channel:
        stub = quests_pb2_grpc.QuestsServiceStub(channel)
        reply = await claiming(stub, user)
        assert reply.claim.credit_pending  # claimed; the coins follow
        again = await fails(claiming(stub, user), grpc.StatusCode.ALREADY_EXISTS)
        assert again.reason == "already_claimed"
    assert await ledger(world.wallet, user) == []

    status = await looking(world.quests, user)  # the wallet is back: this look pays it
    assert status.claim.credit_pending is False
    assert await looking(world.quests, user) == status
    await fails(claiming(world.quests, user), grpc.StatusCode.ALREADY_EXISTS, "already_claimed")
    assert await ledger(world.wallet, user) == [("rewards.daily", reply.claim.id, "0.00000100")]


async def test_the_sweeper_pays_a_lost_daily_credit_once(world: World) -> None:
    """A crash after the claim was committed and before the wallet answered."""
    user = uuid.uuid4().hex
    reply = await claiming(world.quests, user)
    async with quests_parts(world.settings, world.clock) as parts:
        await parts.store.daily_claims.update_one(
            {"_id": reply.claim.id}, {"$set": {"credit_pending": True}}
        )
        assert await parts.store.count_pending_credits() == 1
        assert (await parts.credits.sweep()).attempted == 0  # too fresh: the request may still run
        world.clock.advance(seconds=60)
        report = await parts.credits.sweep()
        assert (report.attempted, report.confirmed, report.failed) == (1, 1, 0)
        assert await parts.store.count_pending_credits() == 0
    assert await ledger(world.wallet, user) == [("rewards.daily", reply.claim.id, "0.00000100")]


# the around-me leaderboard ------------------------------------------------------------


async def ranked_users(world: World, count: int) -> list[str]:
    """``count`` users with the same XP, ranked in the order they reached it."""
    quest = pb.Quest(id="climb", name="Climb", type=pb.QUEST_TYPE_SOCIAL, xp_reward=10)
    await world.quests.UpsertQuest(pb.UpsertQuestRequest(quest=quest, mode=pb.UPSERT_MODE_CREATE))
    users = [f"u{index:02d}-{uuid.uuid4().hex[:6]}" for index in range(count)]
    for user in users:
        await world.quests.CompleteQuest(
            pb.CompleteQuestRequest(user_id=user, quest_id="climb", idempotency_key=user)
        )
        world.clock.advance(seconds=1)
    return users


def around(world: World, user_id: str, count: int = 0) -> Any:
    return world.quests.GetLeaderboardAround(
        pb.GetLeaderboardAroundRequest(user_id=user_id, count=count)
    )


async def test_around_me_lists_the_neighbours_with_their_ranks(
    world: World, redis: aioredis.Redis
) -> None:
    users = await ranked_users(world, 9)
    middle = await around(world, users[4], 2)
    assert [(e.rank, e.user_id) for e in middle.entries] == [
        (rank, users[rank - 1]) for rank in range(3, 8)
    ]
    assert (middle.own.rank, middle.own.user_id, middle.own.total_xp) == (5, users[4], 10)

    top = await around(world, users[0], 2)
    assert [e.rank for e in top.entries] == [1, 2, 3]
    bottom = await around(world, users[8])  # default count: 5 each side
    assert [e.rank for e in bottom.entries] == [4, 5, 6, 7, 8, 9]
    assert bottom.own.rank == 9


async def test_a_user_not_on_the_leaderboard_gets_an_empty_answer(
    world: World, redis: aioredis.Redis
) -> None:
    await ranked_users(world, 2)
    reply = await around(world, uuid.uuid4().hex)
    assert list(reply.entries) == []
    assert not reply.HasField("own")


async def test_around_me_refuses_a_count_outside_one_to_fifty(
    world: World, redis: aioredis.Redis
) -> None:
    for count in (-1, 51):
        info = await fails(
            around(world, "someone", count), grpc.StatusCode.INVALID_ARGUMENT, "invalid_count"
        )
        assert info.field == "count"
