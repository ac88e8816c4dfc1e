"""``create-admin``: the only way to make an admin (never the public API)."""

from __future__ import annotations

from services.auth import validation
from services.auth.service import insert_new_user, new_user, utcnow
from services.auth.store import AuthStore


async def create_admin(
    store: AuthStore, *, wallet: str, email: str | None, phone: str | None, username: str | None
) -> tuple[str, bool]:
    """Promote the wallet's user to admin, or create it as one.

    Returns ``(user_id, created)``.
    """
    checksummed = validation.wallet_address(wallet, field="--wallet")
    now = utcnow()
    existing = await store.user_by("wallet_address", checksummed)
    if existing is not None:
        await store.update_user(existing["_id"], {"role": "admin"}, now)
        return existing["_id"], False
    user = new_user(
        wallet=checksummed,
        email=validation.email(email, field="--email") if email else None,
        phone=validation.phone(phone, field="--phone") if phone else None,
        username=validation.username(username, field="--username") if username else None,
        role="admin",
        referred_by=None,
        now=now,
    )
    if user["email"] is None and user["phone"] is None:
        raise SystemExit("create-admin: give --email or --phone for a new account")
    await insert_new_user(store, user)
    return user["_id"], True
