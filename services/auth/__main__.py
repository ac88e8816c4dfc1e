"""``python -m services.auth`` serves; ``python -m services.auth create-admin …``
promotes an account whose wallet is verified (it needs only MONGODB_URI and
AUTH_MONGODB_DATABASE, not the JWT key)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pymongo.errors import PyMongoError

from runtime.config import load_or_exit
from runtime.errors import DomainError
from runtime.grpc_server import serve
from runtime.stores import mongo_client
from services.auth.admin import create_admin
from services.auth.keys import load_signing_key, load_verify_keys
from services.auth.server import auth_lifespan
from services.auth.settings import AuthDatabaseSettings, AuthSettings
from services.auth.store import AuthStore


async def _create_admin(settings: AuthDatabaseSettings, args: argparse.Namespace) -> int:
    client = mongo_client(settings.mongodb_uri, app_name="minequest-auth-cli")
    try:
        store = AuthStore(client, settings.mongodb_database)
        await store.ensure_indexes()
        user_id, changed = await create_admin(
            store, email=args.email, phone=args.phone, user_id=args.user_id, wallet=args.wallet
        )
    except DomainError as error:
        print(f"create-admin: {error.field or 'input'}: {error.message}", file=sys.stderr)
        return 2
    except PyMongoError as error:
        print(
            f"create-admin: MongoDB is unreachable ({type(error).__name__}); check MONGODB_URI",
            file=sys.stderr,
        )
        return 2
    finally:
        await client.close()
    print(f"{'promoted' if changed else 'already'} admin {user_id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.auth")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    admin = commands.add_parser(
        "create-admin",
        help="promote an account whose wallet is verified",
        description="Promote an existing account to admin. Its wallet must be verified "
        "(Sign-In with Ethereum); no account is ever created here.",
    )
    account = admin.add_mutually_exclusive_group(required=True)
    account.add_argument("--email", help="the account's email")
    account.add_argument("--phone", help="the account's phone (E.164)")
    account.add_argument("--user-id", dest="user_id", help="the account's id")
    admin.add_argument("--wallet", help="refuse unless the account's wallet is this one")
    args = parser.parse_args(argv)
    if args.command == "create-admin":
        database = load_or_exit(AuthDatabaseSettings.from_env)
        return asyncio.run(_create_admin(database, args))
    settings = load_or_exit(AuthSettings.from_env)
    key = load_or_exit(
        lambda: load_signing_key(settings.jwt_private_key_file, generate=settings.jwt_generate_key)
    )
    verify_keys = load_or_exit(lambda: load_verify_keys(settings.jwt_verify_key_files))
    asyncio.run(
        serve(
            settings.service,
            lambda: auth_lifespan(settings, key, verify_keys=verify_keys),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
