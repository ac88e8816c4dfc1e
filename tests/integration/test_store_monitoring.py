"""The store clients report on themselves, against the real servers: MongoDB
command timings and client spans (child of the caller's span), pool states,
Redis command timings, and the event-loop lag gauge."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError, OperationFailure

from runtime import metrics
from runtime.store_monitoring import CommandMonitor, PoolMonitor
from runtime.stores import mongo_client, pool_monitor

pytestmark = pytest.mark.integration


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_mongo_commands_are_timed_by_database_command_and_outcome(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    labels = {"database": database_name, "command": "insert", "outcome": "ok"}
    before = sample("db_query_duration_seconds_count", **labels)
    await mongo[database_name].items.insert_one({"_id": 1})
    await mongo[database_name].items.insert_one({"_id": 2})
    with pytest.raises(DuplicateKeyError):
        await mongo[database_name].items.insert_one({"_id": 1})
    # a write a unique index refuses is still an ok reply (with writeErrors);
    # a command the server rejects outright is an error
    assert sample("db_query_duration_seconds_count", **labels) == before + 3
    failed = {"database": database_name, "command": "nosuchcommand", "outcome": "error"}
    with pytest.raises(OperationFailure, match="no such command"):
        await mongo[database_name].command("nosuchcommand")
    assert sample("db_query_duration_seconds_count", **failed) == 1
    await mongo.drop_database(database_name)


class PoolDuringCommands(monitoring.CommandListener):
    """Reads the pool's states each time a command starts (its connection is
    checked out then)."""

    def __init__(self) -> None:
        self.monitor: PoolMonitor | None = None
        self.seen: list[dict[str, int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.monitor is not None and event.command_name == "find":
            self.seen.append(self.monitor.stats())

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_pool_gauge_counts_active_idle_and_waiting_connections(
    mongodb_uri: str, database_name: str
) -> None:
    probe = PoolDuringCommands()
    monitor = PoolMonitor("pool-test")
    probe.monitor = monitor
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, maxPoolSize=1, event_listeners=[monitor, probe]
    )
    try:
        await client[database_name].command("ping")
        assert monitor.stats() == {"active": 0, "idle": 1, "waiting": 0}
        assert sample("db_connection_pool_size", client="pool-test", state="idle") == 1
        # one connection, three callers: while one runs, the others wait
        await asyncio.gather(*(client[database_name].items.find_one({}) for _ in range(3)))
        assert [seen["active"] for seen in probe.seen] == [1, 1, 1]
        assert max(seen["waiting"] for seen in probe.seen) >= 1
        assert monitor.stats() == {"active": 0, "idle": 1, "waiting": 0}
    finally:
        await client.close()
    assert sample("db_connection_pool_size", client="pool-test", state="idle") == 0


async def test_mongo_client_registers_the_monitors(mongodb_uri: str) -> None:
    client = mongo_client(mongodb_uri, app_name="registered")
    try:
        monitor = pool_monitor(client)
        assert monitor is not None
        assert monitor.client == "registered"
        assert any(isinstance(each, CommandMonitor) for each in client.options.event_listeners)
    finally:
        await client.close()


async def test_mongo_commands_are_client_spans_under_the_callers_span(
    mongodb_uri: str, database_name: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, event_listeners=[CommandMonitor(tracer_provider=provider)]
    )
    try:
        with provider.get_tracer("test").start_as_current_span("handle request") as parent:
            await client[database_name].users.find_one({"email": "someone@example.com"})
        await client.drop_database(database_name)
    finally:
        await client.close()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    find = spans[f"find {database_name}.users"]
    assert find.kind is trace.SpanKind.CLIENT
    assert find.parent is not None
    assert find.parent.span_id == parent.get_span_context().span_id
    assert find.attributes is not None
    assert find.attributes["db.system.name"] == "mongodb"
    assert find.attributes["db.collection.name"] == "users"
    assert "someone@example.com" not in str(find.attributes), "no user data in spans"


async def test_redis_commands_and_pipelines_are_timed(redis: aioredis.Redis) -> None:
    before_set = sample("redis_operation_duration_seconds_count", operation="set")
    before_pipe = sample("redis_operation_duration_seconds_count", operation="pipeline")
    await redis.set("k", "v")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get("k")
        pipe.delete("k")
        assert await pipe.execute() == ["v", 1]
    assert sample("redis_operation_duration_seconds_count", operation="set") == before_set + 1
    assert sample("redis_operation_duration_seconds_count", operation="pipeline") == before_pipe + 1


async def test_the_event_loop_lag_gauge_sees_a_blocked_loop() -> None:
    watcher = asyncio.create_task(metrics.watch_event_loop_lag(interval=0.05))
    try:
        await asyncio.sleep(0.12)
        time.sleep(0.3)  # noqa: ASYNC251 - the blocked loop is the point
        await asyncio.sleep(0.01)  # the watcher's overdue timer runs first
        assert sample("asyncio_eventloop_lag_seconds") >= 0.2
    finally:
        watcher.cancel()
