"""``python -m services.quests`` serves; ``rebuild-leaderboard`` rebuilds the
Redis leaderboard from MongoDB; ``sweep-credits`` retries every unconfirmed
coin reward once (the service does it in the background too)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from runtime.config import load_or_exit
from runtime.grpc_server import serve
from services.quests.server import quests_lifespan, quests_parts
from services.quests.settings import QuestsSettings


async def _rebuild(settings: QuestsSettings) -> int:
    try:
        async with quests_parts(settings) as parts:
            count = await parts.leaderboard.rebuild()
    except (PyMongoError, RedisError) as error:
        print(
            f"rebuild-leaderboard: a store is unreachable ({type(error).__name__})", file=sys.stderr
        )
        return 2
    if count is None:
        print("rebuild-leaderboard: another rebuild is running; try again shortly", file=sys.stderr)
        return 1
    print(f"rebuild-leaderboard: {count} users")
    return 0


async def _sweep(settings: QuestsSettings) -> int:
    try:
        async with quests_parts(settings) as parts:
            report = await parts.credits.sweep()
            pending = await parts.store.count_pending_credits()
    except (PyMongoError, RedisError) as error:
        print(f"sweep-credits: a store is unreachable ({type(error).__name__})", file=sys.stderr)
        return 2
    print(
        f"sweep-credits: {report.attempted} attempted, {report.confirmed} confirmed, "
        f"{report.failed} failed, {report.resynced} leaderboard updates; {pending} still pending"
    )
    return 0 if report.failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.quests")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    commands.add_parser(
        "rebuild-leaderboard", help="rebuild the Redis leaderboard from MongoDB's progress"
    )
    commands.add_parser(
        "sweep-credits", help="retry every coin reward the wallet has not confirmed, once"
    )
    args = parser.parse_args(argv)
    settings = load_or_exit(QuestsSettings.from_env)
    if args.command == "rebuild-leaderboard":
        return asyncio.run(_rebuild(settings))
    if args.command == "sweep-credits":
        return asyncio.run(_sweep(settings))
    asyncio.run(serve(settings.service, lambda: quests_lifespan(settings)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
