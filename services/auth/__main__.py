"""``python -m services.auth`` serves; ``python -m services.auth create-admin …``
creates or promotes an admin account."""

from __future__ import annotations

import argparse
import asyncio
import sys

from runtime.config import load_or_exit
from runtime.errors import DomainError
from runtime.grpc_server import serve
from runtime.stores import mongo_client
from services.auth.admin import create_admin
from services.auth.keys import load_signing_key
from services.auth.server import auth_lifespan
from services.auth.settings import AuthSettings
from services.auth.store import AuthStore


async def _create_admin(settings: AuthSettings, args: argparse.Namespace) -> int:
    client = mongo_client(settings.service.mongodb_uri, app_name="minequest-auth-cli")
    try:
        store = AuthStore(client, settings.service.mongodb_database)
        await store.ensure_indexes()
        user_id, created = await create_admin(
            store, wallet=args.wallet, email=args.email, phone=args.phone, username=args.username
        )
    except DomainError as error:
        print(f"create-admin: {error.field or 'input'}: {error.message}", file=sys.stderr)
        return 2
    finally:
        await client.close()
    print(f"{'created' if created else 'promoted'} admin {user_id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.auth")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    admin = commands.add_parser("create-admin", help="create or promote an admin account")
    admin.add_argument("--wallet", required=True, help="EVM wallet address")
    admin.add_argument("--email")
    admin.add_argument("--phone")
    admin.add_argument("--username")
    args = parser.parse_args(argv)
    settings = load_or_exit(AuthSettings.from_env)
    if args.command == "create-admin":
        return asyncio.run(_create_admin(settings, args))
    key = load_or_exit(
        lambda: load_signing_key(settings.jwt_private_key_file, generate=settings.jwt_generate_key)
    )
    asyncio.run(serve(settings.service, lambda: auth_lifespan(settings, key)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
