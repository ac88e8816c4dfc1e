"""runtime.money.decimal_units: the one reading of a configured coin amount."""

from __future__ import annotations

import pytest

from runtime.money import decimal_units


@pytest.mark.parametrize(
    ("text", "precision", "units"),
    [
        ("0.001", 8, 100_000),
        (" 1.5 ", 2, 150),
        ("1.50", 1, 15),  # trailing zeros past the precision are fine
        ("-0.25", 2, -25),  # the sign is kept: callers decide
        ("7", 0, 7),
        ("1e-8", 8, 1),
    ],
)
def test_amounts_become_minor_units(text: str, precision: int, units: int) -> None:
    assert decimal_units(text, precision) == units


@pytest.mark.parametrize("text", ["0.000000001", "lots", "", "NaN", "Infinity", "1.2.3"])
def test_anything_else_is_none(text: str) -> None:
    assert decimal_units(text, 8) is None
