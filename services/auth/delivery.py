"""The background sender: code mails leave the request path.

An OTP request stores its challenge and hands the mail to this sender, which
returns at once; so the answer takes the same time whether or not the
contact has an account (an unknown contact gets no mail at all). Sends run
as asyncio tasks, at most ``concurrency`` at a time; at most ``queue_size``
mails wait or run. A mail that does not fit, or whose send fails, is a
failure: counted in ``auth_otp_delivery_failures_total{reason}``, logged
(at most one line per ``log_interval`` seconds, with how many were not
logged since), and its ``on_failure`` runs (the OTP flow releases the
requester's cooldown there, so they can retry at once). ``drain`` waits for
the mails in flight on shutdown, within the grace period, then cancels the
rest.

A released cooldown must not tell which contacts have accounts either: while
sends are failing (the last one failed), a contact without an account has
its cooldown released too (:meth:`BackgroundDelivery.submit_decoy`), after
as long as the last failure took.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from prometheus_client import Counter

from services.auth.mailer import CodeMail, CodeSender, DeliveryFailed

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "auth_otp_deliveries_total", "Code mails delivered by the background sender.", ["channel"]
)
DELIVERY_FAILURES = Counter(
    "auth_otp_delivery_failures_total",
    "Code mails that could not be delivered, by reason.",
    ["reason"],
)

FailureHook = Callable[[], Awaitable[None]]


class BackgroundDelivery:
    def __init__(
        self,
        sender: CodeSender,
        *,
        concurrency: int,
        queue_size: int,
        log_interval: float = 60.0,
    ) -> None:
        self.sender = sender
        self._slots = asyncio.Semaphore(concurrency)
        self._queue_size = queue_size
        self._tasks: set[asyncio.Task[None]] = set()
        self._log_interval = log_interval
        self._last_log = -float("inf")
        self._unlogged = 0
        #: How long the last send took to fail; None while sends succeed.
        self._failing_for: float | None = None

    def can_send(self, channel: str) -> bool:
        return self.sender.can_send(channel)

    def submit(self, mail: CodeMail, on_failure: FailureHook) -> None:
        """Queue ``mail``; never waits and never raises."""
        if len(self._tasks) >= self._queue_size:
            self._track(self._failed(mail, "queue_full", on_failure, took=0.0))
        else:
            self._track(self._deliver(mail, on_failure))

    def submit_decoy(self, on_failure: FailureHook) -> None:
        """For a contact without an account (no mail): while sends fail, run
        ``on_failure`` as a failed send would have."""
        if self._failing_for is not None:
            self._track(self._decoy(self._failing_for, on_failure))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, mail: CodeMail, on_failure: FailureHook) -> None:
        async with self._slots:
            started = time.monotonic()
            try:
                await self.sender.send(mail)
            except DeliveryFailed as error:
                took = time.monotonic() - started
                await self._failed(mail, error.reason, on_failure, took=took)
                return
        self._failing_for = None
        DELIVERIES.labels(mail.channel).inc()

    async def _decoy(self, delay: float, on_failure: FailureHook) -> None:
        await asyncio.sleep(delay)
        await self._run(on_failure)

    async def _failed(
        self, mail: CodeMail, reason: str, on_failure: FailureHook, *, took: float
    ) -> None:
        self._failing_for = took
        DELIVERY_FAILURES.labels(reason).inc()
        now = time.monotonic()
        if now - self._last_log >= self._log_interval:
            log.warning(
                "otp delivery failed",
                extra={"reason": reason, "channel": mail.channel, "not_logged": self._unlogged},
            )
            self._last_log, self._unlogged = now, 0
        else:
            self._unlogged += 1
        await self._run(on_failure)

    @staticmethod
    async def _run(on_failure: FailureHook) -> None:
        try:
            await on_failure()
        except Exception:  # the hook talks to MongoDB; a failure there must not be lost silently
            log.exception("otp delivery failure hook failed")

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for the mails in flight; cancel the rest."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("otp mails dropped at shutdown", extra={"count": len(late)})
