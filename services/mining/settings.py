"""The mining service's and worker's configuration, read once from the environment.

Every mistake raises :class:`ConfigError` naming the variable.

Energy and taps (checked atomically per click, from Redis server time):

    MINING_ENERGY_MAX=1000                 energy when full
    MINING_ENERGY_REGEN_PER_SECOND=3       regenerated lazily: min(max, stored + rate·Δt)
    MINING_ENERGY_PER_TAP=1                energy each accepted tap costs
    MINING_MAX_TAPS_PER_SECOND=20          sustained tap rate a human can reach
    MINING_TAP_BURST_SECONDS=10            a batch may hold this many seconds' worth of taps
    MINING_DAILY_TAP_CAP=20000             accepted taps per user per UTC day (0: no cap)
    MINING_MAX_TAPS_PER_REQUEST=500        largest batch one request may carry

Bot signals (:mod:`services.mining.signals`, flags in :mod:`services.mining.suspects`):

    MINING_BOT_MIN_SAMPLES=30              intervals between clicks judged together
    MINING_BOT_INTERVAL_STDDEV_MS=5        a window with a stddev this small is a timer ...
    MINING_BOT_INTERVAL_CV=0.005           ... or with stddev / mean this small
    MINING_BOT_SESSION_GAP_SECONDS=60      a longer pause starts a new window
    MINING_BOT_SUSTAINED_SECONDS=60        at-the-cap tap rate this long flags
    MINING_BOT_NEAR_RATE=0.9               "at the cap": this share of MINING_MAX_TAPS_PER_SECOND
    MINING_BOT_CAP_RUN=10                  clicks in a row at the per-click maximum that flag
    MINING_BOT_SHADOW_MODE=true            flagged accounts' clicks answer 202 and earn 0

Mined-coin leaderboards (:mod:`services.mining.leaderboards`):

    MINING_LEADERBOARD_UTC_OFFSET_MINUTES=0  days and ISO weeks are dates at UTC+this
    MINING_LEADERBOARD_CACHE_SECONDS=10      Cache-Control max-age of the boards
    AUTH_SERVICE_ADDR                        usernames (Auth.ListPublicProfiles)

Boosts (bought with mined coins; :mod:`services.mining.boosts`, :mod:`services.mining.purchases`):

    MINING_BOOSTS_FILE=services/mining/boosts.toml   the catalogue
    MINING_BOOST_SWEEP_SECONDS=5           how often pending purchases are driven again
    MINING_BOOST_SWEEP_AGE_SECONDS=5       a purchase this old and unsettled is the sweeper's
    WALLET_SERVICE_ADDR                    where Wallet.Debit is called
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from runtime.config import ConfigError, Env, ServiceSettings
from runtime.money import decimal_units
from runtime.priority import BACKGROUND_NICE, background_nice
from services.mining.boosts import DEFAULT_FILE as BOOSTS_FILE
from services.mining.boosts import FILE_VAR as BOOSTS_FILE_VAR
from services.mining.boosts import Catalogue, load_boosts
from services.mining.referrals import NO_REFERRALS, ReferralSettings

#: Names every process of the pipeline agrees on.
STREAM = "mining-clicks"
DEAD_LETTERS = "mining-clicks-dead"
GROUP = "mining-workers"


@dataclass(frozen=True, slots=True)
class Reward:
    currency: str
    decimals: int
    units_per_tap: int


@dataclass(frozen=True, slots=True)
class TapRules:
    energy_max: int
    energy_regen_per_second: float
    energy_per_tap: int
    max_taps_per_second: float
    tap_burst: int
    daily_tap_cap: int
    max_taps_per_request: int


@dataclass(frozen=True, slots=True)
class BoostSettings:
    catalogue: Catalogue
    wallet_service_addr: str
    sweep_seconds: float
    sweep_age_seconds: float
    grpc_timeout_seconds: float

    @classmethod
    def from_env(cls, env: Env, reward: Reward) -> BoostSettings:
        path = Path(env.string(BOOSTS_FILE_VAR, str(BOOSTS_FILE)))
        return cls(
            catalogue=load_boosts(path, reward.currency, reward.decimals),
            wallet_service_addr=env.service_addr("WALLET_SERVICE_ADDR", "wallet"),
            sweep_seconds=env.number("MINING_BOOST_SWEEP_SECONDS", 5.0, minimum=0.01, maximum=3600),
            sweep_age_seconds=env.number(
                "MINING_BOOST_SWEEP_AGE_SECONDS", 5.0, minimum=0, maximum=86_400
            ),
            grpc_timeout_seconds=env.number("GRPC_TIMEOUT_SECONDS", 5.0, minimum=0.01),
        )


@dataclass(frozen=True, slots=True)
class BotSignals:
    """When tap timing looks like no thumb (:mod:`services.mining.signals`)."""

    #: MINING_BOT_MIN_SAMPLES: intervals between clicks judged together.
    min_samples: int = 30
    #: MINING_BOT_INTERVAL_STDDEV_MS: a window this steady (or steadier) is a timer.
    max_interval_stddev_ms: float = 5.0
    #: MINING_BOT_INTERVAL_CV: ... or this small a stddev / mean.
    max_interval_cv: float = 0.005
    #: MINING_BOT_SESSION_GAP_SECONDS: a longer pause starts a new interval window.
    session_gap_seconds: float = 60.0
    #: MINING_BOT_SUSTAINED_SECONDS: at-the-cap rate this long is a bot.
    sustained_seconds: int = 60
    #: MINING_BOT_NEAR_RATE: "at the cap" is this share of the tap-rate cap or more.
    near_rate: float = 0.9
    #: MINING_BOT_CAP_RUN: this many clicks in a row at the per-click maximum.
    cap_run: int = 10
    #: MINING_BOT_SHADOW_MODE: flagged accounts' clicks earn nothing until cleared.
    shadow_mode: bool = True
    #: MINING_MAX_TAPS_PER_SECOND (the tap-rate cap).
    max_taps_per_second: float = 20.0
    #: The most taps one click can be accepted with: min(max per request, burst).
    max_taps_per_click: int = 200

    @classmethod
    def from_env(cls, env: Env, rules: TapRules) -> BotSignals:
        return cls(
            min_samples=env.integer("MINING_BOT_MIN_SAMPLES", 30, minimum=3, maximum=10_000),
            max_interval_stddev_ms=env.number(
                "MINING_BOT_INTERVAL_STDDEV_MS", 5.0, minimum=0, maximum=10_000
            ),
            max_interval_cv=env.number("MINING_BOT_INTERVAL_CV", 0.005, minimum=0, maximum=1),
            session_gap_seconds=env.number(
                "MINING_BOT_SESSION_GAP_SECONDS", 60.0, minimum=1, maximum=86_400
            ),
            sustained_seconds=env.integer(
                "MINING_BOT_SUSTAINED_SECONDS", 60, minimum=10, maximum=86_400
            ),
            near_rate=env.number("MINING_BOT_NEAR_RATE", 0.9, minimum=0.1, maximum=1),
            cap_run=env.integer("MINING_BOT_CAP_RUN", 10, minimum=2, maximum=100_000),
            shadow_mode=env.boolean("MINING_BOT_SHADOW_MODE", True),
            max_taps_per_second=rules.max_taps_per_second,
            max_taps_per_click=min(rules.max_taps_per_request, rules.tap_burst),
        )


@dataclass(frozen=True, slots=True)
class LeaderboardSettings:
    """The mined-coin leaderboards (:mod:`services.mining.leaderboards`)."""

    #: MINING_LEADERBOARD_UTC_OFFSET_MINUTES: days (and ISO weeks) are dates at UTC+this.
    utc_offset_minutes: int = 0
    #: MINING_LEADERBOARD_CACHE_SECONDS: how long clients may keep a board.
    cache_seconds: int = 10
    #: AUTH_SERVICE_ADDR: usernames come from Auth.ListPublicProfiles.
    auth_service_addr: str = "localhost:50051"

    @classmethod
    def from_env(cls, env: Env) -> LeaderboardSettings:
        return cls(
            utc_offset_minutes=env.integer(
                "MINING_LEADERBOARD_UTC_OFFSET_MINUTES", 0, minimum=-14 * 60, maximum=14 * 60
            ),
            cache_seconds=env.integer(
                "MINING_LEADERBOARD_CACHE_SECONDS", 10, minimum=0, maximum=3600
            ),
            auth_service_addr=env.service_addr("AUTH_SERVICE_ADDR", "auth"),
        )


@dataclass(frozen=True, slots=True)
class MiningSettings:
    service: ServiceSettings
    rules: TapRules
    reward: Reward
    queue_max_depth: int
    status_ttl_seconds: int
    throttled_status_ttl_seconds: int
    redis_timeout_seconds: float
    boosts: BoostSettings
    signals: BotSignals = BotSignals()
    leaderboards: LeaderboardSettings = LeaderboardSettings()

    @classmethod
    def from_env(cls, env: Env | None = None) -> MiningSettings:
        env = env or Env()
        rules = tap_rules_from_env(env)
        reward = reward_from_env(env)
        return cls(
            service=ServiceSettings.from_env("mining", env),
            rules=rules,
            reward=reward,
            queue_max_depth=env.integer("MINING_QUEUE_MAX_DEPTH", 100_000, minimum=1),
            status_ttl_seconds=env.integer(
                "MINING_STATUS_TTL_SECONDS", 86_400, minimum=60, maximum=30 * 86_400
            ),
            throttled_status_ttl_seconds=env.integer(
                "MINING_THROTTLED_STATUS_TTL_SECONDS", 600, minimum=1, maximum=86_400
            ),
            redis_timeout_seconds=env.integer(
                "MINING_REDIS_TIMEOUT_MS", 1000, minimum=1, maximum=60_000
            )
            / 1000,
            boosts=BoostSettings.from_env(env, reward),
            signals=BotSignals.from_env(env, rules),
            leaderboards=LeaderboardSettings.from_env(env),
        )


def tap_rules_from_env(env: Env) -> TapRules:
    """The energy and tap rules (the click script's and the bot signals' cap)."""
    max_tps = env.number("MINING_MAX_TAPS_PER_SECOND", 20.0, minimum=0.1, maximum=1000)
    burst_seconds = env.number("MINING_TAP_BURST_SECONDS", 10.0, minimum=1, maximum=3600)
    rules = TapRules(
        energy_max=env.integer("MINING_ENERGY_MAX", 1000, minimum=1, maximum=10**9),
        energy_regen_per_second=env.number(
            "MINING_ENERGY_REGEN_PER_SECOND", 3.0, minimum=0.001, maximum=10**6
        ),
        energy_per_tap=env.integer("MINING_ENERGY_PER_TAP", 1, minimum=0, maximum=10**6),
        max_taps_per_second=max_tps,
        tap_burst=max(1, int(max_tps * burst_seconds)),
        daily_tap_cap=env.integer("MINING_DAILY_TAP_CAP", 20_000, minimum=0),
        max_taps_per_request=env.integer(
            "MINING_MAX_TAPS_PER_REQUEST", 500, minimum=1, maximum=100_000
        ),
    )
    if rules.energy_per_tap > rules.energy_max:
        raise ConfigError(
            "MINING_ENERGY_PER_TAP",
            f"must not exceed MINING_ENERGY_MAX ({rules.energy_max}): no tap could ever pass",
        )
    return rules


def reward_from_env(env: Env) -> Reward:
    currency = env.string("MINING_REWARD_CURRENCY", "MQC").upper()
    if not currency.isalnum() or not 2 <= len(currency) <= 10:
        raise ConfigError("MINING_REWARD_CURRENCY", f"not a currency code: {currency!r}")
    decimals = env.integer("MINING_REWARD_DECIMALS", 8, minimum=0, maximum=18)
    text = env.string("MINING_REWARD_PER_TAP", "0.001")
    units = decimal_units(text, decimals)
    if units is None or units < 0:
        raise ConfigError(
            "MINING_REWARD_PER_TAP",
            f"must be a non-negative amount with at most {decimals} decimals "
            f"(MINING_REWARD_DECIMALS), got {text!r}",
        )
    return Reward(currency=currency, decimals=decimals, units_per_tap=units)


#: How old a batch's oldest click gets before the worker writes it (unless the
#: batch is full first): each user's clicks in it cost one totals update, one
#: ledger entry and one balance update, so the longer a batch covers, the more
#: clicks per user share them. Side by side (README, Benchmarks), 8 s with
#: 10,000-click batches cut SecantusDB's CPU per click by 38-54 % against 2 s
#: with 5,000 (four rounds), and the suite accepted 6-38 % more clicks; 5 s cut
#: it by 21-36 %, accepted -4 to +15 %. The price is up to 8 s more before a
#: click is credited, under load only (:data:`LINGER_FROM`).
LINGER_MS = 8000
#: Most clicks one batch takes (MINING_WORKER_BATCH_SIZE's default and limit).
BATCH_SIZE = 10_000
#: A batch lingers only when at least this many clicks were waiting: under a
#: lighter load CPU is cheap and the wait would be all cost.
LINGER_FROM = 100


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    service: ServiceSettings
    reward: Reward
    wallet_service_addr: str
    concurrency: int
    batch_size: int
    block_ms: int
    claim_idle_ms: int
    max_attempts: int
    status_ttl_seconds: int
    metrics_port: int | None
    consumer: str
    grpc_timeout_seconds: float
    #: The dead-letter stream keeps about this many newest entries (XADD MAXLEN ~).
    dead_letter_max: int = 100_000
    #: How often the outbox sweeper runs in each worker process.
    outbox_sweep_seconds: float = 10.0
    #: An outbox document this old is credited by the sweeper (the batch that
    #: wrote it crashed, or the wallet refused it so far).
    outbox_sweep_age_seconds: float = 30.0
    #: Inviters' rewards from mining (``services.mining.referrals``), and where
    #: the auth service that knows the inviters is.
    referrals: ReferralSettings = NO_REFERRALS
    auth_service_addr: str = ""
    #: The bot signals the worker observes per batch (services.mining.signals).
    signals: BotSignals = BotSignals()
    #: A batch waits until its oldest click is this old (or it is full), so
    #: that it holds more clicks per user (0: it takes what is waiting) ...
    linger_ms: int = 0
    #: ... when at least this many clicks were waiting.
    linger_from: int = LINGER_FROM
    #: Where each credited batch is posted on the mined-coin leaderboards.
    leaderboards: LeaderboardSettings = LeaderboardSettings()
    #: The worker process's niceness: it yields the CPU to requests (runtime.priority).
    nice: int = BACKGROUND_NICE

    @classmethod
    def from_env(cls, env: Env | None = None) -> WorkerSettings:
        env = env or Env()
        service = ServiceSettings.from_env("mining", env)
        reward = reward_from_env(env)
        metrics = env.integer("MINING_WORKER_METRICS_PORT", 9105, minimum=0, maximum=65535)
        claim_idle_ms = env.integer(
            "MINING_WORKER_CLAIM_IDLE_MS", 30_000, minimum=10, maximum=3_600_000
        )
        # A lingering batch must never look idle to the other workers.
        linger_max = min(10_000, claim_idle_ms // 3)
        return cls(
            service=service,
            reward=reward,
            wallet_service_addr=env.service_addr("WALLET_SERVICE_ADDR", "wallet"),
            concurrency=env.integer("MINING_WORKER_CONCURRENCY", 1, minimum=1, maximum=64),
            batch_size=env.integer(
                "MINING_WORKER_BATCH_SIZE", BATCH_SIZE, minimum=1, maximum=BATCH_SIZE
            ),
            block_ms=env.integer("MINING_WORKER_BLOCK_MS", 1000, minimum=1, maximum=60_000),
            claim_idle_ms=claim_idle_ms,
            max_attempts=env.integer("MINING_WORKER_MAX_ATTEMPTS", 5, minimum=1, maximum=100),
            status_ttl_seconds=env.integer(
                "MINING_STATUS_TTL_SECONDS", 86_400, minimum=60, maximum=30 * 86_400
            ),
            metrics_port=metrics or None,
            consumer=env.string("MINING_WORKER_NAME", f"{socket.gethostname()}-{os.getpid()}"),
            grpc_timeout_seconds=env.number("GRPC_TIMEOUT_SECONDS", 5.0, minimum=0.01),
            dead_letter_max=env.integer(
                "MINING_DEAD_LETTER_MAX", 100_000, minimum=100, maximum=100_000_000
            ),
            outbox_sweep_seconds=env.number(
                "MINING_OUTBOX_SWEEP_SECONDS", 10.0, minimum=0.01, maximum=3600
            ),
            outbox_sweep_age_seconds=env.number(
                "MINING_OUTBOX_SWEEP_AGE_SECONDS", 30.0, minimum=0, maximum=86_400
            ),
            referrals=ReferralSettings.from_env(env, reward.decimals),
            auth_service_addr=env.service_addr("AUTH_SERVICE_ADDR", "auth"),
            signals=BotSignals.from_env(env, tap_rules_from_env(env)),
            leaderboards=LeaderboardSettings.from_env(env),
            linger_ms=env.integer(
                "MINING_WORKER_LINGER_MS", min(LINGER_MS, linger_max), minimum=0, maximum=linger_max
            ),
            linger_from=env.integer(
                "MINING_WORKER_LINGER_FROM", LINGER_FROM, minimum=1, maximum=10_000
            ),
            nice=background_nice(env, "MINING_WORKER_NICE"),
        )
