"""``python -m services.mining [serve | worker | inspect | replay-dead]``.

- ``serve`` (default): the gRPC service that accepts clicks.
- ``worker``: a stream consumer (run as many processes as you like).
- ``inspect [--json] [--dead-letters N]``: the stream, consumer groups,
  pending entries per consumer, the oldest pending age and the dead letters;
  with ``MONGODB_URI`` set, also the outbox backlog of the mining database.
- ``replay-dead [--count N]``: put dead letters back on the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from minequest.auth.v1 import auth_pb2_grpc
from minequest.wallet.v1 import wallet_pb2_grpc
from runtime.access import MINING_WORKER
from runtime.config import Env, ServiceSettings, load_or_exit
from runtime.grpc_client import channel
from runtime.grpc_server import serve
from runtime.metrics import watch_event_loop_lag
from runtime.priority import lower_priority
from runtime.process import MetricsPortUnavailable, start_process
from runtime.stores import mongo_client, redis_client
from runtime.tasks import background
from runtime.tls import require_identity
from services.mining import metrics
from services.mining.inspection import inspect, render, replay_dead
from services.mining.server import mining_lifespan
from services.mining.settings import MiningSettings, WorkerSettings
from services.mining.store import MiningStore
from services.mining.worker import Worker

log = logging.getLogger("services.mining")


async def run_worker(settings: WorkerSettings) -> int:
    try:
        shutdown_tracing = start_process(
            "mining-worker",
            log_level=settings.service.log_level,
            metrics_port=settings.metrics_port,
            metrics_host=settings.service.grpc_host,
            metrics_variable="MINING_WORKER_METRICS_PORT",
            otlp_endpoint=settings.service.otlp_endpoint,
            gc_threshold=settings.service.gc_threshold,
        )
    except MetricsPortUnavailable as error:
        print(error, file=sys.stderr)
        return 2
    lower_priority(settings.nice)
    assert settings.service.redis_url is not None
    redis = redis_client(settings.service.redis_url, socket_timeout=10.0)
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-mining-worker")
    wallet_channel = channel(settings.wallet_service_addr, "wallet", settings.service.tls)
    auth_channel = channel(settings.auth_service_addr, "auth", settings.service.tls)
    try:
        store = MiningStore(client, settings.service.mongodb_database, settings.referrals)
        worker = Worker(
            settings,
            redis,
            store,
            wallet_pb2_grpc.WalletServiceStub(wallet_channel),
            auth_pb2_grpc.AuthServiceStub(auth_channel),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stopping.set)
        try:
            async with background(watch_event_loop_lag(), "event-loop-lag"):
                await worker.run()
        except RedisError as error:
            print(f"mining worker: Redis is unreachable ({error})", file=sys.stderr)
            return 1
        log.info("worker stopped")
        return 0
    finally:
        await wallet_channel.close()
        await auth_channel.close()
        await redis.aclose()
        await client.close()
        shutdown_tracing()


async def on_redis(
    redis_url: str, command: str, action: Callable[[aioredis.Redis], Awaitable[str]]
) -> int:
    """Run one inspection command and print what it says; exit 2 when Redis is
    unreachable."""
    redis = redis_client(redis_url)
    try:
        print(await action(redis))
    except RedisError as error:
        print(f"{command}: Redis is unreachable ({error})", file=sys.stderr)
        return 2
    except PyMongoError as error:
        print(f"{command}: MongoDB is unreachable ({type(error).__name__})", file=sys.stderr)
        return 2
    finally:
        await redis.aclose()
    return 0


async def inspect_text(
    redis: aioredis.Redis,
    *,
    as_json: bool,
    dead_letters: int,
    mining: ServiceSettings | None = None,
) -> str:
    if mining is None:
        report = await inspect(redis, dead_letters=dead_letters)
    else:
        client = mongo_client(mining.mongodb_uri, app_name="minequest-mining-inspect")
        try:
            outbox = MiningStore(client, mining.mongodb_database).outbox
            report = await inspect(redis, dead_letters=dead_letters, outbox=outbox)
        finally:
            await client.close()
    return json.dumps(report.as_dict(), indent=2) if as_json else render(report)


async def replay_text(redis: aioredis.Redis, *, count: int | None) -> str:
    moved = await replay_dead(redis, count=count)
    return f"replay-dead: {moved} dead letter(s) back on the stream"


def _mining_database() -> ServiceSettings | None:
    """The mining database, when ``MONGODB_URI`` says where it is."""
    if not Env().optional("MONGODB_URI"):
        return None
    return load_or_exit(lambda: ServiceSettings.from_env("mining", Env(), needs_redis=False))


def _redis_url() -> str:
    return load_or_exit(lambda: Env().required("REDIS_URL", "the Redis the mining service uses"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.mining")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    commands.add_parser("worker", help="drain the click stream (any number of processes)")
    show = commands.add_parser("inspect", help="stream, groups, pending entries, dead letters")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--dead-letters", type=int, default=10, help="how many to list (newest)")
    replay = commands.add_parser("replay-dead", help="put dead letters back on the stream")
    replay.add_argument("--count", type=int, default=None, help="at most this many (oldest first)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker = load_or_exit(WorkerSettings.from_env)
        # The wallet lets only this identity (and quests) credit mining rewards.
        load_or_exit(lambda: require_identity(worker.service.tls, MINING_WORKER))
        return asyncio.run(run_worker(worker))
    if args.command == "inspect":
        inspecting = functools.partial(
            inspect_text,
            as_json=args.json,
            dead_letters=max(0, args.dead_letters),
            mining=_mining_database(),
        )
        return asyncio.run(on_redis(_redis_url(), "inspect", inspecting))
    if args.command == "replay-dead":
        replaying = functools.partial(replay_text, count=args.count)
        return asyncio.run(on_redis(_redis_url(), "replay-dead", replaying))
    settings = load_or_exit(MiningSettings.from_env)
    metrics.QUEUE_MAX_DEPTH.set(settings.queue_max_depth)
    asyncio.run(serve(settings.service, lambda: mining_lifespan(settings)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
