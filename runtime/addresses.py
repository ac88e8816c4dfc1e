"""EVM wallet addresses, one rule for every service.

An address is ``0x`` and 40 hex digits. All-lowercase (or all-uppercase) hex
is accepted and checksummed for the caller; mixed case must be a valid
EIP-55 checksum, since a typo in it would otherwise go unnoticed. The
checksum itself is eth-utils' (the Ethereum Foundation's library).
"""

from __future__ import annotations

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

__all__ = ["InvalidEvmAddress", "eip55"]


class InvalidEvmAddress(ValueError):
    """Not an EVM address; the message says why (for an API answer)."""


def eip55(value: str) -> str:
    """The EIP-55 form of ``value`` (stripped), or :class:`InvalidEvmAddress`."""
    value = value.strip()
    if not value.startswith("0x") or not is_hex_address(value):
        raise InvalidEvmAddress("must be 0x followed by 40 hex digits")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise InvalidEvmAddress("has mixed case but is not a valid EIP-55 checksum")
    return str(to_checksum_address(value))
