"""The wallet as a real process: killed with SIGKILL in the middle of a stream
of credits, it loses no acknowledged credit and posts none twice; reconcile
agrees (exit 0) and notices a corrupted balance (exit 1); bad configuration
fails with one line.

A SIGKILL can leave the transaction in flight open on the database server
until its transaction lifetime (60 s) ends; credits to the accounts it
touched answer UNAVAILABLE ``ledger_busy`` meanwhile (and are retried by the
caller), while every other account is served at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from minequest.common.v1 import common_pb2
from minequest.wallet.v1 import wallet_pb2 as pb
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime.embedded import free_port
from runtime.errors import decode_rpc_error
from runtime.stores import mongo_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
BATCH = 5


def wallet_env(mongodb_uri: str, database: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MONGODB_URI": mongodb_uri,
        "WALLET_MONGODB_DATABASE": database,
        "WALLET_GRPC_PORT": str(port),
        "WALLET_METRICS_PORT": "0",
        "SHUTDOWN_GRACE_SECONDS": "2",
    }


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.wallet"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def run_wallet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m services.wallet <args>`` to the end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "services.wallet", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def batch_of(worker: int, number: int) -> pb.CreditRequest:
    return pb.CreditRequest(
        entries=[
            pb.CreditEntry(
                user_id=f"user-{worker}",
                amount=common_pb2.Money(currency="MQC", units=1 + i),
                source="mining.click",
                source_id=f"w{worker}-b{number}-e{i}",
            )
            for i in range(BATCH)
        ]
    )


async def stream_until_killed(
    target: str, process: subprocess.Popen[bytes], kill_after: int
) -> tuple[set[str], list[pb.CreditRequest]]:
    """Credit from several clients; SIGKILL the server once ``kill_after``
    calls are acknowledged. The keys acknowledged, and every batch sent."""
    acked: set[str] = set()
    sent: list[pb.CreditRequest] = []
    acks = 0
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        wallet = wallet_pb2_grpc.WalletServiceStub(channel)

        async def client(worker: int) -> None:
            nonlocal acks
            for number in range(10_000):
                request = batch_of(worker, number)
                sent.append(request)
                try:
                    reply = await wallet.Credit(request, timeout=5)
                except grpc.aio.AioRpcError:
                    return  # the server is gone
                acked.update(result.source_id for result in reply.results)
                acks += 1
                if acks == kill_after:
                    process.kill()

        await asyncio.gather(*(client(worker) for worker in range(WORKERS)))
    return acked, sent


async def resend(
    target: str, acked: list[pb.CreditRequest], unacked: list[pb.CreditRequest]
) -> tuple[int, float, Counter[str]]:
    """After the restart: send the acknowledged batches again (how many
    entries applied), credit a new account (in how many seconds), and retry
    the unacknowledged batches once (how each ended)."""
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        wallet = wallet_pb2_grpc.WalletServiceStub(channel)
        applied = 0
        for request in acked:
            reply = await wallet.Credit(request, timeout=10)
            applied += sum(result.applied for result in reply.results)
        started = time.monotonic()
        fresh = batch_of(99, 0)
        await wallet.Credit(fresh, timeout=10)
        fresh_seconds = time.monotonic() - started
        endings: Counter[str] = Counter()
        for request in unacked:
            try:
                await wallet.Credit(request, timeout=10)
                endings["ok"] += 1
            except grpc.aio.AioRpcError as error:
                info = decode_rpc_error(error)
                endings[f"{info.code.name}:{info.reason}"] += 1
        return applied, fresh_seconds, endings


async def ledger_counts(mongodb_uri: str, database: str) -> tuple[dict[str, int], int]:
    client = mongo_client(mongodb_uri, app_name="tests")
    try:
        db = client[database]
        counts: dict[str, int] = {}
        async for entry in db["entries"].find({}, {"source_id": 1}):
            counts[entry["source_id"]] = counts.get(entry["source_id"], 0) + 1
        accounts = await db["accounts"].find({}).to_list()
        return counts, sum(account["available"] for account in accounts)
    finally:
        await client.close()


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path,
    mongodb_uri: str,
    database_name: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    env = wallet_env(mongodb_uri, database_name, port)
    log = tmp_path / "wallet.log"
    target = f"127.0.0.1:{port}"

    first = start(env, log)
    processes.append(first)
    acked, sent = asyncio.run(stream_until_killed(target, first, kill_after=60))
    assert first.wait(10) == -signal.SIGKILL
    assert len(acked) >= 60 * BATCH

    second = start(env, log)
    processes.append(second)
    counts, _ = asyncio.run(ledger_counts(mongodb_uri, database_name))
    assert {key: counts.get(key, 0) for key in acked} == dict.fromkeys(acked, 1)
    assert set(counts.values()) == {1}
    for request in sent:  # a batch is one transaction: all of it or none of it
        assert len({entry.source_id in counts for entry in request.entries}) == 1
    checked = run_wallet(env, "reconcile")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip().endswith("0 differences")

    # Clients retry: what was acknowledged posts nothing twice; what was not
    # is posted now, or refused as busy while the dead transaction holds its account.
    was_acked = [r for r in sent if r.entries[0].source_id in acked]
    not_acked = [r for r in sent if r.entries[0].source_id not in acked]
    applied, fresh_seconds, endings = asyncio.run(resend(target, was_acked, not_acked))
    assert applied == 0
    assert fresh_seconds < 3, "a crash must not stall accounts it never touched"
    assert set(endings) <= {"ok", "UNAVAILABLE:ledger_busy"}, endings
    counts, total = asyncio.run(ledger_counts(mongodb_uri, database_name))
    assert set(counts.values()) == {1}
    assert acked <= set(counts)
    posted = [e for request in sent for e in request.entries if e.source_id in counts]
    assert total == sum(entry.amount.units for entry in posted) + sum(
        entry.amount.units for entry in batch_of(99, 0).entries
    )
    assert run_wallet(env, "reconcile").returncode == 0
    print("after the restart:", dict(endings), f"fresh account in {fresh_seconds:.3f}s")

    second.send_signal(signal.SIGTERM)
    assert second.wait(20) == 0, log.read_text()


def test_reconcile_exits_non_zero_on_a_corrupted_balance(
    mongodb_uri: str, database_name: str
) -> None:
    env = wallet_env(mongodb_uri, database_name, free_port())

    async def corrupt() -> None:
        client = mongo_client(mongodb_uri, app_name="tests")
        try:
            db = client[database_name]
            await db["entries"].insert_one(
                {
                    "_id": "e1",
                    "user_id": "u1",
                    "currency": "MQC",
                    "kind": "credit",
                    "amount": 150_000_000,
                    "source": "test",
                    "source_id": "1",
                }
            )
            await db["accounts"].insert_one(
                {"_id": "MQC:u1", "user_id": "u1", "currency": "MQC", "available": 1, "held": 0}
            )
        finally:
            await client.close()

    assert run_wallet(env, "reconcile").returncode == 0  # an empty ledger agrees with itself
    asyncio.run(corrupt())
    result = run_wallet(env, "reconcile")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "difference: account MQC:u1: available 0.00000001 (ledger 1.50000000), "
        "held 0.00000000 (ledger 0.00000000)",
        "reconcile: 1 accounts, 1 entries, 1 differences",
    ]


def test_bad_currency_config_fails_with_one_line(mongodb_uri: str) -> None:
    env = wallet_env(mongodb_uri, "unused", free_port()) | {"WALLET_CURRENCIES": "MQC:99"}
    result = run_wallet(env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: WALLET_CURRENCIES: precision of MQC must be 0-18"
    ]
