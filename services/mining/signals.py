"""Bot signals: tap timing that no thumb produces, seen off the click hot path.

The worker calls :func:`observe` once per batch with each user's accepted
clicks (accepted at, taps), in order. One Lua call (``lua/signals.lua``)
folds them into each user's rolling state in Redis
(``mining:signals:{<user>}``, a hash with a TTL) and answers, per user, what
the state shows; the judging is the pure functions below:

- **fixed interval** (``fixed_interval``): a window of
  ``MINING_BOT_MIN_SAMPLES`` intervals between clicks (Welford's mean and M2,
  restarted after each window and after a pause longer than
  ``MINING_BOT_SESSION_GAP_SECONDS``) whose standard deviation is at most
  ``MINING_BOT_INTERVAL_STDDEV_MS``, or at most ``MINING_BOT_INTERVAL_CV`` of
  the mean: a timer, not a thumb. A person tapping through the web app (which
  sends a batch after a pause or every ~2 s) varies by tens of milliseconds.
- **sustained maximum rate** (``sustained_max_rate``): consecutive
  :data:`RATE_WINDOW_SECONDS` windows each with at least
  ``MINING_BOT_NEAR_RATE`` times ``MINING_MAX_TAPS_PER_SECOND`` accepted taps per
  second, for ``MINING_BOT_SUSTAINED_SECONDS`` or longer.
- **batches at the cap** (``batches_at_cap``): ``MINING_BOT_CAP_RUN`` clicks in
  a row each accepted with the most taps one click can carry
  (min(``MINING_MAX_TAPS_PER_REQUEST``, the tap burst)).

Each flag carries its reason code and a text with the figures; flags go to
:mod:`services.mining.suspects` (a second Redis call, only when a user not
flagged yet is judged a bot).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from services.mining import suspects
from services.mining.settings import BotSignals
from services.mining.suspects import Flag, state_key

__all__ = [
    "RATE_WINDOW_SECONDS",
    "Flag",
    "Observed",
    "Window",
    "judge",
    "observe",
    "state_key",
]

SCRIPT = (Path(__file__).with_name("lua") / "signals.lua").read_text()
#: The length of one rate window.
RATE_WINDOW_SECONDS = 10
#: A user's signal state lives this long after their last click.
STATE_TTL_SECONDS = 2 * 86_400

FIXED_INTERVAL = "fixed_interval"
SUSTAINED_MAX_RATE = "sustained_max_rate"
BATCHES_AT_CAP = "batches_at_cap"


@dataclass(frozen=True, slots=True)
class Window:
    """Intervals between clicks, as Welford's running figures (milliseconds)."""

    samples: int
    mean_ms: float
    m2: float

    @property
    def stddev_ms(self) -> float:
        return math.sqrt(self.m2 / (self.samples - 1)) if self.samples > 1 else math.inf

    @property
    def cv(self) -> float:
        return self.stddev_ms / self.mean_ms if self.mean_ms > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Observed:
    """What one user's signal state shows after a batch."""

    #: A window of intervals completed in this batch (None: none did).
    window: Window | None
    #: The longest run of clicks in a row at the per-click maximum.
    cap_run: int
    #: The longest run of consecutive at-the-cap rate windows.
    hot_windows: int


def hot_taps_per_window(settings: BotSignals) -> float:
    """Accepted taps a rate window needs to count as "at the cap"."""
    return settings.near_rate * settings.max_taps_per_second * RATE_WINDOW_SECONDS


def judge(observed: Observed, settings: BotSignals, now: datetime) -> list[Flag]:
    """The flags what a user's state shows earns (empty: looks human)."""
    flags = []
    window = observed.window
    if window is not None and window.samples >= settings.min_samples:
        steady = window.stddev_ms <= settings.max_interval_stddev_ms
        if steady or window.cv <= settings.max_interval_cv:
            flags.append(
                Flag(
                    FIXED_INTERVAL,
                    f"interval {window.mean_ms:.1f} ms ± {window.stddev_ms:.1f} ms over "
                    f"{window.samples} intervals between clicks (threshold ± "
                    f"{settings.max_interval_stddev_ms:g} ms or "
                    f"{settings.max_interval_cv * 100:g}% of the mean)",
                    now,
                )
            )
    seconds = observed.hot_windows * RATE_WINDOW_SECONDS
    if seconds >= settings.sustained_seconds:
        floor = settings.near_rate * settings.max_taps_per_second
        flags.append(
            Flag(
                SUSTAINED_MAX_RATE,
                f"at least {floor:g} taps/s ({settings.near_rate * 100:g}% of the "
                f"{settings.max_taps_per_second:g}/s cap) for {seconds} s",
                now,
            )
        )
    if observed.cap_run >= settings.cap_run:
        flags.append(
            Flag(
                BATCHES_AT_CAP,
                f"{observed.cap_run} clicks in a row at the {settings.max_taps_per_click}-tap "
                "maximum",
                now,
            )
        )
    return flags


def parse_reply(reply: Sequence[Any]) -> list[tuple[bool, Observed]]:
    """The script's answer: per user, whether already a suspect, and what it saw."""
    out = []
    for suspect, samples, mean, m2, cap_run, hot in zip(*[iter(reply)] * 6, strict=True):
        n = int(samples)
        window = Window(n, float(mean), float(m2)) if n else None
        out.append((bool(int(suspect)), Observed(window, int(cap_run), int(hot))))
    return out


async def observe(
    redis: aioredis.Redis,
    clicks_by_user: Mapping[str, Sequence[tuple[float, int]]],
    settings: BotSignals,
    now: datetime,
) -> list[str]:
    """Fold a batch's accepted clicks ((accepted at epoch seconds, taps), in
    order, per user) into the users' signal state and flag the users it shows
    to be bots; returns the users flagged now (already flagged ones are not)."""
    users = [user for user, clicks in clicks_by_user.items() if clicks]
    if not users:
        return []
    keys = [suspects.SUSPECTS, *(state_key(user) for user in users)]
    args: list[Any] = [
        settings.min_samples,
        int(settings.session_gap_seconds * 1000),
        settings.max_taps_per_click,
        RATE_WINDOW_SECONDS * 1000,
        repr(hot_taps_per_window(settings)),
        STATE_TTL_SECONDS,
    ]
    for user in users:
        clicks = clicks_by_user[user]
        args.append(len(clicks))
        for at, taps in clicks:
            args += [round(at * 1000), int(taps)]
        args.append(user)
    reply = await redis.register_script(SCRIPT)(keys=keys, args=args)
    flags: dict[str, list[Flag]] = {}
    for user, (suspect, observed) in zip(users, parse_reply(reply), strict=True):
        if suspect:
            continue
        found = judge(observed, settings, now)
        if found:
            flags[user] = found
    if not flags:
        return []
    return await suspects.flag(redis, flags, now)
