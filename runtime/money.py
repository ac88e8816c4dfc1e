"""Minor units written as the decimal string every service shows.

The wallet, the quests' coin rewards and the mining reward all hand out
``common.v1.Money``; it and its ``amount`` are written here, the one way.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from minequest.common.v1 import common_pb2


def format_units(units: int, precision: int) -> str:
    """``units`` as a decimal string with all ``precision`` places
    (``150000000`` at 8 -> ``"1.50000000"``; ``42`` at 0 -> ``"42"``)."""
    whole, fraction = divmod(abs(units), 10**precision)
    sign = "-" if units < 0 else ""
    if precision == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{precision}d}"


def to_money(currency: str, units: int, precision: int) -> common_pb2.Money:
    """A Money with both the units and the decimal string."""
    return common_pb2.Money(currency=currency, units=units, amount=format_units(units, precision))


def decimal_units(text: str, precision: int) -> int | None:
    """The minor units of ``text``, a finite decimal number with at most
    ``precision`` places (``"0.001"`` at 8 -> ``100000``; its sign kept); None
    when it is no such number. Configuration readers say why in their words."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    units = value.scaleb(precision)
    return int(units) if units == units.to_integral_value() else None
