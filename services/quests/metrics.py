"""The quests service's Prometheus metrics (gRPC server metrics come from the
runtime; ``cache_hits_total`` / ``cache_misses_total`` are shared runtime
counters, labelled ``cache="leaderboard"`` here)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

COMPLETIONS = Counter(
    "quests_completions_total",
    "Quest completion requests, by quest type and result (completed, replayed, "
    "already_completed, prerequisite_missing, inactive).",
    ["type", "result"],
)
CREDITS = Counter(
    "quests_credits_total",
    "Coin rewards sent to Wallet.Credit, by result (confirmed, failed).",
    ["result"],
)
CREDITS_PENDING = Gauge(
    "quests_credits_pending",
    "Coin rewards (quest completions, daily claims) Wallet.Credit has not confirmed yet "
    "(read by the sweeper).",
)
LEADERBOARD_REBUILDS = Counter(
    "quests_leaderboard_rebuilds_total", "Leaderboard rebuilds from MongoDB."
)
DAILY_CLAIMS = Counter(
    "quests_daily_claims_total",
    "Daily reward claims, by result (claimed, replayed, already_claimed).",
    ["result"],
)
