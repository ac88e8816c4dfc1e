"""Inviters' rewards from mining, on real Redis, MongoDB-wire, wallet and auth
servers: an inviter earns its share of each batch its invitees mine (and a
second level its smaller share), a join bonus once per invitee when the
invitee first earns, and a worker dying at any step of such a batch still
pays each of them exactly once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import redis.asyncio as aioredis

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from services.mining.referrals import ReferralSettings
from tests.integration.conftest import companion_auth
from tests.integration.mining_pipeline import UNITS_PER_TAP, Pipeline, open_pipeline
from tests.integration.test_mining_outbox import POINTS, Crash, arm

pytestmark = pytest.mark.integration

SHARES = {
    "REFERRAL_MINING_SHARE_PERCENT": "10",
    "REFERRAL_SECOND_LEVEL_SHARE_PERCENT": "5",
    "REFERRAL_JOIN_BONUS": "0.5",
}
SETTINGS = ReferralSettings(10, 5, 50_000_000)
BONUS = SETTINGS.join_bonus_units


@dataclass
class Family:
    """``top`` invited ``middle``, who invited ``bottom``."""

    top: str
    middle: str
    bottom: str


@dataclass
class Setup:
    pipeline: Pipeline
    auth_addr: str
    auth: auth_pb2_grpc.AuthServiceAsyncStub


@pytest.fixture
async def setup(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> AsyncIterator[Setup]:
    async with (
        open_pipeline(mongodb_uri, redis_url, database_name, redis) as pipeline,
        companion_auth(mongodb_uri, database_name) as auth_addr,
        grpc.aio.insecure_channel(auth_addr) as channel,
    ):
        yield Setup(pipeline, auth_addr, auth_pb2_grpc.AuthServiceStub(channel))


async def register(setup: Setup, code: str = "") -> auth_pb2.User:
    name = uuid.uuid4().hex[:12]
    reply = await setup.auth.Register(
        auth_pb2.RegisterRequest(
            email=f"{name}@example.com",
            wallet_address="0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8],
            username=f"u{name}",
            referral_code=code,
        )
    )
    return reply.user


async def family(setup: Setup) -> Family:
    top = await register(setup)
    middle = await register(setup, top.referral_code)
    bottom = await register(setup, middle.referral_code)
    return Family(top.id, middle.id, bottom.id)


async def units(setup: Setup, user: str) -> int:
    return await setup.pipeline.balance_units(user)


async def test_inviters_earn_their_shares_and_one_join_bonus_per_invitee(setup: Setup) -> None:
    people = await family(setup)
    pipeline = setup.pipeline
    for count in (10, 10, 10):
        await pipeline.click(people.bottom, uuid.uuid4().hex, count=count)
    await pipeline.click(people.middle, uuid.uuid4().hex, count=10)
    async with pipeline.worker(setup.auth_addr, **SHARES):
        await pipeline.drained()

    bottom_mined, middle_mined = 30 * UNITS_PER_TAP, 10 * UNITS_PER_TAP
    assert await units(setup, people.bottom) == bottom_mined
    assert await units(setup, people.middle) == middle_mined + bottom_mined // 10 + BONUS
    assert await units(setup, people.top) == bottom_mined * 5 // 100 + middle_mined // 10 + BONUS

    # A later batch pays the shares again, and no second join bonus.
    await pipeline.click(people.bottom, uuid.uuid4().hex, count=20)
    async with pipeline.worker(setup.auth_addr, **SHARES):
        await pipeline.drained()
    assert await units(setup, people.middle) == (
        middle_mined + (bottom_mined + 20 * UNITS_PER_TAP) // 10 + BONUS
    )
    miner = await pipeline.mongo[pipeline.database]["miners"].find_one({"_id": people.middle})
    assert miner is not None
    assert miner["referral_units"] == (bottom_mined + 20 * UNITS_PER_TAP) // 10 + BONUS
    audited = await pipeline.audit(SETTINGS)
    assert audited.settled, audited
    assert await pipeline.reconciled()


async def test_the_audit_catches_a_missing_or_invented_referral_credit(setup: Setup) -> None:
    people = await family(setup)
    pipeline = setup.pipeline
    await pipeline.click(people.bottom, uuid.uuid4().hex, count=10)
    async with pipeline.worker(setup.auth_addr, **SHARES):
        await pipeline.drained()
    entries = pipeline.mongo[pipeline.wallet_database]["entries"]
    share = await entries.find_one({"source": "mining.referral", "user_id": people.middle})
    assert share is not None

    await entries.delete_one({"_id": share["_id"]})
    assert f"mining.referral/{share['source_id']}" in (await pipeline.audit(SETTINGS)).missing

    await entries.insert_one({**share, "_id": uuid.uuid4().hex, "source_id": "nothing:owes"})
    assert "mining.referral/nothing:owes" in (await pipeline.audit(SETTINGS)).unknown


@pytest.mark.parametrize("point", list(POINTS))
async def test_a_worker_dying_at_any_step_pays_each_inviter_exactly_once(
    setup: Setup, point: str
) -> None:
    people = await family(setup)
    pipeline = setup.pipeline
    for count in (1, 2, 3):
        await pipeline.click(people.bottom, uuid.uuid4().hex, count=count)
    entries = await pipeline.deliver("doomed")
    assert len(entries) == 3
    async with pipeline.idle_worker(setup.auth_addr, **SHARES) as doomed:
        arm(doomed, point)
        with pytest.raises(Crash):
            await doomed.process("doomed", entries)
    assert (await pipeline.audit(SETTINGS)).exactly_once

    async with pipeline.worker(setup.auth_addr, MINING_WORKER_CLAIM_IDLE_MS="100", **SHARES):
        await pipeline.drained()
    mined = 6 * UNITS_PER_TAP
    assert await units(setup, people.bottom) == mined
    assert await units(setup, people.middle) == mined // 10 + BONUS
    assert await units(setup, people.top) == mined * 5 // 100
    audited = await pipeline.audit(SETTINGS)
    assert audited.settled, audited
