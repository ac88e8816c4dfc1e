"""The click pipeline on real servers for the worker tests: the mining service
and a wallet service in process (on the session's Redis and MongoDB-wire
servers), and click workers run in process against them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from minequest.auth.v1 import auth_pb2_grpc
from minequest.mining.v1 import mining_pb2 as pb
from minequest.mining.v1 import mining_pb2_grpc
from minequest.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from runtime.stores import mongo_client
from services.mining.audit import Audit, audit
from services.mining.metrics import RETRIED
from services.mining.referrals import ReferralSettings
from services.mining.settings import GROUP, STREAM, MiningSettings, WorkerSettings
from services.mining.store import MiningStore
from services.mining.worker import Entry, Worker
from services.wallet.reconcile import reconcile
from services.wallet.server import wallet_lifespan
from services.wallet.store import WalletStore
from tests.integration.conftest import (
    mining_channel,
    mining_env,
    served_address,
    wallet_settings,
)

UNITS_PER_TAP = 100_000  # the default 0.001 MQC with 8 decimals


@dataclass
class Pipeline:
    mining: Any
    wallet: Any
    redis: aioredis.Redis
    mongo: AsyncMongoClient[dict[str, Any]]
    env: dict[str, str]
    wallet_addr: str
    database: str
    wallet_database: str

    def worker_settings(self, **extra: str) -> WorkerSettings:
        return WorkerSettings.from_env(
            mining_env(
                self.env["MONGODB_URI"],
                self.env["REDIS_URL"],
                self.database,
                **{
                    "WALLET_SERVICE_ADDR": self.wallet_addr,
                    "MINING_WORKER_BLOCK_MS": "50",
                    "MINING_WORKER_LINGER_MS": "0",
                    "SHUTDOWN_GRACE_SECONDS": "5",
                    **extra,
                },
            )
        )

    @contextlib.asynccontextmanager
    async def idle_worker(self, auth_addr: str = "", **extra: str) -> AsyncIterator[Worker]:
        """A worker on the real stores and wallet that is not running: a test
        drives its steps (``process``, ``sweep_outbox``) by hand. With
        ``auth_addr`` (a real auth service) it pays inviters too."""
        settings = self.worker_settings(**extra)
        async with (
            grpc.aio.insecure_channel(settings.wallet_service_addr) as channel,
            grpc.aio.insecure_channel(auth_addr or "127.0.0.1:1") as auth_channel,
        ):
            worker = Worker(
                settings,
                self.redis,
                MiningStore(self.mongo, self.database, settings.referrals),
                wallet_pb2_grpc.WalletServiceStub(channel),
                auth_pb2_grpc.AuthServiceStub(auth_channel) if auth_addr else None,
            )
            await worker.ensure_group()
            yield worker

    @contextlib.asynccontextmanager
    async def worker(self, auth_addr: str = "", **extra: str) -> AsyncIterator[Worker]:
        """A running worker (consumers, reclaimer, sweeper); stopped on exit."""
        async with self.idle_worker(auth_addr, **extra) as worker:
            task = asyncio.create_task(worker.run())
            try:
                yield worker
            finally:
                worker.stopping.set()
                await asyncio.wait_for(task, 30)

    async def click(self, user_id: str, key: str, count: int = 1) -> Any:
        return await self.mining.SubmitClick(
            pb.SubmitClickRequest(user_id=user_id, idempotency_key=key, count=count)
        )

    async def deliver(self, consumer: str, count: int = 1000) -> list[Entry]:
        """Up to ``count`` new stream entries, delivered to ``consumer`` (and left pending)."""
        with contextlib.suppress(Exception):  # BUSYGROUP: a worker made it
            await self.redis.xgroup_create(STREAM, GROUP, id="0")
        reply: Any = await self.redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
        return list(reply[0][1]) if reply else []

    async def balance_units(self, user_id: str) -> int:
        reply = await self.wallet.GetBalance(wallet_pb2.GetBalanceRequest(user_id=user_id))
        return sum(b.available_units for b in reply.balances if b.currency == "MQC")

    async def click_state(self, user_id: str, key: str) -> Any:
        reply = await self.mining.GetClickStatus(pb.GetClickStatusRequest(user_id=user_id, key=key))
        return reply.state

    async def audit(self, referrals: ReferralSettings | None = None) -> Audit:
        """The exactly-once audit; with ``referrals``, of the inviters' rewards
        too (the companion auth service's database says who invited whom)."""
        auth = self.mongo[f"{self.database}_auth"] if referrals is not None else None
        return await audit(
            self.mongo[self.database], self.mongo[self.wallet_database], auth, referrals
        )

    async def reconciled(self) -> bool:
        report = await reconcile(WalletStore(self.mongo, self.wallet_database))
        return report.differences == ()

    async def drained(self) -> None:
        await until(self._empty, 20.0)

    async def _empty(self) -> bool:
        pending = await self.redis.xpending(STREAM, GROUP)
        return await self.redis.xlen(STREAM) == 0 and pending["pending"] == 0


@contextlib.asynccontextmanager
async def open_pipeline(
    mongodb_uri: str, redis_url: str, database: str, redis: aioredis.Redis
) -> AsyncIterator[Pipeline]:
    wallet_db = f"{database}_wallet"
    mongo = mongo_client(mongodb_uri, app_name="tests")
    config = MiningSettings.from_env(mining_env(mongodb_uri, redis_url, database))
    try:
        async with (
            served_address(wallet_lifespan(wallet_settings(mongodb_uri, wallet_db))) as wallet_addr,
            mining_channel(config) as mining_ch,
            grpc.aio.insecure_channel(wallet_addr) as wallet_ch,
        ):
            yield Pipeline(
                mining=mining_pb2_grpc.MiningServiceStub(mining_ch),
                wallet=wallet_pb2_grpc.WalletServiceStub(wallet_ch),
                redis=redis,
                mongo=mongo,
                env={"MONGODB_URI": mongodb_uri, "REDIS_URL": redis_url},
                wallet_addr=wallet_addr,
                database=database,
                wallet_database=wallet_db,
            )
    finally:
        await mongo.close()


async def wallet_retried(times: float) -> bool:
    """Whether workers have retried batches for a missing wallet ``times`` times."""
    return bool(RETRIED.labels(error_code="wallet_unavailable")._value.get() >= times)


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
