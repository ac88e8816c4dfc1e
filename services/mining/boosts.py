"""The boosts catalogue: what players buy with mined coins, declared as data.

The shipped file is ``services/mining/boosts.toml`` (its header documents the
format); ``MINING_BOOSTS_FILE`` points at another one. It is read once at
start and validated there: every mistake is reported, one per line, as
``file:boost.field: problem`` (``boost[2].field`` while the boost has no
valid id), and the service does not start.

Each boost raises one :class:`Effect` per level, and each effect has at most
one boost, so the click script takes one step per effect (ARGV) and one level
per effect (the user's boost hash, :data:`services.mining.clicks.BOOST_FIELDS`).
Prices are minor units of the mined coin, one per level: ``base * growth^(n-1)``
rounded half up, or an explicit list; they never fall from one level to the next.

Errors::

    runtime.config.ConfigError
    └── BoostsError    every mistake in the file, one per line
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from runtime.config_files import Checker, FileMistakes, read_toml
from runtime.money import decimal_units, format_units

__all__ = ["DEFAULT_FILE", "Boost", "BoostsError", "Catalogue", "Effect", "Steps", "load_boosts"]

DEFAULT_FILE = Path(__file__).resolve().parent / "boosts.toml"
FILE_VAR = "MINING_BOOSTS_FILE"

#: The largest price (an int64 of minor units).
INT64_MAX = 2**63 - 1
MAX_LEVEL = 1000
MAX_TITLE = 64
MAX_DESCRIPTION = 500
ID_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TOP_KEYS = ("boost",)
_BOOST_KEYS = ("id", "title", "description", "effect", "per_level", "max_level", "price", "prices")
_PRICE_KEYS = ("base", "growth")


class Effect(enum.StrEnum):
    """What one level of a boost adds."""

    #: Energy when full, in energy.
    ENERGY_MAX = "energy_max"
    #: Energy regenerated per second.
    ENERGY_REGEN = "energy_regen"
    #: Reward per accepted tap, as an amount of the mined coin.
    TAP_REWARD = "tap_reward"


_EFFECTS = ", ".join(effect.value for effect in Effect)


@dataclass(frozen=True, slots=True)
class Boost:
    id: str
    title: str
    description: str
    effect: Effect
    #: One level's effect: energy, energy per second, or minor units of the coin.
    per_level: Decimal
    max_level: int
    #: ``prices[n - 1]`` is the price of level ``n``, in minor units.
    prices: tuple[int, ...]

    def price(self, level: int) -> int | None:
        """The price of reaching ``level`` (``None`` past the maximum)."""
        return self.prices[level - 1] if 1 <= level <= self.max_level else None

    def effective(self, level: int) -> int:
        """``level`` as the click script applies it (never past the maximum)."""
        return max(0, min(level, self.max_level))


@dataclass(frozen=True, slots=True)
class Steps:
    """One level's effect per effect, as the click and peek scripts take them."""

    tank: int = 0
    regen: Decimal = Decimal(0)
    tap_units: int = 0

    def args(self) -> list[int | str]:
        return [self.tank, str(self.regen), self.tap_units]


@dataclass(frozen=True, slots=True)
class Catalogue:
    boosts: tuple[Boost, ...] = ()
    #: The mined coin the prices are in, and its decimal places.
    currency: str = "MQC"
    decimals: int = 8

    def get(self, boost_id: str) -> Boost | None:
        return next((boost for boost in self.boosts if boost.id == boost_id), None)

    def by_effect(self, effect: Effect) -> Boost | None:
        return next((boost for boost in self.boosts if boost.effect is effect), None)

    @property
    def steps(self) -> Steps:
        tank, regen, tap = (self.by_effect(effect) for effect in Effect)
        return Steps(
            tank=int(tank.per_level) if tank else 0,
            regen=regen.per_level if regen else Decimal(0),
            tap_units=int(tap.per_level) if tap else 0,
        )

    def describe(self, boost: Boost, level: int) -> str:
        """``level`` levels of ``boost``'s effect as a decimal string (energy,
        energy per second, or an amount of the coin with all its places)."""
        total = boost.per_level * boost.effective(level)
        if boost.effect is Effect.TAP_REWARD:
            return format_units(int(total), self.decimals)
        return f"{total.normalize():f}"


class BoostsError(FileMistakes):
    """One or more mistakes in the boosts file."""

    subject = "the boosts"


def load_boosts(path: Path, currency: str, decimals: int) -> Catalogue:
    """Read and validate the catalogue; :class:`BoostsError` lists every mistake."""
    source = str(path)
    data = read_toml(path, BoostsError)
    loader = _Loader(source, decimals)
    boosts = loader.catalogue(data)
    if loader.problems:
        raise BoostsError(source, loader.problems)
    return Catalogue(boosts, currency, decimals)


def level_prices(base: int, growth: Decimal, levels: int) -> tuple[int, ...]:
    """``base * growth^(n-1)`` for n = 1..levels, rounded half up to a minor unit."""
    return tuple(
        int((base * growth**n).to_integral_value(rounding=ROUND_HALF_UP)) for n in range(levels)
    )


class _Loader(Checker):
    """Walks the parsed catalogue (:class:`runtime.config_files.Checker`)."""

    def __init__(self, source: str, decimals: int) -> None:
        super().__init__(source)
        self.decimals = decimals

    def catalogue(self, data: Mapping[str, object]) -> tuple[Boost, ...]:
        self.unknown_keys("", data, _TOP_KEYS)
        raw = data.get("boost", [])
        if not isinstance(raw, list):
            self.fail("boost", "must be [[boost]] tables")
            return ()
        boosts: list[Boost] = []
        ids: set[str] = set()
        effects: dict[Effect, str] = {}
        for index, item in enumerate(raw):
            boost = self.boost(index, item, ids, effects)
            if boost is not None:
                boosts.append(boost)
        return tuple(boosts)

    def boost(
        self, index: int, raw: object, ids: set[str], effects: dict[Effect, str]
    ) -> Boost | None:
        if not isinstance(raw, dict):
            self.fail(f"boost[{index}]", "must be a [[boost]] table")
            return None
        before = len(self.problems)
        boost_id = self.boost_id(f"boost[{index}]", raw.get("id"), ids)
        at = boost_id or f"boost[{index}]"
        self.unknown_keys(f"{at}.", raw, _BOOST_KEYS)
        title = self.text(f"{at}.title", raw.get("title"), MAX_TITLE, required=True)
        description = self.text(
            f"{at}.description", raw.get("description"), MAX_DESCRIPTION, required=False
        )
        effect = self.effect(f"{at}.effect", raw.get("effect"), effects, at)
        per_level = self.per_level(f"{at}.per_level", raw.get("per_level"), effect)
        max_level = self.max_level(f"{at}.max_level", raw.get("max_level"))
        prices = self.prices(at, raw, max_level)
        if (
            len(self.problems) > before
            or boost_id is None
            or title is None
            or effect is None
            or per_level is None
            or max_level is None
        ):
            return None
        return Boost(boost_id, title, description or "", effect, per_level, max_level, prices)

    def boost_id(self, where: str, raw: object, seen: set[str]) -> str | None:
        if raw is None:
            self.fail(f"{where}.id", "is required")
        elif not isinstance(raw, str) or not ID_PATTERN.fullmatch(raw):
            self.fail(f"{where}.id", f"must match {ID_PATTERN.pattern}, got {raw!r}")
        elif raw in seen:
            self.fail(f"{where}.id", f"duplicate id {raw!r}")
        else:
            seen.add(raw)
            return raw
        return None

    def text(self, where: str, raw: object, longest: int, *, required: bool) -> str | None:
        if raw is None and not required:
            return ""
        if not isinstance(raw, str) or not raw.strip() or len(raw) > longest:
            need = "is required: " if raw is None else ""
            self.fail(where, f"{need}a string of 1-{longest} characters, got {raw!r}")
            return None
        return raw.strip()

    def effect(self, where: str, raw: object, seen: dict[Effect, str], boost: str) -> Effect | None:
        try:
            effect = Effect(str(raw)) if isinstance(raw, str) else None
        except ValueError:
            effect = None
        if effect is None:
            got = "is required" if raw is None else f"got {raw!r}"
            self.fail(where, f"{got}; must be one of {_EFFECTS}")
            return None
        if effect in seen:
            self.fail(where, f"{effect} is already the effect of {seen[effect]!r}: one boost each")
            return None
        seen[effect] = boost
        return effect

    def per_level(self, where: str, raw: object, effect: Effect | None) -> Decimal | None:
        if effect is None:
            return None
        if effect is Effect.ENERGY_MAX:
            if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 10**9:
                self.fail(where, f"energy per level: an integer 1-1000000000, got {raw!r}")
                return None
            return Decimal(raw)
        if effect is Effect.ENERGY_REGEN:
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= 10**6:
                self.fail(where, f"energy per second per level: a number > 0, got {raw!r}")
                return None
            return Decimal(str(raw))
        units = self.amount(where, raw, "reward per tap per level")
        return None if units is None else Decimal(units)

    def amount(self, where: str, raw: object, what: str) -> int | None:
        """Minor units of a decimal string of the coin, > 0 (``"0.001"``)."""
        example = f'a decimal string such as "0.001" with at most {self.decimals} places'
        if not isinstance(raw, str):
            self.fail(where, f"{what}: {example}, got {raw!r}")
            return None
        units = decimal_units(raw, self.decimals)
        if units is None or units <= 0:
            self.fail(where, f"{what}: {example}, > 0, got {raw!r}")
            return None
        if units > INT64_MAX:
            self.fail(where, f"{what}: too large, got {raw!r}")
            return None
        return units

    def max_level(self, where: str, raw: object) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LEVEL:
            got = "is required" if raw is None else f"got {raw!r}"
            self.fail(where, f"an integer 1-{MAX_LEVEL}; {got}")
            return None
        return raw

    def prices(self, at: str, raw: Mapping[str, object], levels: int | None) -> tuple[int, ...]:
        rule, listed = raw.get("price"), raw.get("prices")
        if (rule is None) == (listed is None):
            self.fail(
                f"{at}.price",
                'give exactly one of price = { base, growth } or prices = ["...", ...]',
            )
            return ()
        if listed is not None:
            return self.price_list(f"{at}.prices", listed, levels)
        return self.price_rule(f"{at}.price", rule, levels)

    def price_list(self, where: str, raw: object, levels: int | None) -> tuple[int, ...]:
        if not isinstance(raw, list):
            self.fail(where, "must be a list of decimal strings, one per level")
            return ()
        if levels is not None and len(raw) != levels:
            self.fail(where, f"needs one price per level: {levels}, got {len(raw)}")
            return ()
        prices = [self.amount(f"{where}[{i}]", item, "a price") for i, item in enumerate(raw)]
        if any(price is None for price in prices):
            return ()
        found = tuple(price for price in prices if price is not None)
        falls = next((i for i in range(1, len(found)) if found[i] < found[i - 1]), None)
        if falls is not None:
            self.fail(f"{where}[{falls}]", "prices must not fall from one level to the next")
            return ()
        return found

    def price_rule(self, where: str, raw: object, levels: int | None) -> tuple[int, ...]:
        if not isinstance(raw, dict):
            self.fail(where, "must be a table { base, growth }")
            return ()
        self.unknown_keys(f"{where}.", raw, _PRICE_KEYS)
        base = self.amount(f"{where}.base", raw.get("base"), "the price of level 1")
        growth_raw = raw.get("growth")
        growth: Decimal | None = None
        if (
            isinstance(growth_raw, bool)
            or not isinstance(growth_raw, int | float)
            or not 1 <= growth_raw <= 100
        ):
            self.fail(
                f"{where}.growth", f"a number 1-100 (price * growth per level), got {growth_raw!r}"
            )
        else:
            growth = Decimal(str(growth_raw))
        if base is None or growth is None or levels is None:
            return ()
        if base * growth ** (levels - 1) > INT64_MAX:
            self.fail(where, f"the price of level {levels} is too large")
            return ()
        return level_prices(base, growth, levels)
