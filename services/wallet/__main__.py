"""``python -m services.wallet`` serves; ``python -m services.wallet reconcile``
recomputes every balance from the ledger and exits 1 if any differs."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pymongo.errors import PyMongoError

from runtime.config import load_or_exit
from runtime.grpc_server import serve
from runtime.stores import mongo_client
from services.wallet.money import Currency, format_units
from services.wallet.reconcile import Difference, reconcile
from services.wallet.server import wallet_lifespan
from services.wallet.settings import WalletSettings
from services.wallet.store import WalletStore


def describe(diff: Difference, currency: Currency | None) -> str:
    """One line per account whose balance is not what its ledger says."""

    def show(units: int) -> str:
        return format_units(units, currency) if currency else f"{units} units"

    return (
        f"difference: account {diff.account}: available {show(diff.available)} "
        f"(ledger {show(diff.ledger_available)}), held {show(diff.held)} "
        f"(ledger {show(diff.ledger_held)})"
    )


async def _reconcile(settings: WalletSettings) -> int:
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-wallet-reconcile")
    try:
        report = await reconcile(WalletStore(client, settings.service.mongodb_database))
    except PyMongoError as error:
        print(f"reconcile: MongoDB is unreachable ({type(error).__name__})", file=sys.stderr)
        return 2
    finally:
        await client.close()
    for diff in report.differences:
        print(describe(diff, settings.currencies.get(diff.currency)))
    print(
        f"reconcile: {report.accounts} accounts, {report.entries} entries, "
        f"{len(report.differences)} differences"
    )
    return 1 if report.differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.wallet")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    commands.add_parser(
        "reconcile", help="recompute every balance from the ledger; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    settings = load_or_exit(WalletSettings.from_env)
    if args.command == "reconcile":
        return asyncio.run(_reconcile(settings))
    asyncio.run(serve(settings.service, lambda: wallet_lifespan(settings)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
