"""The daily reward's rules without stores: its settings refused with the
variable named, days at an offset from UTC, the reward table's cap, and the
gateway's rendering of an ``already_claimed`` refusal."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from gateway.errors import daily_claim
from runtime.config import ConfigError, Env
from services.quests import daily
from services.quests.errors import AlreadyClaimed
from services.quests.settings import DailyRewardSettings


def settings(**env: str) -> DailyRewardSettings:
    return DailyRewardSettings.from_env(Env(env))


def test_the_defaults_grow_from_a_tenth_of_a_coin_at_utc_midnight() -> None:
    rewards = settings()
    coin = 10**8
    assert rewards.units == tuple(int(x * coin) for x in (0.1, 0.2, 0.3, 0.5, 0.8, 1.3, 2.1))
    assert (rewards.currency, rewards.decimals, rewards.utc_offset_minutes) == ("MQC", 8, 0)


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"DAILY_REWARDS": "100,abc"}, "DAILY_REWARDS", "day 2"),
        ({"DAILY_REWARDS": "0"}, "DAILY_REWARDS", "day 1"),
        ({"DAILY_REWARDS": "-5"}, "DAILY_REWARDS", "day 1"),
        ({"DAILY_REWARDS": "300,200"}, "DAILY_REWARDS", "less than day 1"),
        ({"DAILY_REWARDS": ","}, "DAILY_REWARDS", "at least one"),
        ({"DAILY_REWARDS": ",".join(["1"] * 367)}, "DAILY_REWARDS", "at most 366"),
        ({"DAILY_REWARD_UTC_OFFSET_MINUTES": "-721"}, "DAILY_REWARD_UTC_OFFSET_MINUTES", ""),
        ({"DAILY_REWARD_UTC_OFFSET_MINUTES": "841"}, "DAILY_REWARD_UTC_OFFSET_MINUTES", ""),
        ({"DAILY_REWARD_UTC_OFFSET_MINUTES": "1h"}, "DAILY_REWARD_UTC_OFFSET_MINUTES", ""),
        ({"DAILY_REWARD_CURRENCY": "M-Q"}, "DAILY_REWARD_CURRENCY", "currency code"),
        ({"DAILY_REWARD_DECIMALS": "19"}, "DAILY_REWARD_DECIMALS", ""),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(
    env: dict[str, str], variable: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    assert caught.value.variable == variable
    assert says in str(caught.value)


def test_the_offsets_limits_are_accepted() -> None:
    assert settings(DAILY_REWARD_UTC_OFFSET_MINUTES="-720").utc_offset_minutes == -720
    assert settings(DAILY_REWARD_UTC_OFFSET_MINUTES="840").utc_offset_minutes == 840


def test_a_day_runs_from_midnight_at_the_offset() -> None:
    late = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
    assert daily.day_of(late, 0) == date(2026, 3, 1)
    assert daily.day_of(late, 120) == date(2026, 3, 2)  # UTC+2: already past midnight
    assert daily.day_of(datetime(2026, 3, 1, 3, 0, tzinfo=UTC), -300) == date(2026, 2, 28)
    assert daily.day_start(date(2026, 3, 2), 120) == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    assert daily.day_start(date(2026, 3, 2), -300) == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    for offset in (-720, -300, 0, 120, 840):
        day = daily.day_of(late, offset)
        after = date.fromordinal(day.toordinal() + 1)
        assert daily.day_start(day, offset) <= late < daily.day_start(after, offset)


def test_the_reward_grows_with_the_streak_and_keeps_the_last_value() -> None:
    rewards = settings(DAILY_REWARDS="0.0000001,0.0000002,0.0000003")
    assert [daily.reward_units(rewards, streak) for streak in range(1, 6)] == [10, 20, 30, 30, 30]


def test_an_already_claimed_refusal_carries_the_claim_as_its_json_renders_it() -> None:
    doc = daily.new_claim(
        settings(),
        "u1",
        date(2026, 3, 1),
        streak=3,
        key="k",
        now=datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC),
    )
    taken = daily.Taken(doc)
    assert isinstance(taken, AlreadyClaimed)
    assert taken.reason == "already_claimed"
    rendered = daily_claim(taken.metadata)["claim"]
    assert rendered == {
        "id": "u1:2026-03-01",
        "day": "2026-03-01",
        "streak": 3,
        "claimedAt": "2026-03-01T10:00:00.250Z",
        "reward": {"currency": "MQC", "units": "30000000", "amount": "0.30000000"},
    }
    assert json.loads(json.dumps(rendered)) == rendered
