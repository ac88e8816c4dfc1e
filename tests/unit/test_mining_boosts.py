"""The boosts catalogue: the shipped file, price growth, one fixture per bad config."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from runtime.config import ConfigError, Env, load_or_exit
from services.mining.boosts import (
    DEFAULT_FILE,
    BoostsError,
    Effect,
    Steps,
    level_prices,
    load_boosts,
)
from services.mining.settings import MiningSettings

CONFIGS = Path(__file__).parent / "boost_configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "boosts.toml"
    path.write_text(text)
    return path


def test_the_shipped_file_sells_a_tank_regeneration_and_richer_taps() -> None:
    catalogue = load_boosts(DEFAULT_FILE, "MQC", 8)
    assert [(b.id, b.effect) for b in catalogue.boosts] == [
        ("tank", Effect.ENERGY_MAX),
        ("regen", Effect.ENERGY_REGEN),
        ("tap", Effect.TAP_REWARD),
    ]
    for boost in catalogue.boosts:
        assert len(boost.prices) == boost.max_level
        assert all(b > a for a, b in zip(boost.prices, boost.prices[1:], strict=False))
    assert catalogue.steps == Steps(tank=500, regen=Decimal(1), tap_units=100_000)


def test_prices_grow_by_the_factor_per_level_rounded_half_up_to_a_minor_unit() -> None:
    assert level_prices(5_000_000, Decimal(2), 4) == (5_000_000, 10_000_000, 20_000_000, 40_000_000)
    assert level_prices(3, Decimal("1.5"), 4) == (3, 5, 7, 10)  # 3, 4.5, 6.75, 10.125
    assert level_prices(7, Decimal(1), 3) == (7, 7, 7)


def test_a_price_list_sets_each_level_and_there_is_no_price_past_the_maximum(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
[[boost]]
id = "tank"
title = "Tank"
effect = "energy_max"
per_level = 250
max_level = 3
prices = ["0.1", "0.1", "2.5"]
""",
    )
    (tank,) = load_boosts(path, "MQC", 8).boosts
    assert [tank.price(level) for level in (0, 1, 2, 3, 4)] == [
        None,
        10_000_000,
        10_000_000,
        250_000_000,
        None,
    ]
    assert tank.effective(7) == 3


def test_effects_are_described_in_their_own_units(tmp_path: Path) -> None:
    catalogue = load_boosts(DEFAULT_FILE, "MQC", 8)
    tank, regen, tap = catalogue.boosts
    assert catalogue.describe(tank, 0) == "0"
    assert catalogue.describe(tank, 3) == "1500"
    assert catalogue.describe(regen, 2) == "2"
    assert catalogue.describe(tap, 2) == "0.00200000"
    path = write(
        tmp_path,
        """
[[boost]]
id = "regen"
title = "Regen"
effect = "energy_regen"
per_level = 0.5
max_level = 4
price = { base = "1", growth = 1 }
""",
    )
    slow = load_boosts(path, "MQC", 8)
    assert slow.describe(slow.boosts[0], 3) == "1.5"
    assert slow.steps.args() == [0, "0.5", 0]


def test_a_file_without_boosts_sells_nothing_and_changes_no_click(tmp_path: Path) -> None:
    catalogue = load_boosts(write(tmp_path, "# nothing for sale\n"), "MQC", 8)
    assert catalogue.boosts == ()
    assert catalogue.steps.args() == [0, "0", 0]


def test_the_settings_read_the_file_named_by_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    base = {"REDIS_URL": "redis://127.0.0.1:1/0", "MONGODB_URI": "mongodb://127.0.0.1:1"}
    env = {**base, "MINING_BOOSTS_FILE": str(path)}
    settings = MiningSettings.from_env(Env(env))
    assert settings.boosts.catalogue.boosts == ()
    assert settings.boosts.sweep_seconds == 5.0
    shipped = MiningSettings.from_env(Env(base))
    assert [b.id for b in shipped.boosts.catalogue.boosts] == ["tank", "regen", "tap"]


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(BoostsError) as caught:
        load_boosts(path, "MQC", 8)
    assert str(caught.value).startswith(f"{path}: cannot read {path}")


# --- bad configs: one fixture each ---------------------------------------------

BAD_CONFIGS = [
    ("syntax_error", "", "invalid TOML: Expected ']]'"),
    ("unknown_top_level_key", "version", "unknown key; expected one of boost"),
    ("boost_not_a_table", "boost", "must be [[boost]] tables"),
    ("missing_id", "boost[0].id", "is required"),
    ("bad_id", "boost[0].id", "must match [a-z][a-z0-9_-]{0,31}, got 'Tap Boost'"),
    ("duplicate_id", "boost[1].id", "duplicate id 'tap'"),
    ("unknown_boost_key", "tap.cost", "unknown key; expected one of id, title"),
    ("missing_title", "tap.title", "is required: a string of 1-64 characters"),
    ("unknown_effect", "tap.effect", "got 'luck'; must be one of energy_max, energy_regen"),
    ("effect_twice", "gold.effect", "tap_reward is already the effect of 'tap'"),
    ("tank_step_not_integer", "tank.per_level", "energy per level: an integer"),
    ("regen_step_not_positive", "regen.per_level", "energy per second per level: a number > 0"),
    ("tap_step_too_precise", "tap.per_level", "reward per tap per level: a decimal string"),
    ("tap_step_a_number", "tap.per_level", "reward per tap per level: a decimal string"),
    ("max_level_zero", "tap.max_level", "an integer 1-1000; got 0"),
    ("no_price", "tap.price", "give exactly one of price"),
    ("price_and_prices", "tap.price", "give exactly one of price"),
    ("growth_below_one", "tap.price.growth", "a number 1-100"),
    ("base_not_positive", "tap.price.base", "the price of level 1: a decimal string"),
    ("unknown_price_key", "tap.price.cap", "unknown key; expected one of base, growth"),
    ("prices_wrong_count", "tap.prices", "needs one price per level: 3, got 2"),
    ("prices_falling", "tap.prices[2]", "prices must not fall from one level to the next"),
    ("price_too_large", "tap.price", "the price of level 100 is too large"),
]


@pytest.mark.parametrize(
    ("fixture", "where", "problem"), BAD_CONFIGS, ids=[row[0] for row in BAD_CONFIGS]
)
def test_a_bad_config_is_refused_with_one_clear_error(
    fixture: str, where: str, problem: str
) -> None:
    path = CONFIGS / f"{fixture}.toml"
    with pytest.raises(BoostsError) as caught:
        load_boosts(path, "MQC", 8)
    error = caught.value
    assert isinstance(error, ConfigError)
    location = f"{path}:{where}" if where else str(path)
    assert error.variable == location
    assert error.problem.startswith(problem), error.problem
    assert str(error) == f"{location}: {error.problem}"
    assert "\n" not in str(error)


def test_every_fixture_is_tested() -> None:
    tested = {row[0] for row in BAD_CONFIGS} | {"several_mistakes"}
    assert {path.stem for path in CONFIGS.glob("*.toml")} == tested


def test_several_mistakes_are_all_reported_one_per_line() -> None:
    path = CONFIGS / "several_mistakes.toml"
    with pytest.raises(BoostsError) as caught:
        load_boosts(path, "MQC", 8)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: 5 mistakes in the boosts"
    assert [line.split(": ")[0].removeprefix(f"{path}:") for line in lines[1:]] == [
        "tap.title",
        "tap.per_level",
        "tap.prices[2]",
        "boost[1].id",
        "boost[1].max_level",
    ]


def test_load_or_exit_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = CONFIGS / "max_level_zero.toml"
    with pytest.raises(SystemExit) as exited:
        load_or_exit(lambda: load_boosts(path, "MQC", 8))
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"configuration error: {path}:tap.max_level: an integer 1-1000; got 0"
    ]
