"""Coin rewards: credited through ``Wallet.Credit`` exactly once, whatever crashes.

A completion with a coin reward, or a daily claim, is committed with
``credit_pending: true`` *before* the wallet is called (each collection is a
:class:`~services.quests.store.Payouts`: its source, its memo). Then:

- the request that made it calls ``Wallet.Credit`` (source
  ``quests.completion`` or ``rewards.daily``, source id = the document's id)
  and, when the wallet answers, clears the flag (a daily claim's GET or
  repeated claim retries it too);
- if the wallet was down, slow, or this process died in between, the flag
  stays set and the sweeper (every ``QUESTS_SWEEP_INTERVAL_SECONDS`` in
  each quests process, or ``python -m services.quests sweep-credits``)
  credits every document still pending after ``QUESTS_SWEEP_MIN_AGE_SECONDS``.

The wallet posts each ``(source, source_id)`` once, so a credit sent twice
(the request and the sweeper, two replicas, a retry after an answer was
lost) is still one coin reward. The sweeper also pushes progress whose
leaderboard update was lost (Redis down at the time) into the leaderboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from runtime.errors import decode_rpc_error
from runtime.tasks import background
from services.quests.leaderboard import Leaderboard
from services.quests.metrics import CREDITS, CREDITS_PENDING
from services.quests.peers import Payment, Wallet
from services.quests.store import Payouts, QuestsStore

log = logging.getLogger(__name__)

Doc = dict[str, Any]
BATCH = 100
#: Deadline of the credit a completing request makes (the sweeper takes over after).
INLINE_TIMEOUT = 2.0


def _payment(payouts: Payouts, doc: Doc) -> Payment:
    coin = doc["coin_reward"]
    return Payment(
        doc["user_id"],
        coin["currency"],
        int(coin["units"]),
        payouts.source,
        doc["_id"],
        payouts.memo(doc),
    )


@dataclass(frozen=True, slots=True)
class SweepReport:
    attempted: int = 0
    confirmed: int = 0
    failed: int = 0
    resynced: int = 0


class Credits:
    def __init__(
        self,
        store: QuestsStore,
        wallet: Wallet,
        leaderboard: Leaderboard,
        clock: Callable[[], datetime],
        *,
        min_age_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.wallet = wallet
        self.leaderboard = leaderboard
        self.clock = clock
        self.min_age = timedelta(seconds=min_age_seconds)

    async def credit_now(self, payouts: Payouts, doc: Doc) -> bool:
        """Credit one document's reward; True when the wallet confirmed it.
        A failure leaves it pending for the sweeper (never an error to the user)."""
        if not doc.get("credit_pending"):
            return True
        try:
            entry_ids = await self.wallet.credit([_payment(payouts, doc)], deadline=INLINE_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            CREDITS.labels("failed").inc()
            log.warning(
                "coin reward not credited yet; the sweeper retries it",
                extra={
                    "source": payouts.source,
                    "source_id": doc["_id"],
                    "grpc_code": error.code().name,
                },
            )
            return False
        entry_id = entry_ids.get((payouts.source, doc["_id"]), "")
        await self.store.confirm_credit(payouts, doc["_id"], entry_id, self.clock())
        CREDITS.labels("confirmed").inc()
        return True

    async def sweep(self) -> SweepReport:
        """One pass: credit what is pending, resync lost leaderboard updates."""
        older_than = self.clock() - self.min_age
        attempted = confirmed = failed = 0
        for payouts in self.store.payouts:
            while True:
                docs = await self.store.pending_credits(payouts, older_than, BATCH)
                if not docs:
                    break
                attempted += len(docs)
                done, bad = await self._credit_batch(payouts, docs)
                confirmed += done
                failed += bad
                if done == 0:
                    break  # the wallet refuses or is down: try again next pass
        resynced = await self._resync(older_than)
        CREDITS_PENDING.set(await self.store.count_pending_credits())
        return SweepReport(attempted, confirmed, failed, resynced)

    async def _credit_batch(self, payouts: Payouts, docs: list[Doc]) -> tuple[int, int]:
        try:
            entry_ids = await self.wallet.credit([_payment(payouts, doc) for doc in docs])
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT or len(docs) == 1:
                await self._failed(payouts, docs, error)
                return 0, len(docs)
            # One entry the wallet refuses (a currency it dropped) must not
            # block the others: send them one by one.
            results = [await self._credit_batch(payouts, [doc]) for doc in docs]
            return sum(r[0] for r in results), sum(r[1] for r in results)
        now = self.clock()
        for doc in docs:
            entry_id = entry_ids.get((payouts.source, doc["_id"]), "")
            await self.store.confirm_credit(payouts, doc["_id"], entry_id, now)
        CREDITS.labels("confirmed").inc(len(docs))
        return len(docs), 0

    async def _failed(self, payouts: Payouts, docs: list[Doc], error: grpc.aio.AioRpcError) -> None:
        info = decode_rpc_error(error)
        CREDITS.labels("failed").inc(len(docs))
        log.warning(
            "pending coin rewards not credited",
            extra={
                "source": payouts.source,
                "count": len(docs),
                "grpc_code": info.code.name,
                "reason": info.reason,
            },
        )
        if info.code == grpc.StatusCode.INVALID_ARGUMENT:
            for doc in docs:
                await self.store.note_credit_failure(
                    payouts, doc["_id"], f"{info.reason}: {info.message}"
                )

    async def _resync(self, older_than: datetime) -> int:
        docs = await self.store.unsynced_progress(older_than, 1000)
        for doc in docs:
            await self.leaderboard.record(doc["_id"], int(doc["xp"]), doc["reached_at"])
            await self.store.mark_synced(doc["_id"], int(doc["version"]))
        return len(docs)

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                report = await self.sweep()
                if report.attempted or report.resynced:
                    log.info(
                        "sweep",
                        extra={
                            "attempted": report.attempted,
                            "confirmed": report.confirmed,
                            "failed": report.failed,
                            "resynced": report.resynced,
                        },
                    )
            except (PyMongoError, RedisError) as error:
                log.warning("sweep failed; next pass retries", extra={"error": str(error)})
            await asyncio.sleep(interval)

    @contextlib.asynccontextmanager
    async def sweeping(self, interval: float) -> AsyncIterator[Credits]:
        """Sweep in the background while the block runs."""
        async with background(self._loop(interval), "quests-credit-sweeper"):
            yield self
