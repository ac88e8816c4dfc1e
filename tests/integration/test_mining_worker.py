"""The click worker on real Redis, MongoDB-wire and wallet servers: batches are
recorded and credited exactly once, a dead consumer's entries are reclaimed,
poison entries are dead-lettered, and the inspection CLI sees all of it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from minequest.mining.v1 import mining_pb2 as pb
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.embedded import free_port
from services.mining.inspection import inspect, render, replay_dead
from services.mining.metrics import RETRIED
from services.mining.settings import DEAD_LETTERS, GROUP, STREAM
from tests.integration.mining_pipeline import (
    UNITS_PER_TAP,
    Pipeline,
    open_pipeline,
    until,
    wallet_retried,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def pipeline(
    mongodb_uri: str, redis_url: str, database_name: str, redis: aioredis.Redis
) -> AsyncIterator[Pipeline]:
    async with open_pipeline(mongodb_uri, redis_url, database_name, redis) as opened:
        yield opened


async def test_clicks_are_recorded_credited_and_done(pipeline: Pipeline) -> None:
    users = [uuid.uuid4().hex for _ in range(3)]
    sent: dict[str, int] = dict.fromkeys(users, 0)
    keys = []
    for i in range(30):
        uid = users[i % 3]
        k = uuid.uuid4().hex
        reply = await pipeline.click(uid, k, count=1 + i % 4)
        sent[uid] += reply.accepted_taps
        keys.append((uid, k, reply.accepted_taps))
    async with pipeline.worker(MINING_WORKER_BATCH_SIZE="7"):
        await pipeline.drained()

    db = pipeline.mongo[pipeline.database]
    assert await db["clicks"].count_documents({}) == 30
    for uid in users:
        assert await pipeline.balance_units(uid) == sent[uid] * UNITS_PER_TAP
        miner = await db["miners"].find_one({"_id": uid})
        assert miner is not None
        assert (miner["taps"], miner["clicks"]) == (sent[uid], 10)
        status = await pipeline.mining.GetMiningStatus(pb.GetMiningStatusRequest(user_id=uid))
        assert status.total_taps == sent[uid]
    for uid, k, taps in keys:
        status = await pipeline.mining.GetClickStatus(pb.GetClickStatusRequest(user_id=uid, key=k))
        assert (status.state, status.reward_units) == (pb.CLICK_STATE_DONE, taps * UNITS_PER_TAP)
        assert status.reward.amount == f"{taps * UNITS_PER_TAP / 1e8:.8f}"
    # The wallet holds one entry per user per batch (at most 5 batches of 7), not one per click.
    history = await pipeline.wallet.ListLedgerEntries(
        wallet_pb2.ListLedgerEntriesRequest(user_id=users[0])
    )
    assert {entry.source for entry in history.entries} == {"mining.batch"}
    assert len(history.entries) <= 5
    memos = [entry.memo for entry in history.entries]
    assert sum(int(memo.split(" clicks")[0]) for memo in memos) == 10, memos
    audited = await pipeline.audit()
    assert audited.settled, audited
    assert (audited.clicks, audited.credited_units) == (30, sum(sent.values()) * UNITS_PER_TAP)


async def mined_entries(pipeline: Pipeline, user_id: str) -> list[Any]:
    history = await pipeline.wallet.ListLedgerEntries(
        wallet_pb2.ListLedgerEntriesRequest(user_id=user_id)
    )
    return [entry for entry in history.entries if entry.source == "mining.batch"]


async def test_a_lingering_batch_takes_a_users_later_clicks_into_the_same_credit(
    pipeline: Pipeline,
) -> None:
    """MINING_WORKER_LINGER_MS: the batch waits until its first click is that
    old, so a click sent meanwhile joins it: one ledger entry for both (here
    from one waiting click on, MINING_WORKER_LINGER_FROM)."""
    user, first, later = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    async with pipeline.worker(MINING_WORKER_LINGER_MS="1500", MINING_WORKER_LINGER_FROM="1"):
        await pipeline.click(user, first, count=2)
        await asyncio.sleep(0.4)  # the worker holds the first click by now
        await pipeline.click(user, later, count=3)

        async def both_done() -> bool:
            states = {await pipeline.click_state(user, key) for key in (first, later)}
            return states == {pb.CLICK_STATE_DONE}

        await until(both_done, 10.0)
    entries = await mined_entries(pipeline, user)
    assert [(entry.amount.units, entry.memo.split(" clicks")[0]) for entry in entries] == [
        (5 * UNITS_PER_TAP, "2")
    ]
    assert (await pipeline.audit()).settled


async def test_a_light_load_does_not_linger(pipeline: Pipeline) -> None:
    """Fewer clicks waiting than MINING_WORKER_LINGER_FROM: no wait, each click
    is credited in a batch of its own."""
    user, first, later = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    async with pipeline.worker(MINING_WORKER_LINGER_MS="9000", MINING_WORKER_LINGER_FROM="5"):
        for key, taps in ((first, 2), (later, 3)):
            await pipeline.click(user, key, count=taps)

            async def credited(key: str = key) -> bool:
                return {await pipeline.click_state(user, key)} == {pb.CLICK_STATE_DONE}

            await until(credited, 5.0)  # well before the 9 s linger would end
    assert len(await mined_entries(pipeline, user)) == 2


async def test_a_full_batch_does_not_linger(pipeline: Pipeline) -> None:
    """A batch of MINING_WORKER_BATCH_SIZE clicks is written at once, however
    long the linger: under load, batches never wait."""
    user = uuid.uuid4().hex
    keys = [uuid.uuid4().hex for _ in range(3)]
    for key in keys:
        await pipeline.click(user, key)
    async with pipeline.worker(
        MINING_WORKER_LINGER_MS="9000", MINING_WORKER_LINGER_FROM="1", MINING_WORKER_BATCH_SIZE="3"
    ):

        async def all_done() -> bool:
            states = {await pipeline.click_state(user, key) for key in keys}
            return states == {pb.CLICK_STATE_DONE}

        await until(all_done, 5.0)  # well before the 9 s linger would end
    assert len(await mined_entries(pipeline, user)) == 1


async def test_a_batch_that_fills_while_it_lingers_is_written_at_once(
    pipeline: Pipeline,
) -> None:
    """Clicks that come during the linger join the batch; once it holds
    MINING_WORKER_BATCH_SIZE clicks it is written, not held until the linger
    ends: one ledger entry for all of them, long before 9 s."""
    user = uuid.uuid4().hex
    keys = [uuid.uuid4().hex for _ in range(3)]
    async with pipeline.worker(
        MINING_WORKER_LINGER_MS="9000", MINING_WORKER_LINGER_FROM="1", MINING_WORKER_BATCH_SIZE="3"
    ):
        await pipeline.click(user, keys[0])
        await asyncio.sleep(0.4)  # the worker holds the first click and lingers
        for key in keys[1:]:
            await pipeline.click(user, key)

        async def all_done() -> bool:
            states = {await pipeline.click_state(user, key) for key in keys}
            return states == {pb.CLICK_STATE_DONE}

        await until(all_done, 5.0)  # well before the 9 s linger would end
    entries = await mined_entries(pipeline, user)
    assert [entry.memo.split(" clicks")[0] for entry in entries] == ["3"]
    assert (await pipeline.audit()).settled


async def test_a_batch_processed_twice_changes_nothing(pipeline: Pipeline) -> None:
    """A worker that dies after MongoDB and the wallet but before XACK: the
    batch comes again and must not record or credit anything twice."""
    uid = uuid.uuid4().hex
    for _ in range(5):
        await pipeline.click(uid, uuid.uuid4().hex, count=2)
    await pipeline.redis.xgroup_create(STREAM, GROUP, id="0")
    reply: Any = await pipeline.redis.xreadgroup(GROUP, "doomed", {STREAM: ">"}, count=100)
    entries = reply[0][1]
    async with pipeline.worker(MINING_WORKER_CLAIM_IDLE_MS="100") as worker:
        # The doomed consumer's work, done once by hand (as if it then died)...
        await worker.process("doomed-by-hand", entries)
        # ...and its unacknowledged delivery reclaimed by the running worker.
        await pipeline.drained()
    assert await pipeline.balance_units(uid) == 10 * UNITS_PER_TAP
    db = pipeline.mongo[pipeline.database]
    miner = await db["miners"].find_one({"_id": uid})
    assert miner is not None
    assert miner["taps"] == 10
    assert await pipeline.reconciled()
    assert (await pipeline.audit()).settled


async def test_a_dead_consumers_entries_are_reclaimed(pipeline: Pipeline) -> None:
    uid = uuid.uuid4().hex
    for _ in range(4):
        await pipeline.click(uid, uuid.uuid4().hex)
    await pipeline.redis.xgroup_create(STREAM, GROUP, id="0")
    await pipeline.redis.xreadgroup(GROUP, "crashed", {STREAM: ">"}, count=100)
    report = await inspect(pipeline.redis)
    crashed = next(c for c in report.groups[0].consumers if c.name == "crashed")
    assert crashed.pending == 4
    assert report.oldest_pending_age_seconds is not None
    async with pipeline.worker(MINING_WORKER_CLAIM_IDLE_MS="200"):
        await pipeline.drained()
    assert await pipeline.balance_units(uid) == 4 * UNITS_PER_TAP


async def test_the_dead_letter_stream_is_bounded(pipeline: Pipeline) -> None:
    """A flood of poison entries must not grow Redis without end."""
    uid = uuid.uuid4().hex
    async with pipeline.redis.pipeline(transaction=False) as pipe:
        for n in range(400):
            pipe.xadd(STREAM, {"u": uid, "k": f"poison-{n}", "n": "many", "r": "1", "t": "1"})
        await pipe.execute()
    async with pipeline.worker(MINING_DEAD_LETTER_MAX="100"):
        await pipeline.drained()
    kept = await pipeline.redis.xlen(DEAD_LETTERS)
    # approximate trimming keeps whole stream nodes (100 entries each on Redis 6.2)
    assert 100 <= kept <= 200, kept
    newest: Any = await pipeline.redis.xrevrange(DEAD_LETTERS, count=1)
    assert newest[0][1]["error_code"] == "malformed_entry"


async def test_poison_entries_go_to_dead_letters_and_can_be_replayed(
    pipeline: Pipeline,
) -> None:
    uid, good, poison = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    await pipeline.click(uid, good, count=2)
    # A malformed entry can never succeed: dead-lettered at once.
    await pipeline.redis.xadd(STREAM, {"u": uid, "k": poison, "n": "many", "r": "1", "t": "1"})
    # A reward the wallet refuses (unknown currency) fails on every attempt.
    async with pipeline.worker(
        MINING_WORKER_CLAIM_IDLE_MS="50",
        MINING_WORKER_MAX_ATTEMPTS="3",
        MINING_REWARD_CURRENCY="XYZ",
    ):
        await pipeline.drained()
    assert await pipeline.redis.xlen(DEAD_LETTERS) == 2
    raw: Any = await pipeline.redis.xrange(DEAD_LETTERS)
    letters = {fields["k"]: fields for _, fields in raw}
    assert letters[poison]["error_code"] == "malformed_entry"
    assert (letters[good]["error_code"], letters[good]["attempts"]) == ("unknown_currency", "3")
    for k in (good, poison):
        status = await pipeline.mining.GetClickStatus(pb.GetClickStatusRequest(user_id=uid, key=k))
        assert status.state == pb.CLICK_STATE_FAILED
    assert await pipeline.balance_units(uid) == 0
    # The good click is recorded and its credit owed in the outbox, not lost.
    audited = await pipeline.audit()
    assert audited.exactly_once, audited
    assert (audited.outbox_pending, audited.pending_units) == (1, 2 * UNITS_PER_TAP)
    text = render(await inspect(pipeline.redis))
    assert "dead letters (mining-clicks-dead): 2" in text
    assert "unknown_currency after 3 attempt(s)" in text

    # Fixed configuration: replay the dead letters; the good click is credited once,
    # the malformed one dies again.
    assert await replay_dead(pipeline.redis) == 2
    assert await pipeline.redis.xlen(DEAD_LETTERS) == 0
    async with pipeline.worker(MINING_WORKER_CLAIM_IDLE_MS="50", MINING_WORKER_MAX_ATTEMPTS="3"):
        await pipeline.drained()
    assert await pipeline.balance_units(uid) == 2 * UNITS_PER_TAP
    status = await pipeline.mining.GetClickStatus(pb.GetClickStatusRequest(user_id=uid, key=good))
    assert status.state == pb.CLICK_STATE_DONE
    assert await pipeline.redis.xlen(DEAD_LETTERS) == 1
    assert (await pipeline.audit()).settled


async def test_a_wallet_outage_is_waited_out_not_dead_lettered(pipeline: Pipeline) -> None:
    uid = uuid.uuid4().hex
    for _ in range(3):
        await pipeline.click(uid, uuid.uuid4().hex)
    nowhere = f"127.0.0.1:{free_port()}"
    async with (
        grpc.aio.insecure_channel(pipeline.wallet_addr) as live,
        pipeline.worker(
            WALLET_SERVICE_ADDR=nowhere,
            MINING_WORKER_CLAIM_IDLE_MS="100",
            MINING_WORKER_MAX_ATTEMPTS="1",
        ) as worker,
    ):
        before = RETRIED.labels(error_code="wallet_unavailable")._value.get()
        await until(lambda: wallet_retried(before + 2), 10)
        await asyncio.sleep(0.5)  # more failed attempts against the missing wallet
        assert await pipeline.redis.xlen(DEAD_LETTERS) == 0
        assert await pipeline.balance_units(uid) == 0
        worker.outbox.wallet = wallet_pb2_grpc.WalletServiceStub(live)  # the wallet is back
        await pipeline.drained()
    assert await pipeline.balance_units(uid) == 3 * UNITS_PER_TAP
    assert await pipeline.redis.xlen(DEAD_LETTERS) == 0


async def test_sigterm_hands_an_unfinished_batch_back(pipeline: Pipeline) -> None:
    """A worker stopped while its batch cannot finish (the wallet is gone) leaves
    it pending but marked long idle, so the next worker's reclaim takes it at
    once instead of after the idle timeout."""
    uid = uuid.uuid4().hex
    for _ in range(3):
        await pipeline.click(uid, uuid.uuid4().hex)
    claim_idle = 60_000
    async with pipeline.worker(
        WALLET_SERVICE_ADDR=f"127.0.0.1:{free_port()}",
        MINING_WORKER_CLAIM_IDLE_MS=str(claim_idle),
    ):
        before = RETRIED.labels(error_code="wallet_unavailable")._value.get()
        await until(lambda: wallet_retried(before + 1), 10)
    # The context manager set `stopping` and waited for run() to return.
    pending: Any = await pipeline.redis.xpending_range(STREAM, GROUP, "-", "+", 10)
    assert len(pending) == 3
    assert all(entry["time_since_delivered"] >= claim_idle for entry in pending)
    async with pipeline.worker(MINING_WORKER_CLAIM_IDLE_MS=str(claim_idle)):
        await pipeline.drained()  # well before the 60 s idle timeout
    assert await pipeline.balance_units(uid) == 3 * UNITS_PER_TAP


def run_cli(redis_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.mining", *args],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "REDIS_URL": redis_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_cli_reports_and_replays(pipeline: Pipeline, redis_url: str) -> None:
    uid, k = uuid.uuid4().hex, uuid.uuid4().hex
    await pipeline.click(uid, k)
    await pipeline.redis.xadd(STREAM, {"u": uid, "k": "bad", "n": "x", "r": "1", "t": "1"})
    async with pipeline.worker():
        await pipeline.drained()
    shown = await asyncio.to_thread(run_cli, redis_url, "inspect", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["length"], report["dead_letters"], report["outbox"]) == (0, 1, None)
    mining_db = {
        "MONGODB_URI": pipeline.env["MONGODB_URI"],
        "MINING_MONGODB_DATABASE": pipeline.database,
    }
    shown = await asyncio.to_thread(run_cli, redis_url, "inspect", "--json", **mining_db)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["outbox"]["documents"] == 0
    assert report["recent_dead_letters"][0]["error_code"] == "malformed_entry"
    assert report["groups"][0]["name"] == GROUP
    replayed = await asyncio.to_thread(run_cli, redis_url, "replay-dead", "--count", "1")
    assert replayed.returncode == 0, replayed.stderr
    assert "1 dead letter(s) back on the stream" in replayed.stdout
    assert await pipeline.redis.xlen(STREAM) == 1
    gone = await asyncio.to_thread(run_cli, f"redis://127.0.0.1:{free_port()}/0", "inspect")
    assert gone.returncode == 2
    assert "Redis is unreachable" in gone.stderr


async def test_a_consumer_outlives_an_error_that_escapes_a_batch(pipeline: Pipeline) -> None:
    """Redis failing while an entry is dead-lettered (here: once, on purpose)
    must not end the consumer: the entry stays pending, is reclaimed, and the
    clicks after it are processed."""
    uid, good = uuid.uuid4().hex, uuid.uuid4().hex
    await pipeline.redis.xadd(STREAM, {"u": uid, "k": "bad", "n": "x", "r": "1", "t": "1"})
    async with pipeline.worker(
        MINING_WORKER_CONCURRENCY="1", MINING_WORKER_CLAIM_IDLE_MS="200"
    ) as worker:
        real = worker._dead_letter
        failures = 0

        async def flaky(*args: Any) -> None:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise redis.exceptions.ConnectionError("Redis went away mid-batch")
            await real(*args)

        worker._dead_letter = flaky  # type: ignore[method-assign,assignment]
        await until(lambda: _is(failures, 1), 10)
        await pipeline.click(uid, good)
        await pipeline.drained()
    status = await pipeline.mining.GetClickStatus(pb.GetClickStatusRequest(user_id=uid, key=good))
    assert status.state == pb.CLICK_STATE_DONE
    assert await pipeline.redis.xlen(DEAD_LETTERS) == 1


async def _is(value: int, expected: int) -> bool:
    return value == expected


def test_a_worker_whose_metrics_port_is_taken_says_which_variable(
    redis_url: str, mongodb_uri: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            redis_url,
            "worker",
            MONGODB_URI=mongodb_uri,
            MINING_GRPC_HOST="127.0.0.1",
            MINING_WORKER_METRICS_PORT=str(port),
        )
    assert result.returncode == 2, result.stderr
    assert f"MINING_WORKER_METRICS_PORT: cannot listen on {port}" in result.stderr


async def test_a_live_workers_long_batch_is_not_taken_over(pipeline: Pipeline) -> None:
    """A try that takes longer than the claim timeout (here: the wallet's
    address accepts connections and never answers, until the 3 s deadline)
    keeps its entries claimed, so another worker does not take them over and
    do them twice; once that worker stops, the other credits them."""
    uid = uuid.uuid4().hex
    for _ in range(3):
        await pipeline.click(uid, uuid.uuid4().hex)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        async with pipeline.worker(
            WALLET_SERVICE_ADDR=address,
            GRPC_TIMEOUT_SECONDS="3",
            MINING_WORKER_CLAIM_IDLE_MS="150",
            MINING_WORKER_NAME="slow",
        ):
            await until(lambda: _pending_with(pipeline, "slow", 3), 5)
            async with pipeline.worker(
                MINING_WORKER_CLAIM_IDLE_MS="150", MINING_WORKER_NAME="live"
            ):
                await asyncio.sleep(1.5)  # ten claim timeouts, inside the slow try
                assert await _pending_with(pipeline, "slow", 3)
                assert await pipeline.balance_units(uid) == 0
    # "slow" has stopped and handed its batch back.
    async with pipeline.worker(MINING_WORKER_CLAIM_IDLE_MS="150"):
        await pipeline.drained()
    assert await pipeline.balance_units(uid) == 3 * UNITS_PER_TAP
    assert (await pipeline.audit()).settled


async def _pending_with(pipeline: Pipeline, name: str, count: int) -> bool:
    """Whether exactly ``count`` entries are pending, all with consumers of ``name``."""
    pending: Any = await pipeline.redis.xpending_range(STREAM, GROUP, "-", "+", 100)
    owners = {str(entry["consumer"]).rsplit("-", 1)[0] for entry in pending}
    return len(pending) == count and owners == {name}
