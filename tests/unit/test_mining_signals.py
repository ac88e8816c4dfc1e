"""The bot signals' judging and the mined-coin leaderboards' period keys, as pure
functions fed synthetic timings (a timer's and a thumb's)."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime

import pytest

from runtime.config import ConfigError, Env
from services.mining.leaderboards import Period, board_key, period_id
from services.mining.settings import BotSignals, LeaderboardSettings, tap_rules_from_env
from services.mining.signals import (
    BATCHES_AT_CAP,
    FIXED_INTERVAL,
    SUSTAINED_MAX_RATE,
    Observed,
    Window,
    judge,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = BotSignals()


def window_of(intervals_ms: list[float]) -> Window:
    """Welford's figures of the intervals, as the signal script keeps them."""
    mean = statistics.fmean(intervals_ms)
    m2 = sum((value - mean) ** 2 for value in intervals_ms)
    return Window(len(intervals_ms), mean, m2)


def timer_intervals(count: int, every_ms: float, jitter_ms: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [every_ms + rng.uniform(-jitter_ms, jitter_ms) for _ in range(count)]


def thumb_through_the_web_app(count: int, seed: int = 2) -> list[float]:
    """Intervals between the web app's batches while a person taps without a
    break: a batch goes when a tap comes 2 s after the batch's first, so each
    interval is 2 s plus the overshoot of irregular taps (~120 ms ± 25 ms)."""
    rng = random.Random(seed)
    intervals: list[float] = []
    at = first = 0.0
    last_flush: float | None = None
    while len(intervals) < count:
        at += max(40.0, rng.gauss(120, 25))
        if at - first >= 2000:
            if last_flush is not None:
                intervals.append(at - last_flush)
            last_flush = at
            first = at + max(40.0, rng.gauss(120, 25))
            at = first
    return intervals


def codes(observed: Observed, settings: BotSignals = SETTINGS) -> list[str]:
    return [flag.code for flag in judge(observed, settings, NOW)]


def test_a_timer_clicking_every_100_ms_within_a_millisecond_is_flagged_with_its_figures() -> None:
    window = window_of(timer_intervals(40, 100.0, 0.5))
    (flag,) = judge(Observed(window, 0, 0), SETTINGS, NOW)
    assert flag.code == FIXED_INTERVAL
    assert flag.text.startswith("interval 99.9 ms ± 0.3 ms")
    assert "over 40 intervals between clicks" in flag.text
    assert flag.at == NOW


def test_a_slow_timer_with_network_jitter_is_caught_by_its_coefficient_of_variation() -> None:
    window = window_of(timer_intervals(30, 5000.0, 15.0))
    assert window.stddev_ms > SETTINGS.max_interval_stddev_ms
    assert codes(Observed(window, 0, 0)) == [FIXED_INTERVAL]


def test_a_person_tapping_without_a_break_through_the_web_app_is_not_flagged() -> None:
    for seed in range(20):
        window = window_of(thumb_through_the_web_app(30, seed))
        assert codes(Observed(window, 0, 0)) == [], (seed, window.stddev_ms, window.cv)


def test_a_person_tapping_in_bursts_is_not_flagged() -> None:
    rng = random.Random(3)
    intervals = [rng.choice([400.0, 900.0, 2100.0, 6000.0]) + rng.gauss(0, 80) for _ in range(60)]
    assert codes(Observed(window_of(intervals), 0, 0)) == []


def test_too_few_intervals_are_not_judged() -> None:
    window = window_of(timer_intervals(SETTINGS.min_samples - 1, 100.0, 0.0))
    assert codes(Observed(window, 0, 0)) == []


def test_a_sustained_rate_at_the_cap_is_flagged_only_once_it_lasted_long_enough() -> None:
    windows_needed = SETTINGS.sustained_seconds // 10
    assert codes(Observed(None, 0, windows_needed - 1)) == []
    (flag,) = judge(Observed(None, 0, windows_needed), SETTINGS, NOW)
    assert flag.code == SUSTAINED_MAX_RATE
    assert flag.text == "at least 18 taps/s (90% of the 20/s cap) for 60 s"


def test_a_run_of_clicks_at_the_per_click_maximum_is_flagged() -> None:
    assert codes(Observed(None, SETTINGS.cap_run - 1, 0)) == []
    (flag,) = judge(Observed(None, 12, 0), SETTINGS, NOW)
    assert flag.code == BATCHES_AT_CAP
    assert flag.text == "12 clicks in a row at the 200-tap maximum"


def test_every_signal_that_fires_is_a_reason_of_its_own() -> None:
    window = window_of(timer_intervals(30, 100.0, 0.1))
    assert codes(Observed(window, 10, 6)) == [FIXED_INTERVAL, SUSTAINED_MAX_RATE, BATCHES_AT_CAP]


def test_thresholds_and_the_cap_come_from_the_environment() -> None:
    env = Env(
        {
            "MINING_BOT_MIN_SAMPLES": "10",
            "MINING_BOT_SUSTAINED_SECONDS": "30",
            "MINING_BOT_SHADOW_MODE": "false",
            "MINING_MAX_TAPS_PER_SECOND": "10",
            "MINING_TAP_BURST_SECONDS": "5",
        }
    )
    settings = BotSignals.from_env(env, tap_rules_from_env(env))
    assert (settings.min_samples, settings.sustained_seconds) == (10, 30)
    assert settings.shadow_mode is False
    assert (settings.max_taps_per_second, settings.max_taps_per_click) == (10.0, 50)
    assert BotSignals.from_env(Env({}), tap_rules_from_env(Env({}))).shadow_mode is True


def test_a_day_key_is_the_utc_date_and_a_week_key_the_iso_week() -> None:
    assert board_key(Period.DAY, NOW) == "mining:leaderboard:day:2026-12-01"
    assert board_key(Period.WEEK, NOW) == "mining:leaderboard:week:2026-W49"


def test_iso_weeks_cross_years_at_their_boundaries() -> None:
    # 2026-12-31 is a Thursday: week 53 of 2026; 2027-01-04 (Monday) starts 2027-W01.
    assert period_id(Period.WEEK, datetime(2026, 12, 31, tzinfo=UTC)) == "2026-W53"
    assert period_id(Period.WEEK, datetime(2027, 1, 3, 23, 59, tzinfo=UTC)) == "2026-W53"
    assert period_id(Period.WEEK, datetime(2027, 1, 4, tzinfo=UTC)) == "2027-W01"
    # 2025-12-29 (Monday) is already 2026-W01.
    assert period_id(Period.WEEK, datetime(2025, 12, 29, tzinfo=UTC)) == "2026-W01"


def test_an_offset_moves_the_day_and_week_boundary() -> None:
    # UTC-3: days start at 03:00 UTC, so 02:59 on Monday is still Sunday's day and week.
    monday_early = datetime(2026, 11, 30, 2, 59, tzinfo=UTC)
    assert period_id(Period.DAY, monday_early, -180) == "2026-11-29"
    assert period_id(Period.WEEK, monday_early, -180) == "2026-W48"
    assert period_id(Period.WEEK, datetime(2026, 11, 30, 3, 0, tzinfo=UTC), -180) == "2026-W49"
    # UTC+2: days start at 22:00 UTC the evening before.
    assert period_id(Period.DAY, datetime(2026, 11, 30, 21, 59, tzinfo=UTC), 120) == "2026-11-30"
    assert period_id(Period.DAY, datetime(2026, 11, 30, 22, 0, tzinfo=UTC), 120) == "2026-12-01"


def test_the_leaderboard_offset_is_bounded() -> None:
    settings = LeaderboardSettings.from_env(Env({"MINING_LEADERBOARD_UTC_OFFSET_MINUTES": "-300"}))
    assert settings.utc_offset_minutes == -300
    with pytest.raises(ConfigError, match="MINING_LEADERBOARD_UTC_OFFSET_MINUTES"):
        LeaderboardSettings.from_env(Env({"MINING_LEADERBOARD_UTC_OFFSET_MINUTES": "2000"}))
