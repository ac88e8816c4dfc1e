"""Chains the wallet knows, and what a valid address and transaction hash are on each.

- EVM chains (``ethereum``, ``bsc``, ``polygon``, ``arbitrum``, ``optimism``,
  ``base``, ``avalanche``): ``0x`` and 40 hex digits, EIP-55 checked with
  eth-utils. All-lowercase or all-uppercase hex is accepted and checksummed;
  mixed case must be a valid checksum (a typo in a mixed-case address is
  caught, not paid out). Transaction hashes: ``0x`` and 64 hex digits.
- ``tron``: base58check, 34 characters starting with ``T`` (version byte
  0x41, double-SHA-256 checksum). Transaction hashes: 64 hex digits.

Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import re

from runtime.addresses import InvalidEvmAddress, eip55
from services.wallet.errors import InvalidAddress, InvalidDeposit, UnknownChain

EVM_CHAINS = frozenset({"ethereum", "bsc", "polygon", "arbitrum", "optimism", "base", "avalanche"})
TRON_CHAINS = frozenset({"tron"})
KNOWN_CHAINS = EVM_CHAINS | TRON_CHAINS

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {ch: i for i, ch in enumerate(_B58)}
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def known_chain(chain: str, field: str = "chain") -> str:
    """The normalised (lower-case) chain name, or :class:`UnknownChain`."""
    name = chain.strip().lower()
    if name not in KNOWN_CHAINS:
        raise UnknownChain(
            f"unknown chain {chain!r}; one of {', '.join(sorted(KNOWN_CHAINS))}", field=field
        )
    return name


def normalize_address(chain: str, value: str, field: str = "address") -> str:
    """The canonical form of an address on ``chain`` (EIP-55 on EVM chains)."""
    chain = known_chain(chain)
    value = value.strip()
    if chain in EVM_CHAINS:
        return _evm_address(value, field)
    return _tron_address(value, field)


def _evm_address(value: str, field: str) -> str:
    try:
        return eip55(value)
    except InvalidEvmAddress as error:
        raise InvalidAddress(f"address {error}", field=field) from None


def _b58decode(value: str) -> bytes | None:
    number = 0
    for ch in value:
        digit = _B58_INDEX.get(ch)
        if digit is None:
            return None
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading = len(value) - len(value.lstrip("1"))
    return b"\x00" * leading + body


def _tron_address(value: str, field: str) -> str:
    raw = _b58decode(value) if len(value) == 34 and value.startswith("T") else None
    if raw is None or len(raw) != 25 or raw[0] != 0x41:
        raise InvalidAddress("a tron address is 34 base58 characters starting with T", field=field)
    payload, checksum = raw[:21], raw[21:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise InvalidAddress("the tron address checksum does not match", field=field)
    return value


def normalize_tx_hash(chain: str, value: str, field: str = "txHash") -> str:
    """A transaction hash in one canonical spelling (lower-case hex), so that
    the same transaction can never be recorded twice under two spellings."""
    chain = known_chain(chain)
    value = value.strip()
    if chain in EVM_CHAINS:
        if not value.lower().startswith("0x") or not _HEX64.match(value[2:]):
            raise InvalidDeposit("txHash must be 0x followed by 64 hex digits", field=field)
        return "0x" + value[2:].lower()
    if not _HEX64.match(value):
        raise InvalidDeposit("txHash must be 64 hex digits", field=field)
    return value.lower()
