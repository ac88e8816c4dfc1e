"""The per-account guess guard as pure logic: free failures, the growing
back-off, the daily budget, and the window that ends it all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.auth.guard import GuardPolicy, GuardState, charged, refusal

POLICY = GuardPolicy(
    free_failures=3,
    backoff_base_seconds=30,
    backoff_max_seconds=900,
    daily_budget=30,
    window_seconds=86400,
)
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_the_back_off_doubles_after_the_free_failures_up_to_the_cap():
    delays = [POLICY.backoff_seconds(n) for n in range(1, 12)]
    assert delays == [0, 0, 0, 30, 60, 120, 240, 480, 900, 900, 900]


def test_free_failures_never_lock():
    state = None
    for _ in range(3):
        state = charged(state, POLICY, T0)
        assert refusal(state, POLICY, T0) is None
    assert state is not None
    assert state.failures == 3


def test_a_failure_past_the_free_ones_locks_until_its_back_off_ends():
    state = GuardState(window_start=T0, failures=3, locked_until=None)
    state = charged(state, POLICY, T0)
    assert refusal(state, POLICY, T0 + timedelta(seconds=10)) == 20
    assert refusal(state, POLICY, T0 + timedelta(seconds=30)) is None


def test_the_budget_refuses_until_the_window_ends():
    state = GuardState(window_start=T0, failures=30, locked_until=None)
    later = T0 + timedelta(hours=20)
    assert refusal(state, POLICY, later) == 4 * 3600
    assert refusal(state, POLICY, T0 + timedelta(days=1)) is None


def test_a_new_window_starts_from_nothing():
    old = GuardState(window_start=T0, failures=29, locked_until=T0 + timedelta(minutes=15))
    state = charged(old, POLICY, T0 + timedelta(days=1, seconds=1))
    assert (state.failures, state.locked_until) == (1, None)
    assert state.window_start == T0 + timedelta(days=1, seconds=1)


def test_an_attacker_spends_hours_to_reach_the_budget():
    """Guessing as fast as the locks allow: 30 guesses, then nothing that day."""
    now, state, guesses = T0, None, 0
    while now < T0 + timedelta(days=1):
        wait = refusal(state, POLICY, now)
        if wait is None:
            state = charged(state, POLICY, now)
            guesses += 1
        else:
            now += timedelta(seconds=wait)
    assert guesses == 30
    assert state is not None
    assert (state.locked_until or T0) - T0 > timedelta(hours=5)


@given(st.lists(st.integers(min_value=0, max_value=4000), max_size=200))
def test_no_schedule_of_guesses_beats_the_budget_within_a_window(gaps: list[int]):
    now, state, guesses = T0, None, 0
    for gap in gaps:
        now += timedelta(seconds=gap)
        if now >= T0 + timedelta(seconds=POLICY.window_seconds):
            break
        if refusal(state, POLICY, now) is None:
            state = charged(state, POLICY, now)
            guesses += 1
    assert guesses <= POLICY.daily_budget
