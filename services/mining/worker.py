"""The click worker: drains ``mining-clicks`` through a consumer group.

Per batch (up to ``MINING_WORKER_BATCH_SIZE`` entries, per task):

1. MongoDB, one transaction: the clicks not recorded yet are bulk-inserted
   (``_id`` = click id), each user's totals get one ``$inc`` and one outbox
   document owes their rewards, one line per user
   (:mod:`services.mining.outbox`).
2. ``Wallet.Credit``, one call (per 1000 users): one entry per user,
   idempotent on (``mining.batch``, ``<outbox id>:<user>``), and their
   inviters' shares and join bonuses (:mod:`services.mining.referrals`; who
   invited whom comes from ``Auth.GetReferrers`` before step 1).
3. MongoDB: the outbox document is deleted (the wallet has it).
4. Redis, one pipeline: statuses ``done``, ``XACK``, ``XDEL`` (the stream's
   length stays the backlog), active miners.

Each step is safe to repeat, and a batch retried after a crash anywhere in
it finds its clicks recorded and credits the outbox documents they name
that are still there, so every click is recorded and credited exactly once.
A sweeper in each worker process (every ``MINING_OUTBOX_SWEEP_SECONDS``)
credits outbox documents older than ``MINING_OUTBOX_SWEEP_AGE_SECONDS``,
so a credit committed in step 1 is posted even if its stream entry is lost.

Failures:

- A store or the wallet being down or busy (UNAVAILABLE, DEADLINE_EXCEEDED,
  connection errors) is transient: the batch is retried in place with
  backoff, however long it takes, and nothing is dead-lettered for it.
- Anything else fails the batch's entries one by one, so one poison entry
  cannot hold back the others. An entry's failures are counted; after
  ``MINING_WORKER_MAX_ATTEMPTS`` (retried with growing backoff) it moves to
  ``mining-clicks-dead`` with its error, its status becomes ``failed`` and
  ``mining_worker_failed_total{error_code}`` counts it. A malformed entry is
  dead-lettered at once.
- A dead worker's pending entries are taken over with ``XAUTOCLAIM`` once idle
  for ``MINING_WORKER_CLAIM_IDLE_MS``.

SIGTERM: stop reading, finish the batch in hand within the grace period, or
hand it back (marked idle so another worker claims it at once); exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
import redis.asyncio as aioredis
import redis.exceptions
from pymongo.errors import PyMongoError

from runtime.errors import decode_rpc_error
from runtime.log import Throttle
from runtime.metrics import REDIS_LATENCY_MS
from runtime.stores import STORE_OUTAGES
from runtime.tracing import consumer_span
from services.mining import leaderboards, metrics, signals
from services.mining.clicks import click_id, status_key
from services.mining.outbox import MINED, Outbox, Owed, backlog
from services.mining.referrals import Inviters
from services.mining.settings import DEAD_LETTERS, GROUP, STREAM, WorkerSettings
from services.mining.store import ClickRecord, MiningStore

if TYPE_CHECKING:
    from minequest.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from minequest.wallet.v1.wallet_pb2_grpc import WalletServiceAsyncStub

log = logging.getLogger(__name__)
_LOG_THROTTLE = Throttle(5.0)

ACTIVE_MINERS = "mining-active"
ATTEMPTS = "mining-click-attempts"
ACTIVE_WINDOW_MS = 300_000
#: How often a lingering batch takes the clicks that came meanwhile (it is
#: written as soon as it is full).
LINGER_STEP_SECONDS = 0.25
#: Outbox documents (whole batches) one sweep query takes.
SWEEP_PAGE = 100
_FINISH_LATENCY = REDIS_LATENCY_MS.labels(operation="mining_worker_finish")
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
Entry = tuple[str, dict[str, str] | None]


@dataclass(frozen=True, slots=True)
class Parsed:
    stream_id: str
    fields: dict[str, str]
    record: ClickRecord


class MalformedEntry(Exception):
    pass


def parse(stream_id: str, fields: dict[str, str]) -> Parsed:
    """A stream entry as a click record (raises MalformedEntry)."""
    try:
        user, key = fields["u"], fields["k"]
        taps, reward, accepted = int(fields["n"]), int(fields["r"]), int(fields["t"])
    except (KeyError, ValueError) as error:
        raise MalformedEntry(f"bad field {error}") from None
    if not user or not key or taps <= 0 or reward < 0:
        raise MalformedEntry("empty user or key, or a non-positive count")
    record = ClickRecord(
        id=click_id(user, key),
        user_id=user,
        key=key,
        taps=taps,
        reward_units=reward,
        accepted_at=datetime.fromtimestamp(accepted / 1000, UTC),
        stream_id=stream_id,
        request_id=fields.get("q", ""),
    )
    return Parsed(stream_id, fields, record)


def transient(error: BaseException) -> bool:
    """A failure that says nothing about the entries: retry the batch as it is."""
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code() in TRANSIENT_CODES
    if isinstance(error, STORE_OUTAGES):
        return True
    return isinstance(error, PyMongoError) and error.has_error_label("TransientTransactionError")


def error_code(error: BaseException) -> str:
    if isinstance(error, MalformedEntry):
        return "malformed_entry"
    if isinstance(error, grpc.aio.AioRpcError):
        info = decode_rpc_error(error)
        return info.reason or f"wallet_{info.code.name.lower()}"
    if isinstance(error, PyMongoError):
        return "mongodb_error"
    return "internal"


def backoff_ms(attempts: int, base_ms: int) -> int:
    """Wait before the next attempt of an entry that failed ``attempts`` times."""
    return int(base_ms * 2 ** max(0, attempts - 1))


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        redis: aioredis.Redis,
        store: MiningStore,
        wallet: WalletServiceAsyncStub,
        auth: AuthServiceAsyncStub | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.outbox = Outbox(
            store.outbox,
            wallet,
            settings.reward.currency,
            settings.grpc_timeout_seconds,
            credited=self._on_leaderboards,
        )
        #: Who invited whom, when inviters are paid (an auth client is given).
        self.inviters = Inviters(
            auth if settings.referrals.enabled else None, settings.grpc_timeout_seconds
        )
        self.stopping = asyncio.Event()
        #: One mining transaction at a time per process: concurrent batches of
        #: the same users would abort each other's totals (write conflicts);
        #: the other steps of the batches still overlap.
        self._recording = asyncio.Lock()
        #: Entries each task holds right now (handed back if it must stop).
        self._holding: dict[str, list[str]] = {}

    async def ensure_group(self) -> None:
        """Create the consumer group from the stream's start (every entry still in
        the stream is not done yet) unless it exists."""
        with contextlib.suppress(redis.exceptions.ResponseError):  # BUSYGROUP
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)

    async def run(self) -> None:
        """Consume until :attr:`stopping` is set, then drain within the grace period."""
        await self.ensure_group()
        names = [f"{self.settings.consumer}-{i}" for i in range(self.settings.concurrency)]
        tasks = [asyncio.create_task(self._consume(name), name=name) for name in names]
        tasks.append(asyncio.create_task(self._reclaim(f"{self.settings.consumer}-reclaim")))
        tasks.append(asyncio.create_task(self._gauges()))
        tasks.append(asyncio.create_task(self._sweep(), name=f"{self.settings.consumer}-sweep"))
        log.info("worker started", extra={"consumers": names, "stream": STREAM, "group": GROUP})
        await self.stopping.wait()
        grace = self.settings.service.shutdown_grace_seconds
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("worker task failed", exc_info=result)
        await self._hand_back()

    async def _read(self, consumer: str) -> list[Entry]:
        """Up to a batch of new entries, waiting up to ``block_ms`` for the first;
        then, when at least ``linger_from`` came (a load), until the oldest is
        ``linger_ms`` old or the batch is full, whichever comes first (what
        came meanwhile is taken every :data:`LINGER_STEP_SECONDS`)."""
        settings = self.settings
        size = settings.batch_size
        entries = await self._take(consumer, size, settings.block_ms)
        if not settings.linger_ms or not settings.linger_from <= len(entries) < size:
            return entries
        until_ms = int(entries[0][0].partition("-")[0]) + settings.linger_ms
        while len(entries) < size and not self.stopping.is_set():
            left_ms = until_ms - time.time() * 1000
            if left_ms > 0:
                await self._sleep(min(left_ms / 1000, LINGER_STEP_SECONDS))
            entries += await self._take(consumer, size - len(entries), None)
            if left_ms <= 0:
                break
        return entries

    async def _take(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(
            GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms
        )
        return [entry for _, batch in reply or () for entry in batch]

    async def _consume(self, consumer: str) -> None:
        while not self.stopping.is_set():
            try:
                entries = await self._read(consumer)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                self._warn("read", "cannot read the stream", error)
                await self._sleep(1.0)
                continue
            except redis.exceptions.ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                await self.ensure_group()
                continue
            if entries:
                try:
                    await self.process(consumer, entries)
                except Exception as error:
                    # A consumer outlives any one batch: what it held stays
                    # pending and is reclaimed after the idle timeout.
                    self._fail("consume", "batch left pending after an error", error)
                    await self._sleep(1.0)

    async def _reclaim(self, consumer: str) -> None:
        """Take over entries idle longer than the claim timeout (a dead worker's,
        or this worker's own failed ones, due again after their backoff)."""
        interval = max(0.05, self.settings.claim_idle_ms / 2000)
        while not self.stopping.is_set():
            try:
                start = "0-0"
                while not self.stopping.is_set():
                    reply = await self.redis.xautoclaim(
                        STREAM,
                        GROUP,
                        consumer,
                        min_idle_time=self.settings.claim_idle_ms,
                        start_id=start,
                        count=self.settings.batch_size,
                    )
                    start, entries = reply[0], reply[1]
                    if entries:
                        due = await self._due(entries)
                        if due:
                            log.info("reclaimed idle entries", extra={"entries": len(due)})
                            await self.process(consumer, due)
                    if start in ("0-0", b"0-0"):
                        break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                self._warn("reclaim", "cannot reclaim idle entries", error)
            except Exception as error:
                self._fail("reclaim", "reclaiming failed; trying again", error)
            await self._sleep(interval)

    async def _due(self, entries: list[Entry]) -> list[Entry]:
        """Reclaimed entries whose backoff has passed; deleted ones are acknowledged."""
        gone = [stream_id for stream_id, fields in entries if not fields]
        if gone:
            await self.redis.xack(STREAM, GROUP, *gone)
        live = [(stream_id, fields) for stream_id, fields in entries if fields]
        if not live:
            return []
        marks = await self.redis.hmget(ATTEMPTS, [stream_id for stream_id, _ in live])
        now = int(time.time() * 1000)
        due: list[Entry] = []
        for entry, mark in zip(live, marks, strict=True):
            attempts, last = _attempts(mark)
            if attempts == 0 or now - last >= backoff_ms(attempts, self.settings.claim_idle_ms):
                due.append(entry)
        return due

    async def process(self, consumer: str, entries: Sequence[Entry]) -> None:
        """Finish a batch: transient failures retry it in place, others fail its
        entries one by one."""
        parsed: list[Parsed] = []
        for stream_id, fields in entries:
            try:
                parsed.append(parse(stream_id, fields or {}))
            except MalformedEntry as error:
                await self._dead_letter(stream_id, fields or {}, "malformed_entry", str(error), 1)
        if not parsed:
            return
        # Kept when the task stops or is cancelled mid-batch: run() hands it back.
        self._holding[consumer] = [item.stream_id for item in parsed]
        if await self._finish_batch(consumer, parsed):
            del self._holding[consumer]

    async def _attempt(self, consumer: str, parsed: list[Parsed]) -> None:
        """One try at the batch. However long it takes (a big batch, a slow
        store), its entries never look idle meanwhile, so no other worker takes
        them over and does them twice. Between tries (backing off from an
        outage) they do, so another worker can take over from a stuck one."""
        ids = [item.stream_id for item in parsed]
        keeper = asyncio.create_task(self._keep_claimed(consumer, ids))
        try:
            await self._apply(parsed)
        finally:
            keeper.cancel()

    async def _keep_claimed(self, consumer: str, stream_ids: list[str]) -> None:
        """Reset the idle time of entries this consumer is working on, every
        third of the claim timeout (``XCLAIM ... JUSTID``, which moves nothing)."""
        interval = max(0.05, self.settings.claim_idle_ms / 3000)
        ids: list[Any] = list(stream_ids)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(redis.exceptions.RedisError):
                await self.redis.xclaim(
                    STREAM, GROUP, consumer, min_idle_time=0, message_ids=ids, justid=True
                )

    async def _finish_batch(self, consumer: str, parsed: list[Parsed]) -> bool:
        """Apply the batch; False when stopping interrupted a transient retry
        (the batch is then handed back)."""
        delay = 0.2
        while True:
            try:
                await self._attempt(consumer, parsed)
                return True
            except Exception as error:
                if not transient(error):
                    for item in parsed:
                        await self._alone(item)
                    return True
                metrics.retried(error_code(error)).inc()
                self._warn("transient", "batch failed, retrying", error)
                if self.stopping.is_set():
                    return False
                await self._sleep(delay * (0.5 + random.random()))  # noqa: S311
                delay = min(delay * 2, 5.0)

    async def _alone(self, item: Parsed) -> None:
        try:
            await self._apply([item])
        except Exception as error:
            if transient(error):
                return  # stays pending: reclaimed after the idle timeout
            code = error_code(error)
            metrics.retried(code).inc()
            mark = await self.redis.hget(ATTEMPTS, item.stream_id)
            attempts = _attempts(mark)[0] + 1
            if attempts >= self.settings.max_attempts:
                await self._dead_letter(item.stream_id, item.fields, code, str(error), attempts)
                return
            now = int(time.time() * 1000)
            await self.redis.hset(ATTEMPTS, item.stream_id, f"{attempts}:{now}:{code}")
            self._warn("entry", "entry failed, will retry", error)

    async def _apply(self, batch: Sequence[Parsed]) -> None:
        # One span per batch: a click's own trace when the batch holds one
        # click, else linked to every click's trace (``tp``, set at accept time).
        with consumer_span("mining.worker.batch", (item.fields.get("tp", "") for item in batch)):
            await self._apply_traced(batch)

    async def _apply_traced(self, batch: Sequence[Parsed]) -> None:
        records = [item.record for item in batch]
        started = time.perf_counter()
        chains = await self.inviters.chains(r.user_id for r in records if r.reward_units > 0)
        async with self._recording:
            recorded = await self.store.record(records, datetime.now(UTC), chains)
        owed = await self.outbox.pending(recorded.earlier)
        if recorded.owed is not None:
            owed.append(recorded.owed)
        stored = time.perf_counter()
        await self.outbox.credit(owed, recorded.legacy)
        credited = time.perf_counter()
        await self.outbox.settle(owed)
        await self._finish(batch)
        await self._observe(records)
        done = time.perf_counter()
        log.info(
            "batch done",
            extra={
                "entries": len(batch),
                "users": len({record.user_id for record in records}),
                "duration_ms": round((done - started) * 1000, 1),
                "mongodb_ms": round((stored - started) * 1000, 1),
                "wallet_ms": round((credited - stored) * 1000, 1),
                "finish_ms": round((done - credited) * 1000, 1),
            },
        )

    async def _on_leaderboards(self, owed: Owed) -> None:
        """Post a credited batch's mined units on the day and week boards (once
        per outbox document, however often this runs)."""
        mined = {line.user_id: line.units for line in owed.lines if line.kind == MINED}
        if mined:
            await leaderboards.post_batch(
                self.redis,
                owed.id,
                mined,
                owed.created_at,
                offset_minutes=self.settings.leaderboards.utc_offset_minutes,
            )

    async def _observe(self, records: Sequence[ClickRecord]) -> None:
        """Feed the batch's tap timing to the bot signals. A heuristic, not a
        record: a failure is logged and the batch stays done."""
        clicks: dict[str, list[tuple[float, int]]] = {}
        for record in sorted(records, key=lambda r: r.accepted_at):
            clicks.setdefault(record.user_id, []).append(
                (record.accepted_at.timestamp(), record.taps)
            )
        try:
            flagged = await signals.observe(
                self.redis, clicks, self.settings.signals, datetime.now(UTC)
            )
        except Exception as error:
            self._warn("signals", "bot signals not updated for a batch", error)
            return
        if flagged:
            log.warning("accounts flagged as bots", extra={"users": flagged[:20]})

    async def _finish(self, batch: Sequence[Parsed]) -> None:
        """Statuses done, entries acknowledged and deleted (every credit is posted)."""
        records = [item.record for item in batch]
        now = int(time.time() * 1000)
        ttl = self.settings.status_ttl_seconds
        ids = [item.stream_id for item in batch]
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in records:
                key = status_key(record.user_id, record.key)
                pipe.hset(key, mapping={"s": "d", "r": record.reward_units, "n": record.taps})
                pipe.expire(key, ttl)
            pipe.zadd(ACTIVE_MINERS, {record.user_id: now for record in records})
            pipe.xack(STREAM, GROUP, *ids)
            pipe.xdel(STREAM, *ids)
            pipe.hdel(ATTEMPTS, *ids)
            await pipe.execute()
        _FINISH_LATENCY.observe((time.perf_counter() - started) * 1000)
        metrics.PROCESSED.inc(len(batch))
        oldest = min(record.accepted_at for record in records)
        metrics.LAG.set(max(0.0, now / 1000 - oldest.timestamp()))

    async def sweep_outbox(self) -> int:
        """One sweeper pass: credit outbox documents older than the sweep age
        (a batch that crashed after its transaction, or a credit the wallet
        refused); returns how many were credited."""
        age = timedelta(seconds=self.settings.outbox_sweep_age_seconds)
        credited = 0
        while True:
            report = await self.outbox.sweep(datetime.now(UTC) - age, SWEEP_PAGE)
            credited += report.credited
            if report.credited:
                metrics.OUTBOX_SWEPT.inc(report.credited)
                log.info("swept outbox credits", extra={"credited": report.credited})
            if report.failed or report.credited < SWEEP_PAGE or self.stopping.is_set():
                break
        left = await backlog(self.outbox.collection, datetime.now(UTC))
        metrics.OUTBOX_PENDING.set(left.documents)
        return credited

    async def _sweep(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.settings.outbox_sweep_seconds)
            if self.stopping.is_set():
                break
            try:
                await self.sweep_outbox()
            except Exception as error:
                self._warn("sweep", "outbox sweep failed; the next one retries", error)

    async def _dead_letter(
        self, stream_id: str, fields: dict[str, str], code: str, detail: str, attempts: int
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            letter: dict[Any, Any] = {
                **fields,
                "id": stream_id,
                "error_code": code,
                "error": detail[:500],
                "attempts": attempts,
                "failed_at": int(time.time() * 1000),
            }
            # Bounded: a poison flood must not grow Redis without end (approximate
            # trimming is O(1) per call; `inspect` and alerts see the count).
            pipe.xadd(DEAD_LETTERS, letter, maxlen=self.settings.dead_letter_max, approximate=True)
            if fields.get("u") and fields.get("k"):
                key = status_key(fields["u"], fields["k"])
                pipe.hset(key, mapping={"s": "f", "e": code})
                pipe.expire(key, self.settings.status_ttl_seconds)
            pipe.xack(STREAM, GROUP, stream_id)
            pipe.xdel(STREAM, stream_id)
            pipe.hdel(ATTEMPTS, stream_id)
            await pipe.execute()
        metrics.failed(code).inc()
        log.error(
            "click dead-lettered",
            extra={"stream_id": stream_id, "error_code": code, "attempts": attempts},
        )

    async def _gauges(self) -> None:
        while not self.stopping.is_set():
            try:
                now = int(time.time() * 1000)
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.xlen(STREAM)
                    pipe.zremrangebyscore(ACTIVE_MINERS, "-inf", now - ACTIVE_WINDOW_MS)
                    pipe.zcard(ACTIVE_MINERS)
                    depth, _, active = await pipe.execute()
                metrics.QUEUE_DEPTH.set(depth)
                metrics.ACTIVE_MINERS.set(active)
                if depth == 0:
                    metrics.LAG.set(0)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                self._warn("gauges", "cannot read the queue depth", error)
            await self._sleep(2.0)

    async def _hand_back(self) -> None:
        """Mark what the stopped tasks still held as long idle, so another worker's
        next reclaim takes it at once instead of after the idle timeout."""
        held: list[Any] = [stream_id for ids in self._holding.values() for stream_id in ids]
        if not held:
            return
        with contextlib.suppress(redis.exceptions.RedisError):
            await self.redis.xclaim(
                STREAM,
                GROUP,
                f"{self.settings.consumer}-reclaim",
                min_idle_time=0,
                message_ids=held,
                idle=self.settings.claim_idle_ms * 10,
                justid=True,
            )
            log.info("handed back unfinished entries", extra={"entries": len(held)})

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def _fail(self, what: str, message: str, error: BaseException) -> None:
        held = _LOG_THROTTLE.allow(("error", what))
        if held is not None:
            log.error(message, exc_info=error, extra={"held": held})

    def _warn(self, what: str, message: str, error: BaseException) -> None:
        held = _LOG_THROTTLE.allow(what)
        if held is not None:
            log.warning(message, extra={"error": f"{type(error).__name__}: {error}", "held": held})


def _attempts(mark: Any) -> tuple[int, int]:
    """``attempts:last failure ms:code`` from the attempts hash."""
    if not mark:
        return 0, 0
    parts = str(mark).split(":")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0
