"""The click pipeline's Prometheus metrics (names from DESIGN.md; the
dashboards and alerts in ``deploy/`` read them)."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge

CLICK_REQUESTS = Counter(
    "mining_click_requests_total",
    "Clicks answered, by the HTTP status the gateway answers them with (202, "
    "200, 400, 422, 429, 503) and by outcome: queued, deduplicated, "
    "energy_exhausted, tap_rate_exceeded, daily_cap_reached, queue_full, "
    "key_reused, invalid.",
    ["status", "outcome"],
)
#: The HTTP status of each outcome (seed 002 partitions the counter by it).
OUTCOME_STATUS = {
    "queued": "202",
    "deduplicated": "200",
    "invalid": "400",
    "key_reused": "422",
    "energy_exhausted": "429",
    "tap_rate_exceeded": "429",
    "daily_cap_reached": "429",
    "queue_full": "503",
}
QUEUE_DEPTH = Gauge(
    "mining_click_queue_depth",
    "Entries in the mining-clicks stream not yet done (pending included).",
)
QUEUE_MAX_DEPTH = Gauge(
    "mining_queue_max_depth",
    "MINING_QUEUE_MAX_DEPTH: the depth at which clicks are refused (503 queue_full); "
    "MiningQueueBackpressure fires at 90% of it.",
)
PROCESSED = Counter(
    "mining_worker_processed_total",
    "Stream entries a worker finished (recorded, credited, status done, acknowledged).",
)
FAILED = Counter(
    "mining_worker_failed_total",
    "Failures while processing entries, by error code; entries that used up "
    "their attempts are dead-lettered.",
    ["error_code"],
)
LAG = Gauge(
    "mining_worker_lag_seconds",
    "Age of the oldest entry in the batch a worker last finished (0 when idle).",
)
OUTBOX_PENDING = Gauge(
    "mining_outbox_pending",
    "Outbox documents (batches of credits) committed in the mining database and "
    "not confirmed by the wallet yet, as the last sweep saw them.",
)
OUTBOX_SWEPT = Counter(
    "mining_outbox_swept_total",
    "Outbox documents the sweeper credited (left behind by a crashed batch, or "
    "refused by the wallet until then).",
)
ACTIVE_MINERS = Gauge(
    "active_miners_total",
    "Users with a click processed in the last five minutes.",
)


@functools.cache
def click_request(outcome: str) -> Any:
    return CLICK_REQUESTS.labels(status=OUTCOME_STATUS[outcome], outcome=outcome)


@functools.cache
def failed(error_code: str) -> Any:
    return FAILED.labels(error_code=error_code)


RETRIED = Counter(
    "mining_worker_retries_total",
    "Failed attempts that will be retried (transient outages, or an entry's "
    "attempts before it is dead-lettered), by error code.",
    ["error_code"],
)


@functools.cache
def retried(error_code: str) -> Any:
    return RETRIED.labels(error_code=error_code)


BOOST_PURCHASES = Counter(
    "mining_boost_purchases_total",
    "Boost purchases settled, by boost and outcome: applied (debited and levelled "
    "up), refused (insufficient funds: nothing changed).",
    ["boost", "outcome"],
)
BOOST_SWEPT = Counter(
    "mining_boost_purchases_swept_total",
    "Unsettled boost purchases the sweeper drove on (their request crashed or the "
    "wallet was unavailable).",
)


SUSPECT_ACCOUNTS = Gauge(
    "mining_suspect_accounts",
    "Accounts the bot signals flagged and no admin cleared yet (the mining service "
    "refreshes it; with MINING_BOT_SHADOW_MODE on, their clicks earn nothing).",
)
