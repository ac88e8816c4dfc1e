"""The click pipeline's pure parts: settings, batch validation, stream entry
parsing, failure classification, and the gateway's rows and status mapping."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc.aio import Metadata

from gateway import errors
from gateway.app import create_app
from gateway.openapi import build_openapi
from gateway.routes import ENDPOINTS
from gateway.settings import GatewaySettings
from minequest.mining.v1 import mining_pb2 as pb
from runtime.config import ConfigError, Env
from runtime.errors import to_grpc_status
from runtime.money import to_money
from services.mining.errors import IdempotencyKeyReused, InvalidClick, QueueFull, Throttled
from services.mining.service import read_click
from services.mining.settings import MiningSettings, Reward, WorkerSettings
from services.mining.worker import MalformedEntry, backoff_ms, error_code, parse, transient

BASE = {"MONGODB_URI": "mongodb://127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1"}


def settings(**extra: str) -> MiningSettings:
    return MiningSettings.from_env(Env({**BASE, **extra}))


def test_defaults() -> None:
    config = settings()
    rules = config.rules
    assert (rules.energy_max, rules.energy_per_tap, rules.max_taps_per_second) == (1000, 1, 20.0)
    assert (rules.tap_burst, rules.daily_tap_cap, rules.max_taps_per_request) == (200, 20_000, 500)
    assert config.reward == Reward("MQC", 8, 100_000)
    assert config.queue_max_depth == 100_000
    worker = WorkerSettings.from_env(Env(BASE))
    assert (worker.concurrency, worker.batch_size, worker.max_attempts) == (1, 10_000, 5)
    assert (worker.linger_ms, worker.linger_from, worker.nice) == (8000, 100, 10)
    assert worker.wallet_service_addr == "127.0.0.1:50053"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MINING_REWARD_PER_TAP", "0.000000001"),  # more decimals than MQC has
        ("MINING_REWARD_PER_TAP", "-1"),
        ("MINING_REWARD_PER_TAP", "lots"),
        ("MINING_REWARD_PER_TAP", "NaN"),
        ("MINING_REWARD_CURRENCY", "M-Q"),
        ("MINING_ENERGY_PER_TAP", "1001"),  # no tap could ever pass
        ("MINING_ENERGY_REGEN_PER_SECOND", "0"),
        ("MINING_QUEUE_MAX_DEPTH", "0"),
        ("MINING_MAX_TAPS_PER_REQUEST", "x"),
        ("MINING_REDIS_TIMEOUT_MS", "0"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**{name: value})
    assert str(caught.value).startswith(name)


def test_worker_settings_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="MINING_WORKER_BATCH_SIZE"):
        WorkerSettings.from_env(Env({**BASE, "MINING_WORKER_BATCH_SIZE": "50000"}))
    with pytest.raises(ConfigError, match="MINING_OUTBOX_SWEEP_SECONDS"):
        WorkerSettings.from_env(Env({**BASE, "MINING_OUTBOX_SWEEP_SECONDS": "0"}))


def test_a_batch_never_lingers_long_enough_to_look_idle_to_other_workers() -> None:
    """The linger is at most a third of the claim timeout: configured above
    it is refused, and the default shrinks to it."""
    with pytest.raises(ConfigError, match="MINING_WORKER_LINGER_MS"):
        WorkerSettings.from_env(
            Env({**BASE, "MINING_WORKER_CLAIM_IDLE_MS": "3000", "MINING_WORKER_LINGER_MS": "1500"})
        )
    short = WorkerSettings.from_env(Env({**BASE, "MINING_WORKER_CLAIM_IDLE_MS": "300"}))
    assert short.linger_ms == 100


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [(100_000, 8, "0.00100000"), (0, 8, "0.00000000"), (123_456_789, 8, "1.23456789"), (7, 0, "7")],
)
def test_reward_amounts_are_decimal_strings(units: int, decimals: int, text: str) -> None:
    reward = Reward("MQC", decimals, 1)
    assert to_money(reward.currency, units, reward.decimals).amount == text


def stamp(ms: int) -> Timestamp:
    value = Timestamp()
    value.FromMilliseconds(ms)
    return value


def test_a_batch_reads_its_count_span_and_fingerprint() -> None:
    now = 1_700_000_000_000
    plain = read_click(pb.SubmitClickRequest(), 500, now)
    assert (plain.taps, plain.span_ms, plain.fingerprint) == (1, -1, "1:0:0")
    timed = read_click(
        pb.SubmitClickRequest(count=7, first_tap_at=stamp(now - 900), last_tap_at=stamp(now)),
        500,
        now,
    )
    assert (timed.taps, timed.span_ms) == (7, 900)
    assert timed.fingerprint == f"7:{now - 900}:{now}"
    # Only one end given: no span to check against.
    assert (
        read_click(pb.SubmitClickRequest(count=2, last_tap_at=stamp(now)), 500, now).span_ms == -1
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.SubmitClickRequest(count=-3), "count"),
        (pb.SubmitClickRequest(count=501), "count"),
        (pb.SubmitClickRequest(first_tap_at=stamp(2000), last_tap_at=stamp(1000)), "last_tap_at"),
        (pb.SubmitClickRequest(first_tap_at=stamp(1_700_000_100_000)), "first_tap_at"),
    ],
)
def test_bad_batches_name_the_field(request_: pb.SubmitClickRequest, field: str) -> None:
    with pytest.raises(InvalidClick) as caught:
        read_click(request_, 500, 1_700_000_000_000)
    assert caught.value.field == field


def test_stream_entries_parse_or_are_malformed() -> None:
    entry = parse("1-0", {"u": "u1", "k": "k1", "n": "3", "r": "300000", "t": "1700000000000"})
    assert (entry.record.id, entry.record.taps, entry.record.reward_units) == ("u1:k1", 3, 300_000)
    assert entry.record.accepted_at.timestamp() == 1_700_000_000
    for fields in (
        {"u": "u1", "k": "k1", "n": "x", "r": "1", "t": "1"},
        {"u": "u1", "n": "1", "r": "1", "t": "1"},
        {"u": "", "k": "k1", "n": "1", "r": "1", "t": "1"},
        {"u": "u1", "k": "k1", "n": "0", "r": "1", "t": "1"},
    ):
        with pytest.raises(MalformedEntry):
            parse("1-0", fields)


def rpc_error(code: grpc.StatusCode, reason: str | None = None) -> grpc.aio.AioRpcError:
    if reason is None:
        return grpc.aio.AioRpcError(code, Metadata(), Metadata(), "down")
    status = to_grpc_status(InvalidClick("x", reason=reason))
    return grpc.aio.AioRpcError(
        code, Metadata(), Metadata(*status.trailing_metadata), status.details
    )


def test_outages_are_transient_and_other_failures_are_not() -> None:
    import pymongo.errors
    import redis.exceptions

    assert transient(rpc_error(grpc.StatusCode.UNAVAILABLE))
    assert transient(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert transient(pymongo.errors.AutoReconnect("gone"))
    assert transient(redis.exceptions.ConnectionError("gone"))
    assert not transient(rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "unknown_currency"))
    assert not transient(ValueError("bug"))
    assert error_code(rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "unknown_currency")) == (
        "unknown_currency"
    )
    assert error_code(rpc_error(grpc.StatusCode.UNAVAILABLE)) == "wallet_unavailable"
    assert error_code(MalformedEntry("x")) == "malformed_entry"
    assert error_code(KeyError("x")) == "internal"


def test_backoff_doubles_per_attempt() -> None:
    assert [backoff_ms(n, 100) for n in (1, 2, 3, 4)] == [100, 200, 400, 800]


def service_error(error: Any) -> dict[str, Any]:
    status = to_grpc_status(error)
    rpc = grpc.aio.AioRpcError(
        status.code, Metadata(), Metadata(*status.trailing_metadata), status.details
    )
    response = errors.from_rpc_error(rpc)
    body: dict[str, Any] = json.loads(bytes(response.body))
    body["retry-after"] = response.headers.get("retry-after")
    return body


def test_backpressure_is_503_exhaustion_429_and_reuse_422() -> None:
    full = service_error(QueueFull("full", retry_after=1))
    assert (full["status"], full["error"], full["retry-after"]) == (503, "queue_full", "1")
    tired = service_error(Throttled("tired", retry_after=2.5))
    assert (tired["status"], tired["error"], tired["retry-after"]) == (429, "energy_exhausted", "3")
    capped = service_error(Throttled("cap", reason="daily_cap_reached", retry_after=60))
    assert (capped["status"], capped["error"]) == (429, "daily_cap_reached")
    reused = service_error(IdempotencyKeyReused("reused"))
    assert (reused["status"], reused["error"]) == (422, "idempotency_key_reused")


def test_the_click_route_requires_a_key_the_service_keeps() -> None:
    row = next(r for r in ENDPOINTS if r.path == "/api/mining/click")
    assert (row.method, row.status, row.idempotency_required, row.idempotency_in_service) == (
        "POST",
        202,
        True,
        True,
    )
    doc = build_openapi(ENDPOINTS, version="test")
    operation = doc["paths"]["/api/mining/click"]["post"]
    [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["required"] is True
    assert {"200", "202", "400", "422", "429"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "userId" not in json.dumps(body)  # server fields are hidden
    assert "/api/mining/click/status" in doc["paths"]
    assert "/api/mining/status" in doc["paths"]
    create_app(GatewaySettings.from_env(Env({})))  # the rows build into an app
