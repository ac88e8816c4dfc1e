"""Chaos: clicks under load while a worker is SIGKILLed and restarted, and
later the wallet. After the backlog drains, the exactly-once audit holds
(every recorded click credited once, in its batch's per-user entry, nothing
owed left in the outbox), every click answered 202 is credited with its
reward, nothing else is credited, the ledger reconciles, and no stream
entry is left pending or dead. The clicking users were invited by others
(two levels deep), and every inviter's share and join bonus is credited
exactly once too, through the same kills."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pymongo
import pytest
import redis as sync_redis

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.stores import mongo_client
from services.mining.audit import Audit, audit
from services.mining.referrals import ReferralSettings
from services.mining.settings import DEAD_LETTERS, GROUP, STREAM
from tests.e2e.conftest import ROOT, Stack, start_stack

pytestmark = pytest.mark.e2e

USERS = 24
LOAD_SECONDS = 9.0
UNITS_PER_TAP = 100_000
#: The stack's referral rewards: the default 10 % and 1 MQC bonus, a 5 % second level.
REFERRALS = ReferralSettings(10, 5, 100_000_000)


@dataclass(frozen=True, slots=True)
class Sent:
    user_id: str
    key: str
    status: int  # 0: no answer (transport error): outcome unknown
    accepted: int
    at: float  # time.monotonic() of the answer


@pytest.fixture(scope="module")
def chaos_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Two workers that reclaim a dead one's entries after 1 s; every click comes
    from 127.0.0.1, so the per-IP tier is opened up."""
    for stack in start_stack(
        request,
        tmp_path_factory,
        "chaos",
        {
            "MINING_RATE_LIMIT_IP_RATE": "100000",
            "MINING_RATE_LIMIT_IP_BURST": "100000",
            "MINING_WORKER_CLAIM_IDLE_MS": "1000",
            "MINING_WORKER_BATCH_SIZE": "50",
            "REFERRAL_SECOND_LEVEL_SHARE_PERCENT": "5",
        },
    ):
        stack.spawn("mining-worker-2", ["services.mining", "worker"])
        yield stack


async def _user(client: httpx.AsyncClient, token: str, user_id: str, until: float) -> list[Sent]:
    sent: list[Sent] = []
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        key = uuid.uuid4().hex
        try:
            response = await client.post(
                "/api/mining/click",
                json={"count": random.randint(1, 3)},
                headers={**headers, "Idempotency-Key": key},
            )
        except httpx.TransportError:
            sent.append(Sent(user_id, key, 0, 0, time.monotonic()))
            continue
        accepted = response.json().get("acceptedTaps", 0) if response.status_code == 202 else 0
        sent.append(Sent(user_id, key, response.status_code, accepted, time.monotonic()))
        await asyncio.sleep(0.25)
    return sent


def _register(auth: auth_pb2_grpc.AuthServiceStub, code: str = "") -> auth_pb2.User:
    name = uuid.uuid4().hex[:12]
    request = auth_pb2.RegisterRequest(
        email=f"{name}@example.com",
        username=f"u{name}",
        wallet_address="0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8],
        referral_code=code,
    )
    return auth.Register(request, timeout=10).user


def _invited_users(stack: Stack) -> list[str]:
    """``USERS`` accounts, each invited by one of a few inviters, who were
    invited in turn (so the second level earns too); the clicking users."""
    with stack.channel("auth", identity="gateway") as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        top = _register(auth)
        inviters = [_register(auth, top.referral_code) for _ in range(4)]
        return [_register(auth, inviters[i % 4].referral_code).id for i in range(USERS)]


def _load(stack: Stack, users: list[str], out: list[Sent]) -> None:
    async def run() -> None:
        until = time.monotonic() + LOAD_SECONDS
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=10.0) as client:
            results = await asyncio.gather(
                *(_user(client, stack.token_for(user), user, until) for user in users)
            )
        for result in results:
            out.extend(result)

    asyncio.run(run())


def _drained(redis: sync_redis.Redis, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pending = redis.xpending(STREAM, GROUP)["pending"]
        if redis.xlen(STREAM) == 0 and pending == 0:
            return
        time.sleep(0.25)
    raise AssertionError(f"backlog not drained: {redis.xlen(STREAM)} entries left")


async def _audit(stack: Stack) -> Audit:
    client = mongo_client(stack.env["MONGODB_URI"], app_name="tests")
    try:
        return await audit(
            client[stack.env["MINING_MONGODB_DATABASE"]],
            client[stack.env["WALLET_MONGODB_DATABASE"]],
            client[stack.env["AUTH_MONGODB_DATABASE"]],
            REFERRALS,
        )
    finally:
        await client.close()


@contextlib.contextmanager
def mongo_sync(stack: Stack) -> Iterator[Any]:
    """The wallet's ledger entries, read with a blocking client."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(stack.env["MONGODB_URI"])
    try:
        yield client[stack.env["WALLET_MONGODB_DATABASE"]]["entries"]
    finally:
        client.close()


def test_killed_workers_and_wallet_lose_and_double_nothing(chaos_stack: Stack) -> None:
    stack = chaos_stack
    sent: list[Sent] = []
    users = _invited_users(stack)  # before the clock starts
    load = threading.Thread(target=_load, args=(stack, users, sent))
    load.start()
    time.sleep(2.0)
    first_kill = time.monotonic()
    stack.child("mining-worker").process.kill()  # SIGKILL mid-batch
    time.sleep(1.0)
    stack.restart("mining-worker")
    time.sleep(1.0)
    wallet_killed = time.monotonic()
    stack.child("wallet").process.kill()
    time.sleep(1.5)
    stack.restart("wallet")
    load.join(LOAD_SECONDS + 30)
    assert not load.is_alive()

    with sync_redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True) as redis:
        # A transaction the killed wallet left open holds its accounts until the
        # database's transaction lifetime ends (60 s): credits to them wait it out.
        _drained(redis, 120.0)
        dead_letters = redis.xlen(DEAD_LETTERS)

    outcomes = Counter(s.status for s in sent)
    accepted = {f"{s.user_id}:{s.key}": s.accepted for s in sent if s.status == 202}
    refused = {f"{s.user_id}:{s.key}" for s in sent if s.status not in {0, 202}}
    # The load really ran through the kills: clicks were accepted before the
    # first kill and after the wallet's. (How many depends on how busy the
    # machine is, so no rate is asserted.)
    accepted_at = sorted(s.at for s in sent if s.status == 202)
    assert accepted_at, outcomes
    assert accepted_at[0] < first_kill < wallet_killed < accepted_at[-1], outcomes

    audited = asyncio.run(_audit(stack))
    assert audited.settled, audited  # no double, no missing, no wrong amount, nothing owed
    credited = audited.credited_clicks
    missing = set(accepted) - set(credited)
    assert missing == set(), f"{len(missing)} accepted clicks not credited; {outcomes}"
    unknown = {f"{s.user_id}:{s.key}" for s in sent if s.status == 0}
    assert set(credited) - set(accepted) - unknown == set()  # nothing refused is credited
    assert not refused & set(credited)
    assert all(credited[k] == taps * UNITS_PER_TAP for k, taps in accepted.items())
    assert audited.clicks == len(credited)
    # Inviters were paid through the kills (the audit holds them exactly once).
    with mongo_sync(stack) as entries:
        assert entries.count_documents({"source": "mining.referral"}) > 0
        earners = {s.user_id for s in sent if s.status == 202 and s.accepted}
        assert entries.count_documents({"source": "mining.referral_join"}) == len(earners)

    assert dead_letters == 0
    reconcile = subprocess.run(
        [sys.executable, "-m", "services.wallet", "reconcile"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert " 0 differences" in reconcile.stdout
    inspect = subprocess.run(
        [sys.executable, "-m", "services.mining", "inspect"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "0 entries not done" in inspect.stdout
    assert "oldest pending entry: none" in inspect.stdout
