"""The click pipeline's Prometheus metrics (names from DESIGN.md; the
dashboards and alerts in ``deploy/`` read them)."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge

CLICK_REQUESTS = Counter(
    "mining_click_requests_total",
    "SubmitClick answers by status: queued, deduplicated, energy_exhausted, "
    "tap_rate_exceeded, daily_cap_reached, queue_full, key_reused, invalid.",
    ["status"],
)
QUEUE_DEPTH = Gauge(
    "mining_click_queue_depth",
    "Entries in the mining-clicks stream not yet done (pending included).",
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
ACTIVE_MINERS = Gauge(
    "active_miners_total",
    "Users with a click processed in the last five minutes.",
)


@functools.cache
def click_request(status: str) -> Any:
    return CLICK_REQUESTS.labels(status=status)


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
