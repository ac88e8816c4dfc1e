"""``create-admin``: the only way to make an admin (never the public API).

It promotes an existing account, found by ``--email``, ``--phone`` or
``--user-id`` (exactly one), and only when that account has **proved** its
wallet (Sign-In with Ethereum): wallet addresses are public and registration
never proves ownership, so an address alone must never be enough. An
optional ``--wallet`` must equal the account's wallet. No matching account:
refused (register first, verify the wallet, then promote); nothing is ever
created here. Every refusal changes nothing.
"""

from __future__ import annotations

from runtime.errors import InvalidArgument
from services.auth import validation
from services.auth.errors import AccountNotFound, WalletMismatch, WalletNotVerified
from services.auth.store import AuthStore
from services.auth.users import utcnow

HOW_TO_VERIFY = (
    "log in as that user and prove the wallet: POST /api/auth/wallet/challenge, sign the "
    "message with the wallet (personal_sign), POST /api/auth/wallet/verify; then run this again"
)


async def create_admin(
    store: AuthStore,
    *,
    email: str | None = None,
    phone: str | None = None,
    user_id: str | None = None,
    wallet: str | None = None,
) -> tuple[str, bool]:
    """Promote the account to admin. Returns ``(user_id, changed)``
    (``changed`` is False when it already was an admin)."""
    given = [
        flag
        for flag, value in (("--email", email), ("--phone", phone), ("--user-id", user_id))
        if value
    ]
    if len(given) != 1:
        raise InvalidArgument("give exactly one of --email, --phone or --user-id", field="input")
    flag = given[0]
    if email:
        user = await store.user_by("email", validation.email(email, field="--email"))
    elif phone:
        user = await store.user_by("phone", validation.phone(phone, field="--phone"))
    else:
        user = await store.user(str(user_id))
    if user is None:
        raise AccountNotFound(
            f"no account matches {flag}; register first, verify the wallet, then promote",
            field=flag,
        )
    if wallet is not None:
        expected = validation.wallet_address(wallet, field="--wallet")
        if expected != user["wallet_address"]:
            raise WalletMismatch(
                f"the account's wallet is {user['wallet_address']}, not {expected}",
                field="--wallet",
            )
    if user.get("wallet_verified_at") is None:
        raise WalletNotVerified(
            f"the account's wallet {user['wallet_address']} is not verified; {HOW_TO_VERIFY}",
            field="wallet",
        )
    if user.get("role") == "admin":
        return user["_id"], False
    await store.update_user(user["_id"], {"role": "admin"}, utcnow())
    return user["_id"], True
