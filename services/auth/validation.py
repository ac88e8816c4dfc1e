"""Pure validation and normalisation of what users type in.

Wallets are EVM addresses checked with eth-utils (EIP-55): all-lowercase or
all-uppercase hex is accepted and checksummed; mixed case must be a valid
checksum. Emails go through email-validator (syntax only, no DNS); phones
through phonenumbers (stored as E.164).
"""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from runtime.addresses import InvalidEvmAddress, eip55
from services.auth.errors import (
    InvalidEmail,
    InvalidPhone,
    InvalidReferralCode,
    InvalidUsername,
    InvalidWalletAddress,
)

_USERNAME = re.compile(r"^[A-Za-z0-9_]{3,32}$")
_REFERRAL = re.compile(r"^[A-Z2-7]{8}$")


def wallet_address(value: str, field: str = "walletAddress") -> str:
    """The EIP-55 checksummed form of ``value``, or :class:`InvalidWalletAddress`."""
    try:
        return eip55(value)
    except InvalidEvmAddress as error:
        raise InvalidWalletAddress(f"wallet address {error}", field=field) from None


def email(value: str, field: str = "email") -> str:
    """A normalised, lowercased email address."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmail(f"email is not valid: {error}", field=field) from None
    return str(result.normalized).lower()


def phone(value: str, field: str = "phone") -> str:
    """An E.164 phone number (the leading + and country code are required)."""
    try:
        parsed = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(
            "phone must be in international format, e.g. +14155550123", field=field
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone("phone is not a valid number", field=field)
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def username(value: str, field: str = "username") -> str:
    value = value.strip()
    if not _USERNAME.match(value):
        raise InvalidUsername("username must be 3-32 letters, digits or underscores", field=field)
    return value


def referral_code(value: str, field: str = "referralCode") -> str:
    value = value.strip().upper()
    if not _REFERRAL.match(value):
        raise InvalidReferralCode("referral code is not valid", field=field)
    return value
