"""The per-account guess guard for short login codes (pure logic).

A 6-digit code has 10^6 values; the per-challenge attempt limit alone allows
a few guesses per challenge, and challenges can be had every minute. So
wrong short codes are also counted per contact (the normalised email or
phone, so an unknown contact behaves exactly like a known one) over a window
(a day by default) that starts at the first wrong code:

- the first ``free_failures`` wrong codes cost nothing;
- each further one locks short codes for ``base * 2^k`` seconds (k = 0, 1,
  …), at most ``backoff_max_seconds``;
- after ``daily_budget`` wrong codes, short codes are refused until the
  window ends.

While locked, a short code is refused **before** it is checked and is not
counted, so a locked guard is no oracle. Each check is charged *before* the
code is compared (so concurrent guesses cannot slip past the lock); a
successful login deletes the guard. The long login key in the mail is never
guarded: it cannot be guessed, so the owner can always log in with the
latest mail.

Worst case with the defaults (3 free, 30 s * 2^k up to 15 min, 30 a day):
30 guesses per account per day, i.e. a 30 / 10^6 chance a day of guessing
one code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    free_failures: int
    backoff_base_seconds: int
    backoff_max_seconds: int
    daily_budget: int
    window_seconds: int

    def backoff_seconds(self, failures: int) -> int:
        """The lock after the ``failures``-th wrong code of a window (0 while free)."""
        beyond = failures - self.free_failures
        if beyond <= 0:
            return 0
        doubling: int = 2 ** min(beyond - 1, 30)
        return min(self.backoff_max_seconds, self.backoff_base_seconds * doubling)


@dataclass(frozen=True, slots=True)
class GuardState:
    window_start: datetime
    failures: int
    locked_until: datetime | None

    def window_end(self, policy: GuardPolicy) -> datetime:
        return self.window_start + timedelta(seconds=policy.window_seconds)


def active(state: GuardState | None, policy: GuardPolicy, now: datetime) -> GuardState | None:
    """``state`` while its window lasts; None once it has ended."""
    if state is None or state.window_end(policy) <= now:
        return None
    return state


def refusal(state: GuardState | None, policy: GuardPolicy, now: datetime) -> float | None:
    """Seconds until short codes are accepted again, or None when they are now."""
    state = active(state, policy, now)
    if state is None:
        return None
    if state.failures >= policy.daily_budget:
        return max(1.0, (state.window_end(policy) - now).total_seconds())
    if state.locked_until is not None and state.locked_until > now:
        return max(1.0, (state.locked_until - now).total_seconds())
    return None


def charged(state: GuardState | None, policy: GuardPolicy, now: datetime) -> GuardState:
    """The state after one more (presumed wrong) short code at ``now``."""
    state = active(state, policy, now)
    if state is None:
        state = GuardState(window_start=now, failures=0, locked_until=None)
    failures = state.failures + 1
    lock = policy.backoff_seconds(failures)
    return GuardState(
        window_start=state.window_start,
        failures=failures,
        locked_until=now + timedelta(seconds=lock) if lock else state.locked_until,
    )
