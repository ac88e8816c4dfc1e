"""The quests service's configuration, read once from the environment.

Every mistake raises :class:`ConfigError` naming the variable, so a
misconfigured quests service never starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.config import Env, ServiceSettings


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
        )
