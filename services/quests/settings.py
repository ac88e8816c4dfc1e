"""The quests service's configuration, read once from the environment.

Every mistake raises :class:`ConfigError` naming the variable, so a
misconfigured quests service never starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.config import ConfigError, Env, ServiceSettings
from runtime.money import decimal_units

#: The most days a reward table may list, and the largest reward (minor units).
MAX_DAILY_DAYS = 366
MAX_DAILY_UNITS = 10**15
#: The day boundary's offset from UTC midnight, in minutes (UTC-12:00 to UTC+14:00).
MIN_UTC_OFFSET, MAX_UTC_OFFSET = -720, 840
#: DAILY_REWARDS' default: the coins the 1st, 2nd, ... consecutive day pays
#: (a tap mines 0.001 by default, so day 1 is worth 100 taps).
DEFAULT_DAILY_REWARDS = ("0.1", "0.2", "0.3", "0.5", "0.8", "1.3", "2.1")


@dataclass(frozen=True, slots=True)
class DailyRewardSettings:
    """What a daily claim pays: ``units[streak - 1]`` minor units of ``currency``,
    the last value once the streak is longer than the table."""

    currency: str
    #: The currency's decimal places (as WALLET_CURRENCIES gives them).
    decimals: int
    units: tuple[int, ...]
    #: A day starts at UTC midnight plus this many minutes' offset (local midnight).
    utc_offset_minutes: int

    @classmethod
    def from_env(cls, env: Env) -> DailyRewardSettings:
        currency = env.string("DAILY_REWARD_CURRENCY", "MQC").upper()
        if not currency.isascii() or not currency.isalnum() or not 2 <= len(currency) <= 10:
            raise ConfigError("DAILY_REWARD_CURRENCY", f"not a currency code: {currency!r}")
        decimals = env.integer("DAILY_REWARD_DECIMALS", 8, minimum=0, maximum=18)
        return cls(
            currency=currency,
            decimals=decimals,
            units=_reward_units(env.csv("DAILY_REWARDS", list(DEFAULT_DAILY_REWARDS)), decimals),
            utc_offset_minutes=env.integer(
                "DAILY_REWARD_UTC_OFFSET_MINUTES", 0, minimum=MIN_UTC_OFFSET, maximum=MAX_UTC_OFFSET
            ),
        )


def _reward_units(items: list[str], decimals: int) -> tuple[int, ...]:
    """Each day's amount in minor units, each at least the day before's."""
    name = "DAILY_REWARDS"
    if not items:
        raise ConfigError(name, "must list at least one reward")
    if len(items) > MAX_DAILY_DAYS:
        raise ConfigError(name, f"lists {len(items)} days; at most {MAX_DAILY_DAYS}")
    units: list[int] = []
    for day, item in enumerate(items, start=1):
        scaled = decimal_units(item, decimals)
        if scaled is None or not 0 < scaled <= MAX_DAILY_UNITS:
            raise ConfigError(
                name,
                f"day {day}: {item!r} is not a positive amount with at most {decimals} decimals",
            )
        if units and scaled < units[-1]:
            raise ConfigError(name, f"day {day}: {item} is less than day {day - 1}'s")
        units.append(scaled)
    return tuple(units)


@dataclass(frozen=True, slots=True)
class QuestsSettings:
    service: ServiceSettings
    #: gRPC targets of the services quests calls (usernames; coin rewards).
    auth_service_addr: str
    wallet_service_addr: str
    #: Daily quests reset at this hour (UTC) every day.
    daily_reset_hour: int
    #: How long the leaderboard's top entries are cached (0: no cache).
    leaderboard_cache_seconds: int
    #: How often unconfirmed coin rewards (and leaderboard updates) are retried.
    sweep_interval_seconds: float
    #: A completion's credit is left to the request that made it this long
    #: before the sweeper retries it.
    sweep_min_age_seconds: float
    #: Attempts of a completion whose progress document keeps changing under it.
    complete_max_attempts: int
    #: The daily reward's table and day boundary.
    daily_reward: DailyRewardSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> QuestsSettings:
        env = env or Env()
        return cls(
            service=ServiceSettings.from_env("quests", env, needs_redis=True),
            auth_service_addr=env.service_addr("AUTH_SERVICE_ADDR", "auth"),
            wallet_service_addr=env.service_addr("WALLET_SERVICE_ADDR", "wallet"),
            daily_reset_hour=env.integer("QUESTS_DAILY_RESET_HOUR", 0, minimum=0, maximum=23),
            leaderboard_cache_seconds=env.integer(
                "QUESTS_LEADERBOARD_CACHE_SECONDS", 10, minimum=0, maximum=3600
            ),
            sweep_interval_seconds=env.number(
                "QUESTS_SWEEP_INTERVAL_SECONDS", 30.0, minimum=0.1, maximum=3600
            ),
            sweep_min_age_seconds=env.number(
                "QUESTS_SWEEP_MIN_AGE_SECONDS", 10.0, minimum=0, maximum=3600
            ),
            complete_max_attempts=env.integer(
                "QUESTS_COMPLETE_MAX_ATTEMPTS", 8, minimum=1, maximum=100
            ),
            daily_reward=DailyRewardSettings.from_env(env),
        )
