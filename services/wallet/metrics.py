"""The wallet's Prometheus metrics (gRPC server metrics come from the runtime).

``pending_withdrawals_total{currency}`` (DESIGN.md's name) is a gauge read
from the database, not counted in memory, so every replica reports the same
true number: :class:`PendingGauge` refreshes it every
``WALLET_METRICS_REFRESH_SECONDS`` and right after a withdrawal is created or
decided. Aggregate it across replicas with ``max``, not ``sum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from prometheus_client import Counter, Gauge
from pymongo.errors import PyMongoError

from runtime.tasks import background

log = logging.getLogger(__name__)

PENDING_WITHDRAWALS = Gauge(
    "pending_withdrawals_total",
    "Withdrawals waiting for an admin decision (read from the database).",
    ["currency"],
)
CREDIT_ENTRIES = Counter(
    "wallet_credit_entries_total",
    "Credit entries received, by result (applied, or duplicate of one already posted).",
    ["result"],
)
DEBITS = Counter(
    "wallet_debits_total",
    "Debit calls (spending available funds, e.g. boosts), by result: applied, "
    "duplicate (a replay), insufficient_funds.",
    ["result"],
)
#: The mined-coins counter the dashboards plot and MiningRateDrop alerts on:
#: coins the ledger actually credited for mining (a replayed credit adds nothing).
COINS_MINED = Counter(
    "mining_coins_mined_total",
    "Coins credited to users for mining, in whole coins, by currency (duplicates excluded).",
    ["currency"],
)
MINING_SOURCE = "mining."
DEPOSITS = Counter(
    "wallet_deposits_total",
    "Deposit notifications, by result (matched, unmatched, duplicate).",
    ["result"],
)
WITHDRAWALS = Counter(
    "wallet_withdrawals_total",
    "Withdrawal events (created, completed, rejected).",
    ["event"],
)


class PendingGauge:
    """Keeps ``pending_withdrawals_total`` equal to the database's count."""

    def __init__(
        self,
        count: Callable[[], Awaitable[dict[str, int]]],
        currencies: Iterable[str],
        interval: float,
    ) -> None:
        self._count = count
        self._currencies = tuple(currencies)
        self._interval = interval
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Refresh soon (a withdrawal was created or decided)."""
        self._wake.set()

    async def refresh(self) -> None:
        counts = await self._count()
        for code in {*self._currencies, *counts}:
            PENDING_WITHDRAWALS.labels(code).set(counts.get(code, 0))

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.refresh()
            except PyMongoError as error:
                log.warning("pending withdrawals count failed", extra={"error": str(error)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PendingGauge]:
        """Refresh in the background while the block runs."""
        async with background(self._loop(), "pending-withdrawals-gauge"):
            yield self
