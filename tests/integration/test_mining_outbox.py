"""The worker's write path crash by crash, on real Redis, MongoDB-wire and
wallet servers: a worker dies at each step of a batch (a crash is raised
there, escaping every handler, and the worker is abandoned as a kill would
leave it), another takes the batch over, and every click is recorded and
credited exactly once. The outbox sweeper credits what a lost stream entry
would leave behind, racing the live path without doubling anything, and the
audit catches every way a credit can go wrong."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from minequest.mining.v1 import mining_pb2 as pb
from services.mining.inspection import inspect, render
from services.mining.leaderboards import Period, board_key
from services.mining.metrics import OUTBOX_SWEPT
from services.mining.settings import GROUP, STREAM
from services.mining.worker import Worker
from tests.integration.mining_pipeline import UNITS_PER_TAP, Pipeline, open_pipeline, until

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """The process dies here: nothing after it runs, no handler sees it."""


@pytest.fixture
async def pipeline(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> AsyncIterator[Pipeline]:
    async with open_pipeline(mongodb_uri, redis_url, database_name, redis) as opened:
        yield opened


def crash_before(step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def dead(*args: Any, **kwargs: Any) -> Any:
        raise Crash(step.__name__)

    return dead


def crash_after(step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def dead(*args: Any, **kwargs: Any) -> Any:
        await step(*args, **kwargs)
        raise Crash(step.__name__)

    return dead


#: Where a worker dies: (the part of it, its step, the crash around the step).
POINTS = {
    # every write of the transaction done, not committed
    "inside the transaction": ("store", "_write", crash_after),
    "after the transaction, before the credit": ("outbox", "credit", crash_before),
    "after the credit, before the outbox is settled": ("outbox", "settle", crash_before),
    "after the outbox is settled, before the Redis step": ("worker", "_finish", crash_before),
}


def arm(worker: Worker, point: str) -> None:
    """Make ``worker`` die at ``point`` of its next batch."""
    part, step, crash = POINTS[point]
    owner = worker if part == "worker" else getattr(worker, part)
    setattr(owner, step, crash(getattr(owner, step)))


async def clicks(pipeline: Pipeline, users: int = 3, each: int = 3) -> dict[str, int]:
    """``each`` clicks of 1..3 taps for each of ``users`` new users: user -> taps."""
    taps: dict[str, int] = {}
    for _ in range(users):
        user = uuid.uuid4().hex
        taps[user] = 0
        for n in range(each):
            reply = await pipeline.click(user, uuid.uuid4().hex, count=1 + n % 3)
            taps[user] += reply.accepted_taps
    return taps


async def crashed_batch(pipeline: Pipeline, point: str) -> dict[str, int]:
    """Queue clicks, and let a worker die at ``point`` of the batch holding them."""
    sent = await clicks(pipeline)
    entries = await pipeline.deliver("doomed")
    assert len(entries) == 9
    async with pipeline.idle_worker() as doomed:
        arm(doomed, point)
        with pytest.raises(Crash):
            await doomed.process("doomed", entries)
    return sent


async def balances(pipeline: Pipeline, sent: dict[str, int]) -> dict[str, int]:
    return {user: await pipeline.balance_units(user) // UNITS_PER_TAP for user in sent}


async def assert_all_credited_once(pipeline: Pipeline, sent: dict[str, int]) -> None:
    assert await balances(pipeline, sent) == sent
    miners = pipeline.mongo[pipeline.database]["miners"]
    for user, taps in sent.items():
        miner = await miners.find_one({"_id": user})
        assert miner is not None
        assert (miner["taps"], miner["clicks"]) == (taps, 3)
    audited = await pipeline.audit()
    assert audited.settled, audited
    assert audited.credited_units == sum(sent.values()) * UNITS_PER_TAP
    assert await pipeline.reconciled()
    # The day's leaderboard counts each batch once, however often it was credited.
    assert await day_board(pipeline, sent) == {u: t * UNITS_PER_TAP for u, t in sent.items()}


async def day_board(pipeline: Pipeline, sent: dict[str, int]) -> dict[str, int]:
    """Each user's score on today's mined-coin board (and yesterday's, should
    the test have run across midnight)."""
    now = datetime.now(UTC)
    keys = {board_key(Period.DAY, at) for at in (now, now - timedelta(minutes=5))}
    scores = dict.fromkeys(sent, 0)
    for key in keys:
        for user in sent:
            scores[user] += int(await pipeline.redis.zscore(key, user) or 0)
    return scores


@pytest.mark.parametrize(
    ("point", "recorded", "owed", "credited"),
    [
        ("inside the transaction", 0, 0, False),
        ("after the transaction, before the credit", 9, 1, False),
        ("after the credit, before the outbox is settled", 9, 1, True),
        ("after the outbox is settled, before the Redis step", 9, 0, True),
    ],
)
async def test_a_worker_dying_at_any_step_loses_and_doubles_nothing(
    pipeline: Pipeline, point: str, recorded: int, owed: int, credited: bool
) -> None:
    sent = await crashed_batch(pipeline, point)

    # What the dead worker left: exactly what its finished steps wrote.
    db = pipeline.mongo[pipeline.database]
    assert await db["clicks"].count_documents({}) == recorded
    assert await db["outbox"].count_documents({}) == owed
    assert await balances(pipeline, sent) == (sent if credited else dict.fromkeys(sent, 0))
    assert (await pipeline.audit()).exactly_once
    pending = await pipeline.redis.xpending(STREAM, GROUP)
    assert pending["pending"] == 9  # nothing acknowledged: another worker takes it over

    async with pipeline.worker(MINING_WORKER_CLAIM_IDLE_MS="100"):
        await pipeline.drained()
    await assert_all_credited_once(pipeline, sent)
    async for click in db["clicks"].find({}, {"user_id": 1, "key": 1}):
        assert await pipeline.click_state(click["user_id"], click["key"]) == pb.CLICK_STATE_DONE


async def test_a_credit_whose_stream_entries_are_lost_is_swept(pipeline: Pipeline) -> None:
    """The transaction committed, then the worker died and Redis lost the
    entries (no AOF, a failover): the outbox still owes the rewards, and the
    sweeper credits them."""
    sent = await crashed_batch(pipeline, "after the transaction, before the credit")
    raw: Any = await pipeline.redis.xrange(STREAM)
    ids = [stream_id for stream_id, _ in raw]
    await pipeline.redis.xack(STREAM, GROUP, *ids)
    await pipeline.redis.xdel(STREAM, *ids)
    swept = OUTBOX_SWEPT._value.get()

    async with pipeline.worker(
        MINING_OUTBOX_SWEEP_SECONDS="0.05", MINING_OUTBOX_SWEEP_AGE_SECONDS="0"
    ):
        await until(lambda: _outbox_empty(pipeline), 10)
    await assert_all_credited_once(pipeline, sent)
    assert OUTBOX_SWEPT._value.get() == swept + 1


async def test_the_sweeper_leaves_young_credits_to_the_live_path(pipeline: Pipeline) -> None:
    await crashed_batch(pipeline, "after the transaction, before the credit")
    async with pipeline.idle_worker(MINING_OUTBOX_SWEEP_AGE_SECONDS="3600") as worker:
        assert await worker.sweep_outbox() == 0
    assert (await pipeline.audit()).outbox_pending == 1
    outbox = pipeline.mongo[pipeline.database]["outbox"]
    shown = render(await inspect(pipeline.redis, outbox=outbox))
    assert "outbox: 1 batch(es) not credited yet (9 clicks, " in shown, shown


async def test_sweepers_racing_the_retried_batch_credit_once(pipeline: Pipeline) -> None:
    sent = await crashed_batch(pipeline, "after the transaction, before the credit")
    entries: Any = await pipeline.redis.xrange(STREAM)
    async with (
        pipeline.idle_worker(MINING_OUTBOX_SWEEP_AGE_SECONDS="0") as one,
        pipeline.idle_worker(MINING_OUTBOX_SWEEP_AGE_SECONDS="0") as other,
    ):
        await asyncio.gather(
            one.process("retry", entries),
            one.sweep_outbox(),
            other.sweep_outbox(),
            other.process("retry-too", entries),
        )
    await assert_all_credited_once(pipeline, sent)
    assert await pipeline.redis.xlen(STREAM) == 0


async def test_a_batch_of_more_users_than_one_credit_call_takes_is_credited(
    pipeline: Pipeline,
) -> None:
    """1100 users in one batch: one outbox document, its lines posted in calls
    of at most 1000 entries (the wallet's default limit)."""
    now = int(datetime.now(UTC).timestamp() * 1000)
    async with pipeline.redis.pipeline(transaction=False) as pipe:
        for _ in range(1100):
            user, key = uuid.uuid4().hex, uuid.uuid4().hex
            pipe.xadd(STREAM, {"u": user, "k": key, "n": 1, "r": UNITS_PER_TAP, "t": now, "q": ""})
        await pipe.execute()
    async with pipeline.idle_worker(MINING_WORKER_BATCH_SIZE="2000") as worker:
        entries = await pipeline.deliver("one", count=2000)
        await worker.process("one", entries)
    audited = await pipeline.audit()
    assert audited.settled, audited
    assert (audited.clicks, audited.ledger_entries) == (1100, 1100)
    outboxes = await pipeline.mongo[pipeline.database]["clicks"].distinct("outbox_id")
    assert len(outboxes) == 1


async def test_a_click_recorded_before_the_outbox_is_credited_on_its_own(
    pipeline: Pipeline,
) -> None:
    """Upgrading: a worker without the outbox recorded a click and died before
    crediting it (source mining.click, one entry per click). Its retry credits
    it the same way, once."""
    user, key = uuid.uuid4().hex, uuid.uuid4().hex
    await pipeline.click(user, key, count=3)
    entries = await pipeline.deliver("old-worker")
    (stream_id, fields) = entries[0]
    assert fields is not None
    await pipeline.mongo[pipeline.database]["clicks"].insert_one(
        {
            "_id": f"{user}:{key}",
            "user_id": user,
            "key": key,
            "taps": 3,
            "reward_units": 3 * UNITS_PER_TAP,
            "accepted_at": datetime.now(UTC),
            "recorded_at": datetime.now(UTC),
            "stream_id": stream_id,
            "request_id": fields.get("q", ""),
        }
    )
    assert (await pipeline.audit()).missing == (f"mining.click/{user}:{key}",)
    async with pipeline.idle_worker() as worker:
        await worker.process("new-worker", entries)
        await worker.process("new-worker", entries)  # and once more: no double
    assert await pipeline.balance_units(user) == 3 * UNITS_PER_TAP
    audited = await pipeline.audit()
    assert audited.settled, audited
    assert audited.ledger_entries == 1
    assert await pipeline.click_state(user, key) == pb.CLICK_STATE_DONE


async def test_the_audit_catches_every_kind_of_bad_credit(pipeline: Pipeline) -> None:
    sent = await clicks(pipeline)
    async with pipeline.worker():
        await pipeline.drained()
    assert (await pipeline.audit()).settled
    entries = pipeline.mongo[pipeline.wallet_database]["entries"]
    first, second, third = [doc async for doc in entries.find({"source": "mining.batch"})]
    click = await pipeline.mongo[pipeline.database]["clicks"].find_one(
        {"user_id": second["user_id"]}
    )
    assert click is not None

    await entries.delete_one({"_id": first["_id"]})
    await entries.update_one({"_id": second["_id"]}, {"$inc": {"amount": 1}})
    planted = {"kind": "credit", "currency": "MQC", "amount": 5, "memo": "", "created_at": None}
    double = {"user_id": click["user_id"], "source": "mining.click", "source_id": click["_id"]}
    await entries.insert_one({**planted, **double})
    await entries.insert_one(
        {**planted, "user_id": third["user_id"], "source": "mining.batch", "source_id": "nope:x"}
    )

    audited = await pipeline.audit()
    assert not audited.exactly_once
    assert audited.missing == (f"mining.batch/{first['source_id']}",)
    assert audited.wrong == (f"mining.batch/{second['source_id']}",)
    assert audited.doubles == (f"mining.click/{click['_id']}",)
    assert audited.unknown == ("mining.batch/nope:x",)
    assert audited.clicks == 9
    assert audited.reward_units == sum(sent.values()) * UNITS_PER_TAP


async def _outbox_empty(pipeline: Pipeline) -> bool:
    return await pipeline.mongo[pipeline.database]["outbox"].count_documents({}) == 0
