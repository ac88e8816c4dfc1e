"""Money as integers: minor units end to end, decimal strings at the edges.

A :class:`Currency` has a code and a precision (decimal places). Amounts are
``int`` minor units everywhere inside the service and in MongoDB.
:func:`parse_decimal` reads a decimal string with :class:`decimal.Decimal`
(never a float) and refuses what the precision cannot hold exactly;
:func:`format_units` writes units back with every decimal place
(``150000000`` MQC -> ``"1.50000000"``).

A :class:`~minequest.common.v1.common_pb2.Money` on input may carry the
decimal string (``amount``), the units, or both when they agree;
:func:`read_money` settles which and checks the currency and the sign.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from dataclasses import dataclass

from minequest.common.v1 import common_pb2
from runtime import money
from services.wallet.errors import InvalidAmount, UnknownCurrency

#: The largest amount an int64 field (and a BSON long) holds.
INT64_MAX = 2**63 - 1
#: The most decimal places a currency may have (10**18 still fits an int64).
MAX_PRECISION = 18

_DECIMAL = re.compile(r"^[0-9]{1,40}(\.[0-9]{1,40})?$")
_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
_CONTEXT = decimal.Context(prec=100, traps=[decimal.InvalidOperation, decimal.Inexact])


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    precision: int


def valid_code(code: str) -> bool:
    """A currency code: 2-10 upper-case letters and digits, starting with a letter."""
    return bool(_CODE.match(code))


def parse_decimal(text: str, currency: Currency, field: str) -> int:
    """Minor units of a decimal string such as ``"12.5"``; positive only.

    Trailing zeros past the precision are fine (``"1.50"`` of a 1-decimal
    currency); any other digit there is ``precision_exceeded``.
    """
    text = text.strip()
    if text.startswith("-"):
        raise InvalidAmount(f"{field} must be positive", reason="amount_not_positive", field=field)
    if not _DECIMAL.match(text):
        raise InvalidAmount(
            f"{field} must be a decimal string such as '12.5'", reason="invalid_amount", field=field
        )
    with decimal.localcontext(_CONTEXT):
        scaled = decimal.Decimal(text).scaleb(currency.precision)
        if scaled != scaled.to_integral_value(rounding=decimal.ROUND_DOWN):
            raise InvalidAmount(
                f"{field} has more than {currency.precision} decimal places for {currency.code}",
                reason="precision_exceeded",
                field=field,
            )
        units = int(scaled)
    return check_units(units, field)


def check_units(units: int, field: str) -> int:
    """``units`` if it is a positive int64, else :class:`InvalidAmount`."""
    if units <= 0:
        raise InvalidAmount(f"{field} must be positive", reason="amount_not_positive", field=field)
    if units > INT64_MAX:
        raise InvalidAmount(f"{field} is too large", reason="amount_too_large", field=field)
    return units


def format_units(units: int, currency: Currency) -> str:
    """``units`` as a decimal string with all of the currency's places."""
    return money.format_units(units, currency.precision)


def currency_of(currencies: Mapping[str, Currency], code: str, field: str) -> Currency:
    currency = currencies.get(code.strip().upper()) if code else None
    if currency is None:
        known = ", ".join(sorted(currencies))
        raise UnknownCurrency(f"unknown currency {code!r}; one of {known}", field=field)
    return currency


def read_money(
    money: common_pb2.Money, currencies: Mapping[str, Currency], field: str
) -> tuple[Currency, int]:
    """The currency and positive minor units of a request's Money.

    ``amount`` (decimal string) or ``units``; both may be given if they agree.
    """
    currency = currency_of(currencies, money.currency, f"{field}.currency")
    if money.amount:
        units = parse_decimal(money.amount, currency, f"{field}.amount")
        if money.units and money.units != units:
            raise InvalidAmount(
                f"{field}.amount and {field}.units disagree",
                reason="amount_mismatch",
                field=f"{field}.units",
            )
        return currency, units
    return currency, check_units(money.units, f"{field}.units")


def to_money(currency: Currency, units: int) -> common_pb2.Money:
    """A Money with both the units and the decimal string."""
    return money.to_money(currency.code, units, currency.precision)
