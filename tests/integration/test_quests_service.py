"""The quests service through a real gRPC channel, with the real auth and wallet
services, on the real Redis and MongoDB-wire servers: completions granted
exactly once under concurrency, prerequisites in order, daily quests on an
injected clock, the leaderboard rebuilt identical, coin rewards credited once
after the wallet was down, and the public lookups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from minequest.auth.v1 import auth_pb2
from minequest.common.v1 import common_pb2
from minequest.quests.v1 import quests_pb2 as pb
from minequest.quests.v1 import quests_pb2_grpc
from minequest.wallet.v1 import wallet_pb2
from runtime.embedded import free_port
from runtime.errors import decode_rpc_error
from services.quests import leaderboard as lb
from services.quests.server import quests_parts
from tests.integration.conftest import (
    SmtpServer,
    fails,
    quests_channel,
    quests_settings,
)
from tests.integration.quests_world import DAY1, Clock, World, open_stores, running

if TYPE_CHECKING:
    from minequest.quests.v1.quests_pb2_grpc import QuestsServiceAsyncStub as Stub
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(
    tmp_path: Path,
    mongodb_uri: str,
    redis_url: str,
    database_name: str,
    smtp_server: SmtpServer,
) -> AsyncIterator[World]:
    async with (
        open_stores(tmp_path, mongodb_uri, redis_url, database_name, smtp_server) as stores,
        running(stores, Clock()) as started,
    ):
        yield started


async def create(
    quests: Stub,
    quest_id: str,
    *,
    kind: pb.QuestType.ValueType = pb.QUEST_TYPE_SOCIAL,
    xp: int = 100,
    coin: str | None = None,
    prerequisites: tuple[str, ...] = (),
    **fields: Any,
) -> pb.Quest:
    quest = pb.Quest(
        id=quest_id,
        name=f"Quest {quest_id}",
        type=kind,
        xp_reward=xp,
        prerequisite_ids=list(prerequisites),
        **fields,
    )
    if coin is not None:
        quest.coin_reward.CopyFrom(common_pb2.Money(currency="MQC", amount=coin))
    reply = await quests.UpsertQuest(pb.UpsertQuestRequest(quest=quest, mode=pb.UPSERT_MODE_CREATE))
    return reply.quest


def completing(quests: Stub, user_id: str, quest_id: str, key: str | None = None) -> Any:
    return quests.CompleteQuest(
        pb.CompleteQuestRequest(
            user_id=user_id, quest_id=quest_id, idempotency_key=key or uuid.uuid4().hex
        )
    )


async def ledger(wallet: WalletServiceAsyncStub, user_id: str) -> list[wallet_pb2.LedgerEntry]:
    reply = await wallet.ListLedgerEntries(wallet_pb2.ListLedgerEntriesRequest(user_id=user_id))
    return list(reply.entries)


async def total_xp(quests: Stub, user_id: str) -> int:
    return (await quests.ListQuests(pb.ListQuestsRequest(user_id=user_id))).total_xp


async def test_fifty_concurrent_completions_grant_xp_and_coins_once(world: World) -> None:
    await create(world.quests, "follow-x", xp=50, coin="1.5")
    user = uuid.uuid4().hex
    results = await asyncio.gather(
        *(completing(world.quests, user, "follow-x") for _ in range(50)), return_exceptions=True
    )
    wins = [r for r in results if isinstance(r, pb.CompleteQuestResponse)]
    losses = [decode_rpc_error(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(wins) == 1, [r for r in results if not isinstance(r, pb.CompleteQuestResponse)][:3]
    assert len(losses) == 49
    completion = wins[0].completion
    assert (completion.xp_earned, completion.period, completion.credit_pending) == (
        50,
        "once",
        False,
    )
    assert completion.coin_reward.amount == "1.50000000"
    for loss in losses:
        assert (loss.code, loss.reason) == (grpc.StatusCode.ALREADY_EXISTS, "already_completed")
        assert loss.metadata["completion_id"] == completion.id
        assert loss.metadata["xp_earned"] == "50"
    assert await total_xp(world.quests, user) == 50
    entries = await ledger(world.wallet, user)
    assert [(e.source, e.source_id, e.amount.amount) for e in entries] == [
        ("quests.completion", completion.id, "1.50000000")
    ]


async def test_the_same_key_fifty_times_answers_the_one_completion(world: World) -> None:
    await create(world.quests, "join-discord", xp=7, coin="2")
    user, key = uuid.uuid4().hex, uuid.uuid4().hex
    replies = await asyncio.gather(
        *(completing(world.quests, user, "join-discord", key) for _ in range(50))
    )
    assert len({r.completion.id for r in replies}) == 1
    assert {r.total_xp for r in replies} == {7}
    assert len(await ledger(world.wallet, user)) == 1


async def test_prerequisites_complete_in_order(world: World) -> None:
    await create(world.quests, "step-1", xp=10)
    await create(world.quests, "step-2", xp=20, prerequisites=("step-1",))
    await create(world.quests, "step-3", xp=30, prerequisites=("step-2",))
    user = uuid.uuid4().hex
    info = await fails(
        completing(world.quests, user, "step-2"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "prerequisite_missing",
    )
    assert info.metadata["missing"] == "step-1"
    listing = await world.quests.ListQuests(pb.ListQuestsRequest(user_id=user))
    rows = {row.quest.id: row for row in listing.quests}
    assert (rows["step-1"].available, rows["step-2"].available) == (True, False)
    assert list(rows["step-3"].missing_prerequisite_ids) == ["step-2"]
    for quest_id in ("step-1", "step-2", "step-3"):
        await completing(world.quests, user, quest_id)
    listing = await world.quests.ListQuests(pb.ListQuestsRequest(user_id=user))
    assert all(row.completed and not row.available for row in listing.quests)
    assert (listing.total_xp, listing.quests_completed) == (60, 3)


async def test_the_catalogue_pages_in_id_order_and_refuses_bad_pages(world: World) -> None:
    for quest_id in ("q-a", "q-b", "q-c"):
        await create(world.quests, quest_id)
    user = uuid.uuid4().hex

    def asking(size: int, token: str = "") -> Any:
        page = common_pb2.PageRequest(page_size=size, page_token=token)
        return world.quests.ListQuests(pb.ListQuestsRequest(user_id=user, page=page))

    first = await asking(2)
    assert [row.quest.id for row in first.quests] == ["q-a", "q-b"]
    assert first.page.next_page_token
    rest = await asking(2, first.page.next_page_token)
    assert [row.quest.id for row in rest.quests] == ["q-c"]
    assert rest.page.next_page_token == ""
    for size, token in ((-1, ""), (2, "abcde"), (2, "é")):
        await fails(asking(size, token), grpc.StatusCode.INVALID_ARGUMENT, "invalid_page_token")


async def test_daily_quests_complete_again_the_next_day_and_not_before(world: World) -> None:
    await create(world.quests, "daily-checkin", kind=pb.QUEST_TYPE_DAILY, xp=5)
    user = uuid.uuid4().hex
    first = await completing(world.quests, user, "daily-checkin")
    assert first.completion.period == "2026-03-01"
    world.clock.now = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    info = await fails(
        completing(world.quests, user, "daily-checkin"),
        grpc.StatusCode.ALREADY_EXISTS,
        "already_completed",
    )
    assert info.metadata["completion_id"] == first.completion.id
    listing = await world.quests.ListQuests(pb.ListQuestsRequest(user_id=user))
    [row] = listing.quests
    assert row.completed
    assert not row.available
    assert row.resets_at.ToDatetime(UTC) == datetime(2026, 3, 2, tzinfo=UTC)
    world.clock.now = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC)
    listing = await world.quests.ListQuests(pb.ListQuestsRequest(user_id=user))
    assert listing.quests[0].available
    second = await completing(world.quests, user, "daily-checkin")
    assert second.completion.period == "2026-03-02"
    assert second.total_xp == 10


async def test_inactive_and_unknown_quests_are_refused(world: World) -> None:
    later = DAY1 + timedelta(days=1)
    future = pb.Quest()
    future.active_from.FromDatetime(later)
    await create(world.quests, "soon", active_from=future.active_from)
    await create(world.quests, "retired")
    archived = await world.quests.ArchiveQuest(pb.ArchiveQuestRequest(quest_id="retired"))
    assert archived.quest.archived
    assert not archived.quest.active
    user = uuid.uuid4().hex
    await fails(completing(world.quests, user, "soon"), grpc.StatusCode.ABORTED, "quest_inactive")
    await fails(
        completing(world.quests, user, "retired"), grpc.StatusCode.ABORTED, "quest_inactive"
    )
    await fails(
        completing(world.quests, user, "nope"), grpc.StatusCode.NOT_FOUND, "quest_not_found"
    )
    world.clock.now = later
    assert (await completing(world.quests, user, "soon")).total_xp == 100
    listing = await world.quests.ListQuests(pb.ListQuestsRequest(user_id=user))
    assert [row.quest.id for row in listing.quests] == ["soon"]  # archived quests leave the list


async def test_admin_writes_are_validated(world: World) -> None:
    quests = world.quests
    await create(quests, "base")

    def upsert(quest: pb.Quest, mode: pb.UpsertMode.ValueType = pb.UPSERT_MODE_CREATE) -> Any:
        return quests.UpsertQuest(pb.UpsertQuestRequest(quest=quest, mode=mode))

    good: dict[str, Any] = {"name": "A quest", "type": pb.QUEST_TYPE_SOCIAL, "xp_reward": 10}
    bad = [
        (pb.Quest(**{**good, "name": " "}), "invalid_quest", "quest.name"),
        (pb.Quest(**{**good, "type": pb.QUEST_TYPE_UNSPECIFIED}), "invalid_quest", "quest.type"),
        (pb.Quest(**{**good, "xp_reward": -1}), "invalid_quest", "quest.xp_reward"),
        (pb.Quest(**good, id="Bad Id"), "invalid_quest", "quest.id"),
        (
            pb.Quest(**good, coin_reward=common_pb2.Money(currency="DOGE", amount="1")),
            "unknown_currency",
            "quest.coin_reward.currency",
        ),
        (
            pb.Quest(**good, coin_reward=common_pb2.Money(currency="MQC", amount="0.000000001")),
            "invalid_quest",
            "quest.coin_reward.amount",
        ),
    ]
    for quest, reason, field in bad:
        info = await fails(upsert(quest), grpc.StatusCode.INVALID_ARGUMENT, reason)
        assert info.field == field
    missing = pb.Quest(**good, prerequisite_ids=["ghost"])
    await fails(upsert(missing), grpc.StatusCode.NOT_FOUND, "prerequisite_not_found")
    await fails(upsert(pb.Quest(**good, id="base")), grpc.StatusCode.ALREADY_EXISTS, "quest_exists")
    await create(quests, "next", prerequisites=("base",))
    cycle = pb.Quest(**good, id="base", prerequisite_ids=["next"])
    await fails(upsert(cycle, pb.UPSERT_MODE_UPDATE), grpc.StatusCode.INVALID_ARGUMENT)
    await fails(
        upsert(pb.Quest(**good, id="ghost"), pb.UPSERT_MODE_UPDATE),
        grpc.StatusCode.NOT_FOUND,
        "quest_not_found",
    )
    renamed = await upsert(
        pb.Quest(**{**good, "name": "Renamed"}, id="base"), pb.UPSERT_MODE_UPDATE
    )
    assert (renamed.quest.name, renamed.quest.id) == ("Renamed", "base")
    made = await upsert(pb.Quest(**good))
    assert len(made.quest.id) == 32  # generated when the admin names none


async def test_leaderboard_ties_cache_and_rebuild(world: World, redis: aioredis.Redis) -> None:
    await create(world.quests, "q10", xp=10)
    await create(world.quests, "q20", xp=20)
    first, second, third = (f"user-{n}-{uuid.uuid4().hex[:6]}" for n in range(3))
    await completing(world.quests, first, "q20")
    world.clock.advance(seconds=1)
    await completing(world.quests, second, "q10")
    world.clock.advance(seconds=1)
    await completing(world.quests, third, "q20")  # ties with `first`, who got there earlier
    world.clock.advance(seconds=1)
    await completing(world.quests, second, "q20")  # 30 XP: first place

    hits = REGISTRY.get_sample_value("cache_hits_total", {"cache": "leaderboard"}) or 0.0
    board = await world.quests.GetLeaderboard(pb.GetLeaderboardRequest(limit=10, user_id=third))
    assert not board.cached
    assert [(e.rank, e.user_id, e.total_xp) for e in board.entries] == [
        (1, second, 30),
        (2, first, 20),
        (3, third, 20),
    ]
    assert (board.own.rank, board.own.user_id, board.own.total_xp) == (3, third, 20)
    again = await world.quests.GetLeaderboard(pb.GetLeaderboardRequest(limit=2))
    assert again.cached
    assert [e.user_id for e in again.entries] == [second, first]
    assert REGISTRY.get_sample_value("cache_hits_total", {"cache": "leaderboard"}) == hits + 1

    # A change in the top drops the cache.
    world.clock.advance(seconds=1)
    await completing(world.quests, third, "q10")
    fresh = await world.quests.GetLeaderboard(pb.GetLeaderboardRequest(limit=10))
    assert not fresh.cached
    assert [e.user_id for e in fresh.entries] == [second, third, first]

    before = await redis.zrevrange(lb.SCORES, 0, -1, withscores=True)
    members = await redis.hgetall(lb.MEMBERS)
    await redis.delete(lb.SCORES, lb.MEMBERS, lb.CACHE)
    rebuilt = await world.quests.GetLeaderboard(pb.GetLeaderboardRequest(limit=10))
    assert [(e.user_id, e.total_xp) for e in rebuilt.entries] == [
        (e.user_id, e.total_xp) for e in fresh.entries
    ]
    assert await redis.zrevrange(lb.SCORES, 0, -1, withscores=True) == before
    assert await redis.hgetall(lb.MEMBERS) == members
    with pytest.raises(grpc.aio.AioRpcError):
        await world.quests.GetLeaderboard(pb.GetLeaderboardRequest(limit=101))


async def test_concurrent_rebuilds_and_parked_updates(world: World, redis: aioredis.Redis) -> None:
    await create(world.quests, "q1", xp=1)
    users = [uuid.uuid4().hex for _ in range(5)]
    for user in users:
        await completing(world.quests, user, "q1")
        world.clock.advance(milliseconds=5)
    await world.quests.GetLeaderboard(pb.GetLeaderboardRequest())  # builds the set
    before = await redis.zrevrange(lb.SCORES, 0, -1, withscores=True)
    await redis.delete(lb.SCORES)
    async with quests_parts(world.settings, world.clock) as parts:
        counts = await asyncio.gather(*(parts.leaderboard.rebuild() for _ in range(5)))
        # One rebuilt; the others found its lock.
        assert sorted(counts, key=lambda c: -1 if c is None else c) == [None] * 4 + [5]
        # An update arriving while the set is missing is parked, then applied.
        await redis.delete(lb.SCORES)
        late = uuid.uuid4().hex
        assert await parts.leaderboard.record(late, 99, world.clock()) == -2
        assert await parts.leaderboard.rebuild() == 5 + 1
    after = await redis.zrevrange(lb.SCORES, 0, -1, withscores=True)
    assert len(before) == 5 + 1  # and the sentinel
    assert str(after[0][0]).endswith(late)
    assert after[1:] == before


async def test_a_credit_missed_while_the_wallet_was_down_is_swept_once(
    world: World, mongodb_uri: str, redis_url: str, database_name: str
) -> None:
    await create(world.quests, "mint", xp=1, coin="3")
    dead = quests_settings(
        mongodb_uri,
        redis_url,
        database_name,
        auth_addr=world.settings.auth_service_addr,
        wallet_addr=f"127.0.0.1:{free_port()}",
    )
    user = uuid.uuid4().hex
    async with quests_channel(dead, world.clock) as channel:
        stub = quests_pb2_grpc.QuestsServiceStub(channel)
        reply = await completing(stub, user, "mint")
    assert reply.completion.credit_pending  # completed; the coins follow
    assert await ledger(world.wallet, user) == []

    async with quests_parts(world.settings, world.clock) as parts:
        assert (await parts.credits.sweep()).attempted == 0  # too fresh: the request may still run
        world.clock.advance(seconds=60)
        report = await parts.credits.sweep()
        assert (report.attempted, report.confirmed, report.failed) == (1, 1, 0)
        assert (await parts.credits.sweep()).attempted == 0
        assert await parts.store.count_pending_credits() == 0
    entries = await ledger(world.wallet, user)
    assert [(e.source_id, e.amount.amount) for e in entries] == [
        (reply.completion.id, "3.00000000")
    ]


async def test_a_credit_confirmed_but_not_recorded_is_not_paid_twice(world: World) -> None:
    """A crash after the wallet credited but before the flag was cleared."""
    await create(world.quests, "mint2", xp=1, coin="1")
    user = uuid.uuid4().hex
    reply = await completing(world.quests, user, "mint2")
    async with quests_parts(world.settings, world.clock) as parts:
        await parts.store.completions.update_one(
            {"_id": reply.completion.id}, {"$set": {"credit_pending": True}}
        )
        world.clock.advance(seconds=60)
        report = await parts.credits.sweep()
        assert report.confirmed == 1
    assert len(await ledger(world.wallet, user)) == 1


async def test_interaction_and_eligibility_by_wallet(world: World) -> None:
    wallet = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    registered = await world.auth.Register(
        auth_pb2.RegisterRequest(
            wallet_address=wallet, email=f"q-{uuid.uuid4().hex[:8]}@example.com", username="digger"
        )
    )
    user = registered.user.id
    await create(world.quests, "tweet", xp=15)
    await create(world.quests, "never", xp=1)
    done = await completing(world.quests, user, "tweet")

    reply = await world.quests.GetInteraction(pb.GetInteractionRequest(wallet_address=wallet))
    assert reply.has_interacted
    assert reply.wallet_address == registered.user.wallet_address
    assert (reply.username, reply.total_xp, reply.quests_completed) == ("digger", 15, 1)
    [item] = reply.completed_quests
    assert (item.quest_id, item.quest_name, item.xp_earned) == ("tweet", "Quest tweet", 15)
    assert item.completed_at == done.completion.completed_at

    stranger = "0x" + "ab" * 20
    unknown = await world.quests.GetInteraction(pb.GetInteractionRequest(wallet_address=stranger))
    assert (unknown.has_interacted, unknown.total_xp, unknown.username) == (False, 0, "")
    assert unknown.wallet_address.lower() == stranger
    info = await fails(
        world.quests.GetInteraction(pb.GetInteractionRequest(wallet_address="0x123")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_wallet_address",
    )
    assert info.field == "wallet_address"

    def check(quest_id: str, address: str) -> Any:
        return world.quests.CheckCompletion(
            pb.CheckCompletionRequest(quest_id=quest_id, address=address)
        )

    assert (await check("tweet", wallet.upper().replace("0X", "0x"))).completed
    assert not (await check("never", wallet)).completed
    assert not (await check("tweet", stranger)).completed
    await fails(check("ghost", wallet), grpc.StatusCode.NOT_FOUND, "quest_not_found")
    await fails(check("tweet", "nope"), grpc.StatusCode.INVALID_ARGUMENT, "invalid_wallet_address")


async def test_public_profiles_from_auth(world: World) -> None:
    wallet = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    user = (
        await world.auth.Register(
            auth_pb2.RegisterRequest(
                wallet_address=wallet, email=f"p-{uuid.uuid4().hex[:8]}@example.com"
            )
        )
    ).user
    found = await world.auth.GetPublicProfile(
        auth_pb2.GetPublicProfileRequest(wallet_address=wallet)
    )
    assert (found.profile.user_id, found.profile.username) == (user.id, "")
    assert found.profile.wallet_address == user.wallet_address
    await fails(
        world.auth.GetPublicProfile(
            auth_pb2.GetPublicProfileRequest(wallet_address="0x" + "cd" * 20)
        ),
        grpc.StatusCode.NOT_FOUND,
        "user_not_found",
    )
    await fails(
        world.auth.GetPublicProfile(auth_pb2.GetPublicProfileRequest(wallet_address="0xZZ")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_wallet_address",
    )
    listed = await world.auth.ListPublicProfiles(
        auth_pb2.ListPublicProfilesRequest(user_ids=[user.id, "unknown", user.id])
    )
    assert [p.user_id for p in listed.profiles] == [user.id]
    await fails(
        world.auth.ListPublicProfiles(
            auth_pb2.ListPublicProfilesRequest(user_ids=[str(n) for n in range(501)])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
