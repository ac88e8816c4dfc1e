"""Boost purchases on real Redis, MongoDB-wire and wallet servers: the debit and
the level change together or not at all, through every crash point; the click
and peek scripts apply the levels; the service answers them."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from minequest.common.v1 import common_pb2
from minequest.mining.v1 import mining_pb2 as pb
from minequest.mining.v1 import mining_pb2_grpc
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.redis_pipe import PipelinedRedis
from services.mining.boosts import DEFAULT_FILE, Catalogue, load_boosts
from services.mining.clicks import BOOST_FIELDS, Click, ClickGate, boosts_key
from services.mining.errors import (
    BoostLevelChanged,
    BoostMaxLevel,
    BoostNotFound,
    IdempotencyKeyReused,
    InsufficientFunds,
    PurchaseInFlight,
    WalletUnavailable,
)
from services.mining.purchases import SOURCE, Purchases, State, purchase_id
from services.mining.settings import STREAM, MiningSettings
from services.wallet.server import wallet_lifespan
from tests.integration.conftest import (
    companion_auth,
    credit_request,
    fails,
    mining_channel,
    mining_env,
    served_address,
    wallet_settings,
)
from tests.integration.test_wallet_service import assert_reconciled

if TYPE_CHECKING:
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub

pytestmark = pytest.mark.integration

CATALOGUE = load_boosts(DEFAULT_FILE, "MQC", 8)
#: The shipped prices (base x growth^(n-1)): tap 0.05, 0.1, 0.2; tank 0.1.
TAP_1, TAP_2, TANK_1 = 5_000_000, 10_000_000, 10_000_000


@dataclasses.dataclass
class World:
    wallet: WalletServiceAsyncStub
    wallet_address: str
    redis: PipelinedRedis
    mongo: AsyncMongoClient[dict[str, Any]]
    database: str

    def purchases(
        self, catalogue: Catalogue = CATALOGUE, wallet: WalletServiceAsyncStub | None = None
    ) -> Purchases:
        return Purchases(self.mongo, self.database, catalogue, wallet or self.wallet, self.redis)

    async def fund(self, amount: str) -> str:
        user = uuid.uuid4().hex
        await self.wallet.Credit(credit_request(user, amount))
        return user

    async def available(self, user: str) -> int:
        reply = await self.wallet.GetBalance(wallet_pb2.GetBalanceRequest(user_id=user))
        return next(b.available_units for b in reply.balances if b.currency == "MQC")

    async def spends(self, user: str) -> list[wallet_pb2.LedgerEntry]:
        reply = await self.wallet.ListLedgerEntries(
            wallet_pb2.ListLedgerEntriesRequest(user_id=user)
        )
        return [e for e in reply.entries if e.kind == wallet_pb2.ENTRY_KIND_SPEND]


@pytest.fixture
async def world(
    mongodb_uri: str,
    redis_url: str,
    database_name: str,
    redis: aioredis.Redis,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> AsyncIterator[World]:
    settings = wallet_settings(mongodb_uri, f"{database_name}_wallet")
    async with companion_auth(mongodb_uri, database_name) as auth_addr:
        wired = dataclasses.replace(settings, auth_service_addr=auth_addr)
        async with served_address(wallet_lifespan(wired)) as address:
            pipe = PipelinedRedis(redis_url, timeout_seconds=2.0)
            channel = grpc.aio.insecure_channel(address)
            try:
                world = World(
                    wallet_pb2_grpc.WalletServiceStub(channel), address, pipe, mongo, database_name
                )
                await world.purchases().ensure_indexes()
                yield world
            finally:
                await channel.close()
                await pipe.close()
    await assert_reconciled(mongodb_uri, f"{database_name}_wallet")


async def mirrored(redis: aioredis.Redis, user: str) -> dict[str, str]:
    found: Any = await redis.hgetall(boosts_key(user))
    return dict(found)


async def test_a_purchase_debits_once_raises_the_level_and_a_replay_answers_it(
    world: World, redis: aioredis.Redis
) -> None:
    user = await world.fund("1")
    purchases = world.purchases()
    key = uuid.uuid4().hex
    doc, duplicate = await purchases.buy(user, key, "tap", 1)
    assert (doc["state"], doc["level"], doc["price"], duplicate) == ("applied", 1, TAP_1, False)
    assert doc["balance"] == 100_000_000 - TAP_1
    again, duplicate = await purchases.buy(user, key, "tap", None)
    assert (again["entry_id"], again["balance"], duplicate) == (
        doc["entry_id"],
        doc["balance"],
        True,
    )
    assert (await purchases.levels_of(user)).levels == {"tap": 1}
    assert await world.available(user) == 100_000_000 - TAP_1
    (spend,) = await world.spends(user)
    assert (spend.id, spend.source, spend.source_id) == (
        doc["entry_id"],
        SOURCE,
        purchase_id(user, key),
    )
    assert await mirrored(redis, user) == {"v": "1", "e": "0", "r": "0", "t": "1"}
    # The next level costs more; a key reused for another boost is refused.
    second, _ = await purchases.buy(user, uuid.uuid4().hex, "tap", 2)
    assert (second["level"], second["price"]) == (2, TAP_2)
    with pytest.raises(IdempotencyKeyReused):
        await purchases.buy(user, key, "tank", None)
    with pytest.raises(IdempotencyKeyReused):
        await purchases.buy(user, key, "tap", 3)


async def test_a_crash_after_the_purchase_document_is_settled_by_the_sweeper(
    world: World, redis: aioredis.Redis
) -> None:
    user = await world.fund("1")
    purchases = world.purchases()
    tap = CATALOGUE.get("tap")
    assert tap is not None
    opened = await purchases.open(user, "k1", tap, None)
    assert opened is not None
    assert opened["state"] == "pending"
    assert await world.available(user) == 100_000_000
    assert await purchases.sweep(age_seconds=-1) == 1
    assert (await purchases.levels_of(user)).of("tap") == 1
    assert await world.available(user) == 100_000_000 - TAP_1
    assert (await mirrored(redis, user))["t"] == "1"
    assert await purchases.sweep(age_seconds=-1) == 0  # settled: nothing left


async def test_a_crash_after_the_debit_applies_the_first_debit_without_a_second(
    world: World, redis: aioredis.Redis
) -> None:
    user = await world.fund("1")
    purchases = world.purchases()
    tap = CATALOGUE.get("tap")
    assert tap is not None
    opened = await purchases.open(user, "k1", tap, None)
    assert opened is not None
    # The debit went through, then the process died before applying it.
    debited = await world.wallet.Debit(
        wallet_pb2.DebitRequest(
            user_id=user,
            amount=common_pb2.Money(currency="MQC", units=TAP_1),
            source=SOURCE,
            source_id=opened["_id"],
            memo=f"boost tap level {opened['level']}",
        )
    )
    assert (await purchases.levels_of(user)).of("tap") == 0
    # A retry with the same key drives it on: the wallet answers the first debit.
    doc, duplicate = await purchases.buy(user, "k1", "tap", None)
    assert (doc["state"], doc["entry_id"], duplicate) == ("applied", debited.entry_id, True)
    assert len(await world.spends(user)) == 1
    assert await world.available(user) == 100_000_000 - TAP_1
    assert (await purchases.levels_of(user)).of("tap") == 1


async def test_a_crash_after_applying_is_mirrored_to_redis_by_the_sweeper(
    world: World, redis: aioredis.Redis
) -> None:
    user = await world.fund("1")
    purchases = world.purchases()
    tank = CATALOGUE.get("tank")
    assert tank is not None
    opened = await purchases.open(user, "k1", tank, None)
    assert opened is not None
    applied = await purchases.debit(opened)  # steps 2 and 3, then the crash
    assert (applied["state"], applied.get("settled")) == ("applied", False)
    assert await mirrored(redis, user) == {}
    assert await purchases.sweep(age_seconds=-1) == 1
    assert await mirrored(redis, user) == {"v": "1", "e": "1", "r": "0", "t": "0"}
    stored = await purchases.purchases.find_one({"_id": opened["_id"]})
    assert stored is not None
    assert stored["settled"] is True
    assert len(await world.spends(user)) == 1


async def test_too_little_money_refuses_changes_nothing_and_a_replay_answers_the_same(
    world: World, redis: aioredis.Redis
) -> None:
    user = await world.fund("0.04")
    purchases = world.purchases()
    with pytest.raises(InsufficientFunds):
        await purchases.buy(user, "k1", "tap", 1)
    with pytest.raises(InsufficientFunds):
        await purchases.buy(user, "k1", "tap", 1)
    assert await world.available(user) == 4_000_000
    assert await world.spends(user) == []
    assert (await purchases.levels_of(user)).levels == {}
    assert await mirrored(redis, user) == {}
    refused = await purchases.purchases.find_one({"_id": purchase_id(user, "k1")})
    assert refused is not None
    assert (refused["state"], refused["reason"]) == (State.REFUSED, "insufficient_funds")
    # The refusal gave the level up: with enough coins, another key buys it.
    await world.wallet.Credit(credit_request(user, "0.01"))
    doc, _ = await purchases.buy(user, "k2", "tap", 1)
    assert (doc["level"], doc["balance"]) == (1, 0)


async def test_concurrent_purchases_on_one_balance_never_overdraw_and_buy_each_level_once(
    world: World,
) -> None:
    user = await world.fund("0.2")  # enough for tap levels 1 and 2 (0.15), not 3
    purchases = world.purchases()

    async def attempt(index: int) -> str:
        try:
            doc, _ = await purchases.buy(user, f"k{index}", "tap", None)
        except (InsufficientFunds, PurchaseInFlight, BoostLevelChanged) as error:
            return error.reason
        return f"level {doc['level']}"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(12)))
    bought = sorted(o for o in outcomes if o.startswith("level"))
    assert set(bought) <= {"level 1", "level 2"}
    assert len(bought) == len(set(bought))
    assert (await purchases.levels_of(user)).of("tap") == len(bought)
    spent = sum(e.amount.units for e in await world.spends(user))
    assert spent == [0, TAP_1, TAP_1 + TAP_2][len(bought)]
    assert await world.available(user) == 20_000_000 - spent >= 0
    applied = await purchases.purchases.count_documents({"user_id": user, "state": "applied"})
    assert applied == len(bought)
    # Whatever raced, the sweeper leaves each level bought exactly once.
    await purchases.sweep(age_seconds=-1)
    levels = [
        doc["level"]
        async for doc in purchases.purchases.find({"user_id": user, "state": "applied"})
    ]
    assert sorted(levels) == list(range(1, (await purchases.levels_of(user)).of("tap") + 1))


async def test_concurrent_purchases_guarded_by_one_level_buy_it_once(world: World) -> None:
    user = await world.fund("10")
    purchases = world.purchases()

    async def attempt(index: int) -> str:
        try:
            await purchases.buy(user, f"k{index}", "regen", 1)
        except (PurchaseInFlight, BoostLevelChanged) as error:
            return error.reason
        return "bought"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(8)))
    assert outcomes.count("bought") == 1
    assert len(await world.spends(user)) == 1
    assert (await purchases.levels_of(user)).of("regen") == 1


async def test_the_maximum_level_and_unknown_boosts_are_refused(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "boosts.toml"
    path.write_text(
        '[[boost]]\nid = "tap"\ntitle = "Tap"\neffect = "tap_reward"\n'
        'per_level = "0.001"\nmax_level = 1\nprices = ["0.01"]\n'
    )
    purchases = world.purchases(load_boosts(path, "MQC", 8))
    user = await world.fund("1")
    await purchases.buy(user, "k1", "tap", None)
    with pytest.raises(BoostMaxLevel):
        await purchases.buy(user, "k2", "tap", None)
    with pytest.raises(BoostNotFound):
        await purchases.buy(user, "k3", "tank", None)
    with pytest.raises(BoostLevelChanged):
        await world.purchases().buy(user, "k4", "tap", 1)  # the next level is 2


async def test_a_wallet_outage_leaves_the_purchase_pending_for_the_sweeper(
    world: World,
) -> None:
    user = await world.fund("1")
    async with grpc.aio.insecure_channel("127.0.0.1:1") as dead:
        down = world.purchases(wallet=wallet_pb2_grpc.WalletServiceStub(dead))
        down.timeout = 0.5
        with pytest.raises(WalletUnavailable):
            await down.buy(user, "k1", "tank", 1)
    assert await world.available(user) == 100_000_000
    assert await world.purchases().sweep(age_seconds=-1) == 1
    assert (await world.purchases().levels_of(user)).of("tank") == 1
    assert await world.available(user) == 100_000_000 - TANK_1


async def test_an_older_mirror_never_puts_older_levels_back(
    world: World, redis: aioredis.Redis
) -> None:
    user = await world.fund("1")
    purchases = world.purchases()
    stale = await purchases.levels_of(user)
    await purchases.buy(user, "k1", "tap", 1)
    assert not await purchases.mirror(user, stale)  # version 0 after version 1
    assert (await mirrored(redis, user))["t"] == "1"
    await redis.delete(boosts_key(user))  # Redis lost it: rebuilt from MongoDB
    assert await purchases.rebuild() >= 1
    assert (await mirrored(redis, user))["t"] == "1"


async def test_the_click_script_applies_the_levels_and_peek_agrees(
    world: World, redis: aioredis.Redis, mongodb_uri: str, redis_url: str, database_name: str
) -> None:
    settings = MiningSettings.from_env(
        mining_env(mongodb_uri, redis_url, database_name, MINING_ENERGY_MAX="10")
    )
    gate = ClickGate(
        world.redis,
        settings.rules,
        settings.reward,
        max_depth=1000,
        status_ttl_seconds=60,
        throttled_ttl_seconds=60,
        boosts=CATALOGUE.steps,
    )
    user = await world.fund("1")
    now = 1_800_000_000_000
    plain = await gate.submit(user, uuid.uuid4().hex, Click(5, -1, "a"), "", now_ms=now)
    assert plain.accepted == 5
    purchases = world.purchases()
    await purchases.buy(user, "k1", "tap", 1)
    await purchases.buy(user, "k2", "tank", 1)
    await purchases.buy(user, "k3", "regen", 1)
    assert await mirrored(redis, user) == {"v": "3", "e": "1", "r": "1", "t": "1"}
    peek = await gate.peek(user, now_ms=now)
    assert (peek.tank_level, peek.regen_level, peek.tap_level) == (1, 1, 1)
    assert peek.energy_milli == 5_000  # stored energy stays; the tank is larger
    # 2 s later: 5 + 2 x (3 + 1) = 13 energy, under the boosted tank of 510.
    later = await gate.submit(user, uuid.uuid4().hex, Click(20, -1, "b"), "", now_ms=now + 2000)
    assert later.accepted == 13
    entries: Any = await redis.xrange(STREAM)
    rewards = [int(f["r"]) for _, f in entries if f["u"] == user]
    assert rewards == [5 * 100_000, 13 * 200_000]
    full = await gate.peek(user, now_ms=now + 10**9)
    assert full.energy_milli == 510_000


async def test_the_service_lists_boosts_sells_them_and_shows_the_boosted_tank(
    world: World, mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> None:
    settings = MiningSettings.from_env(
        mining_env(mongodb_uri, redis_url, database_name, WALLET_SERVICE_ADDR=world.wallet_address)
    )
    user = await world.fund("0.12")
    async with mining_channel(settings) as channel:
        mining = mining_pb2_grpc.MiningServiceStub(channel)
        listed = await mining.ListBoosts(pb.ListBoostsRequest(user_id=user))
        tank = next(b for b in listed.boosts if b.id == "tank")
        assert (tank.level, tank.effect_now, tank.per_level, tank.next_price.amount) == (
            0,
            "0",
            "500",
            "0.10000000",
        )
        assert tank.effect == pb.BOOST_EFFECT_ENERGY_MAX
        request = pb.PurchaseBoostRequest(
            user_id=user, idempotency_key=uuid.uuid4().hex, boost_id="tank", level=1
        )
        bought = await mining.PurchaseBoost(request)
        assert (bought.level, bought.price.amount, bought.balance.amount, bought.duplicate) == (
            1,
            "0.10000000",
            "0.02000000",
            False,
        )
        assert (bought.boost.level, bought.boost.effect_now, bought.boost.next_price.amount) == (
            1,
            "500",
            "0.16000000",
        )
        replay = await mining.PurchaseBoost(request)
        assert (replay.debit_entry_id, replay.duplicate) == (bought.debit_entry_id, True)
        status = await mining.GetMiningStatus(pb.GetMiningStatusRequest(user_id=user))
        assert status.max_energy == 1500
        await fails(
            mining.PurchaseBoost(
                pb.PurchaseBoostRequest(
                    user_id=user, idempotency_key=uuid.uuid4().hex, boost_id="tank"
                )
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "insufficient_funds",
        )
        await fails(
            mining.PurchaseBoost(
                pb.PurchaseBoostRequest(user_id=user, idempotency_key="k", boost_id="nope")
            ),
            grpc.StatusCode.NOT_FOUND,
            "boost_not_found",
        )
        await fails(
            mining.PurchaseBoost(pb.PurchaseBoostRequest(user_id=user, boost_id="tank")),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        # A lost Redis copy comes back on the next list.
        await redis.delete(boosts_key(user))
        await mining.ListBoosts(pb.ListBoostsRequest(user_id=user))
        assert (await mirrored(redis, user))[BOOST_FIELDS[tank_effect()]] == "1"
    assert await world.available(user) == 2_000_000


def tank_effect() -> Any:
    tank = CATALOGUE.get("tank")
    assert tank is not None
    return tank.effect
