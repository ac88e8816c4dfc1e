"""Sign-In with Ethereum (EIP-4361) messages and EIP-191 signature recovery.

The server writes the whole message itself, for the account's own wallet:

    {domain} wants you to sign in with your Ethereum account:
    {address}

    {statement}

    URI: {uri}
    Version: 1
    Chain ID: {chain_id}
    Nonce: {nonce}
    Issued At: {issued_at}
    Expiration Time: {expiration_time}

and keeps its SHA-256 with a single-use nonce. A proof is the very same text
(byte for byte, so nothing is parsed) with a ``personal_sign`` signature
that recovers to that wallet. Only externally owned accounts can sign so;
smart-contract wallets (EIP-1271) are not supported.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature

from services.auth.errors import InvalidWalletSignature
from services.auth.settings import SiweSettings

_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")


def new_nonce() -> str:
    """128 random bits as 32 hex digits (EIP-4361 wants at least 8 alphanumerics)."""
    return secrets.token_hex(16)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_text(
    settings: SiweSettings, *, address: str, nonce: str, issued_at: datetime, expires_at: datetime
) -> str:
    """The EIP-4361 message for ``address`` (EIP-55 checksummed)."""
    return (
        f"{settings.domain} wants you to sign in with your Ethereum account:\n"
        f"{address}\n"
        "\n"
        f"{settings.statement}\n"
        "\n"
        f"URI: {settings.uri}\n"
        "Version: 1\n"
        f"Chain ID: {settings.chain_id}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {rfc3339(issued_at)}\n"
        f"Expiration Time: {rfc3339(expires_at)}"
    )


def message_hash(message: str) -> str:
    return hashlib.sha256(message.encode()).hexdigest()


def signer(message: str, signature: str) -> str:
    """The EIP-55 address whose key made ``signature`` (EIP-191 personal_sign)
    over ``message``; :class:`InvalidWalletSignature` when it is malformed."""
    if not _SIGNATURE.match(signature):
        raise InvalidWalletSignature(
            "signature must be 0x and 130 hex digits (65 bytes)", field="signature"
        )
    try:
        address: str = Account.recover_message(
            encode_defunct(text=message), signature=bytes.fromhex(signature[2:])
        )
    except (BadSignature, ValueError, IndexError, TypeError):
        raise InvalidWalletSignature("signature is not valid", field="signature") from None
    return address
