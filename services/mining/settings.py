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
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from runtime.config import ConfigError, Env, ServiceSettings

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
class MiningSettings:
    service: ServiceSettings
    rules: TapRules
    reward: Reward
    queue_max_depth: int
    status_ttl_seconds: int
    throttled_status_ttl_seconds: int
    redis_timeout_seconds: float

    @classmethod
    def from_env(cls, env: Env | None = None) -> MiningSettings:
        env = env or Env()
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
        return cls(
            service=ServiceSettings.from_env("mining", env),
            rules=rules,
            reward=reward_from_env(env),
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
        )


def reward_from_env(env: Env) -> Reward:
    currency = env.string("MINING_REWARD_CURRENCY", "MQC").upper()
    if not currency.isalnum() or not 2 <= len(currency) <= 10:
        raise ConfigError("MINING_REWARD_CURRENCY", f"not a currency code: {currency!r}")
    decimals = env.integer("MINING_REWARD_DECIMALS", 8, minimum=0, maximum=18)
    text = env.string("MINING_REWARD_PER_TAP", "0.001")
    try:
        per_tap = Decimal(text)
    except InvalidOperation:
        raise ConfigError("MINING_REWARD_PER_TAP", f"not a decimal number: {text!r}") from None
    units = per_tap.scaleb(decimals)
    if not per_tap.is_finite() or per_tap < 0 or units != units.to_integral_value():
        raise ConfigError(
            "MINING_REWARD_PER_TAP",
            f"must be a non-negative amount with at most {decimals} decimals "
            f"(MINING_REWARD_DECIMALS), got {text!r}",
        )
    return Reward(currency=currency, decimals=decimals, units_per_tap=int(units))


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

    @classmethod
    def from_env(cls, env: Env | None = None) -> WorkerSettings:
        env = env or Env()
        service = ServiceSettings.from_env("mining", env)
        metrics = env.integer("MINING_WORKER_METRICS_PORT", 9105, minimum=0, maximum=65535)
        return cls(
            service=service,
            reward=reward_from_env(env),
            wallet_service_addr=env.service_addr("WALLET_SERVICE_ADDR", "wallet"),
            concurrency=env.integer("MINING_WORKER_CONCURRENCY", 2, minimum=1, maximum=64),
            batch_size=env.integer("MINING_WORKER_BATCH_SIZE", 5000, minimum=1, maximum=10_000),
            block_ms=env.integer("MINING_WORKER_BLOCK_MS", 1000, minimum=1, maximum=60_000),
            claim_idle_ms=env.integer(
                "MINING_WORKER_CLAIM_IDLE_MS", 30_000, minimum=10, maximum=3_600_000
            ),
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
        )
