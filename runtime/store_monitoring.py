"""What the store clients report about themselves: MongoDB command timings and
spans, MongoDB pool states, Redis command timings.

:func:`runtime.stores.mongo_client` registers a :class:`CommandMonitor` and a
:class:`PoolMonitor` on every client it makes, and
:func:`runtime.stores.redis_client` makes a :class:`TimedRedis`:

- ``db_query_duration_seconds{database,command,outcome}`` and one client span
  per command (``find minequest_auth.users``), from PyMongo's command
  monitoring. The span is a child of whatever span is current when the
  command starts, so a request's trace shows its MongoDB calls. (The PyMongo
  OpenTelemetry instrumentation would give the same span, but its newest
  release pins an older semantic-conventions package than the gRPC one.)
- ``db_connection_pool_size{client,state}``: ``active`` (checked out),
  ``idle`` (open, not checked out), ``waiting`` (callers queued for a
  connection: more than a few means the pool is too small or the server slow).
- ``redis_operation_duration_seconds{operation}``: each redis-py command, and
  each pipeline as ``pipeline``. The hot paths' pipelined scripts
  (:mod:`runtime.redis_pipe`) report ``redis_latency_ms`` instead.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
from opentelemetry import trace
from pymongo import monitoring

from runtime.metrics import DB_POOL, DB_QUERY_SECONDS, REDIS_OPERATION_SECONDS

__all__ = ["CommandMonitor", "PoolMonitor", "TimedRedis"]

_Key = tuple[Any, int]
#: Commands timed at once per client, at most (their ends are normally seconds away).
_MAX_IN_FLIGHT = 10_000


class CommandMonitor(monitoring.CommandListener):
    """Times every command and wraps it in a client span."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._provider = tracer_provider
        self._started: dict[_Key, tuple[float, str, str, trace.Span]] = {}

    def _tracer(self) -> trace.Tracer:
        return trace.get_tracer(__name__, tracer_provider=self._provider)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command_name
        target = event.command.get(command)
        collection = target if isinstance(target, str) else ""
        attributes: dict[str, str | int] = {
            "db.system.name": "mongodb",
            "db.namespace": event.database_name,
            "db.operation.name": command,
        }
        if collection:
            attributes["db.collection.name"] = collection
        host, port = event.connection_id
        attributes["server.address"] = str(host)
        if port is not None:
            attributes["server.port"] = int(port)
        name = f"{command} {event.database_name}.{collection}" if collection else command
        span = self._tracer().start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)
        if len(self._started) >= _MAX_IN_FLIGHT:  # a start whose end never came
            *_, lost = self._started.pop(next(iter(self._started)))
            lost.end()
        self._started[(event.connection_id, event.request_id)] = (
            time.perf_counter(),
            event.database_name,
            command,
            span,
        )

    def _finish(self, event: Any, outcome: str, error: str | None = None) -> None:
        entry = self._started.pop((event.connection_id, event.request_id), None)
        if entry is None:
            return
        started, database, command, span = entry
        DB_QUERY_SECONDS.labels(database, command, outcome).observe(time.perf_counter() - started)
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event, "ok")

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        failure = event.failure
        code = failure.get("code") if isinstance(failure, dict) else None
        self._finish(event, "error", f"{event.command_name} failed (code {code})")


class PoolMonitor(monitoring.ConnectionPoolListener):
    """Keeps ``db_connection_pool_size{client=...}`` in step with the pool's events."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.open = 0
        self.active = 0
        self.waiting = 0
        self._gauges = {state: DB_POOL.labels(client, state) for state in STATES}
        self._publish()

    def stats(self) -> dict[str, int]:
        """``{"active": n, "idle": n, "waiting": n}`` as the gauges show them."""
        return {
            "active": self.active,
            "idle": max(0, self.open - self.active),
            "waiting": self.waiting,
        }

    def _publish(self) -> None:
        for state, value in self.stats().items():
            self._gauges[state].set(value)

    def _change(self, *, opened: int = 0, active: int = 0, waiting: int = 0) -> None:
        self.open = max(0, self.open + opened)
        self.active = max(0, self.active + active)
        self.waiting = max(0, self.waiting + waiting)
        self._publish()

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self._change(opened=1)

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self._change(opened=-1)

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        self._change(waiting=1)

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        self._change(waiting=-1)

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self._change(active=1, waiting=-1)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self._change(active=-1)

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass


#: The states of ``db_connection_pool_size``.
STATES = ("active", "idle", "waiting")


def _operation(name: Any) -> str:
    text = name.decode() if isinstance(name, bytes) else str(name)
    return text.split(" ", 1)[0].lower()


class _TimedPipeline(aioredis.client.Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        started = time.perf_counter()
        try:
            return await super().execute(raise_on_error)
        finally:
            REDIS_OPERATION_SECONDS.labels("pipeline").observe(time.perf_counter() - started)


class TimedRedis(aioredis.Redis):
    """redis-py's asyncio client, timing each command and pipeline."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            operation = _operation(args[0]) if args else "unknown"
            REDIS_OPERATION_SECONDS.labels(operation).observe(time.perf_counter() - started)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        return _TimedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
