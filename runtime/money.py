"""Minor units written as the decimal string every service shows.

The wallet, the quests' coin rewards and the mining reward all hand out
``common.v1.Money``; it and its ``amount`` are written here, the one way.
"""

from __future__ import annotations

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
