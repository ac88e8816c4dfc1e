"""User documents: how they are made, stored and shown (``User``, ``PublicProfile``)."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from minequest.auth.v1 import auth_pb2
from runtime.timestamps import to_timestamp
from services.auth.store import AuthStore, Doc

Clock = Callable[[], datetime]

ROLES = {"user": auth_pb2.ROLE_USER, "admin": auth_pb2.ROLE_ADMIN}


def utcnow() -> datetime:
    return datetime.now(UTC)


def user_message(doc: Doc) -> auth_pb2.User:
    verified_at = doc.get("wallet_verified_at")
    return auth_pb2.User(
        id=doc["_id"],
        wallet_address=doc.get("wallet_address") or "",
        email=doc.get("email") or "",
        phone=doc.get("phone") or "",
        username=doc.get("username") or "",
        role=ROLES.get(doc.get("role", "user"), auth_pb2.ROLE_USER),
        referral_code=doc["referral_code"],
        referred_by=doc.get("referred_by") or "",
        created_at=to_timestamp(doc.get("created_at")),
        updated_at=to_timestamp(doc.get("updated_at")),
        wallet_verified=verified_at is not None,
        wallet_verified_at=to_timestamp(verified_at),
        telegram_id=doc.get("telegram_id") or "",
    )


def public_profile(doc: Doc) -> auth_pb2.PublicProfile:
    """What other services may show of a user: id, wallet (and whether it is
    proved; empty for a Telegram account without one), username."""
    return auth_pb2.PublicProfile(
        user_id=doc["_id"],
        wallet_address=doc.get("wallet_address") or "",
        username=doc.get("username") or "",
        wallet_verified=doc.get("wallet_verified_at") is not None,
    )


def new_referral_code() -> str:
    return base64.b32encode(secrets.token_bytes(5)).decode()


def new_user(
    *,
    wallet: str | None,
    email: str | None,
    phone: str | None,
    username: str | None,
    role: str,
    referred_by: str | None,
    now: datetime,
    telegram_id: str | None = None,
) -> Doc:
    """A new account. ``wallet`` is None for a Telegram account (until it
    proves one); ``referred_by`` is fixed here and never changed after."""
    return {
        "_id": uuid.uuid4().hex,
        "wallet_address": wallet,
        "email": email,
        "phone": phone,
        "username": username,
        "username_key": username.lower() if username else None,
        "role": role,
        "referral_code": new_referral_code(),
        "referred_by": referred_by,
        "wallet_verified_at": None,
        "telegram_id": telegram_id,
        "created_at": now,
        "updated_at": now,
    }


async def insert_new_user(store: AuthStore, user: Doc) -> None:
    """Insert, drawing a fresh referral code on the (rare) collision."""
    for _ in range(5):
        try:
            await store.insert_user(user)
            return
        except DuplicateKeyError:
            user["referral_code"] = new_referral_code()
    await store.insert_user(user)
