"""Coalesce concurrent click requests into one ``SubmitClicks`` call.

At launch-day load many click requests are in the gateway at once, each of
which would be its own gRPC call and its own Redis script in the mining
service. :class:`ClickBatcher` holds each click for at most
``GATEWAY_CLICK_BATCH_WINDOW_MS`` (0: until the event loop has read the
requests that are already in; the default is 2 ms), or until
``GATEWAY_CLICK_BATCH_MAX`` are waiting, and sends them together: one call,
one script, one answer per click — each exactly what ``SubmitClick`` would
have answered, so the HTTP contract does not change. A batch that fails as a
whole (the service is down, the deadline passed) fails every click in it the
way one failed call would.

Nothing is kept between batches: a click is only ever in one call, and
retrying a request is the client's, with the same Idempotency-Key, as before.
``GATEWAY_CLICK_BATCH_MAX=1`` sends every click on its own (``SubmitClick``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from prometheus_client import Histogram

from minequest.mining.v1 import mining_pb2

if TYPE_CHECKING:
    from minequest.mining.v1.mining_pb2_grpc import MiningServiceAsyncStub

__all__ = ["ClickBatcher"]

BATCH_SIZE = Histogram(
    "gateway_click_batch_size",
    "Clicks per SubmitClicks call the gateway sent (GATEWAY_CLICK_BATCH_*).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)

Waiting = tuple[mining_pb2.SubmitClickRequest, "asyncio.Future[mining_pb2.SubmitClickResult]"]


class ClickBatcher:
    def __init__(
        self, mining: MiningServiceAsyncStub, *, max_clicks: int, window_seconds: float
    ) -> None:
        self.mining = mining
        self.max_clicks = max_clicks
        self.window_seconds = window_seconds
        self._waiting: list[Waiting] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def submit(self, click: mining_pb2.SubmitClickRequest) -> mining_pb2.SubmitClickResult:
        """The click's own answer (raises what a failed whole call raises)."""
        if self.max_clicks <= 1:
            return mining_pb2.SubmitClickResult(accepted=await self.mining.SubmitClick(click))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[mining_pb2.SubmitClickResult] = loop.create_future()
        self._waiting.append((click, answer))
        if len(self._waiting) >= self.max_clicks:
            self._flush()
        elif self._timer is None:
            self._timer = (
                loop.call_later(self.window_seconds, self._flush)
                if self.window_seconds > 0
                else loop.call_soon(self._flush)
            )
        return await answer

    async def close(self) -> None:
        """Send what is waiting and wait for the calls in flight (shutdown)."""
        self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Waiting]) -> None:
        request = mining_pb2.SubmitClicksRequest(clicks=[click for click, _ in batch])
        BATCH_SIZE.observe(len(batch))
        try:
            reply = await self.mining.SubmitClicks(request)
            if len(reply.results) != len(batch):
                raise RuntimeError(
                    f"SubmitClicks answered {len(reply.results)} results for {len(batch)} clicks"
                )
        except BaseException as error:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, answer), result in zip(batch, reply.results, strict=True):
            if not answer.done():
                answer.set_result(result)
