"""The gateway's wallet side in process: webhook signatures, the webhook route
without a secret or a wallet, the settings, and the documented wallet routes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway import webhooks
from gateway.errors import ApiError
from gateway.openapi import build_openapi
from gateway.routes import ENDPOINTS
from gateway.settings import GatewaySettings
from runtime.config import ConfigError, Env
from runtime.embedded import free_port
from tests.unit.test_gateway_app import assert_problem, client_for

SECRET = "unit-test-secret-0123456789"
BODY = b'{"chain":"ethereum"}'
NOW = 1_767_225_600


def check(**changes: Any) -> None:
    values: dict[str, Any] = {
        "timestamp": str(NOW),
        "signatures": webhooks.signature(SECRET, str(NOW), BODY),
        "body": BODY,
        "now": NOW + 10,
        "tolerance_seconds": 300,
        **changes,
    }
    webhooks.verify(SECRET, **values)


def refused(**changes: Any) -> str:
    with pytest.raises(ApiError) as caught:
        check(**changes)
    assert caught.value.status == 401
    return caught.value.error


def test_a_fresh_correct_signature_passes() -> None:
    check()
    check(now=NOW - 300)  # the window is symmetric: a fast provider clock is fine
    rotated = f"sha256={'0' * 64}, {webhooks.signature(SECRET, str(NOW), BODY)}"
    check(signatures=rotated)  # during a secret rotation either signature may match


def test_the_signature_covers_the_timestamp_and_every_byte() -> None:
    expected = webhooks.signature(SECRET, str(NOW), BODY)
    assert expected.startswith("sha256=")
    assert len(expected) == len("sha256=") + 64
    assert refused(body=BODY + b" ") == "webhook_signature_invalid"
    assert refused(timestamp=str(NOW + 1), now=NOW) == "webhook_signature_invalid"
    assert refused(signatures=expected.upper()) == "webhook_signature_invalid"
    assert refused(signatures=webhooks.signature("x" * 20, str(NOW), BODY)) == (
        "webhook_signature_invalid"
    )


def test_missing_malformed_and_stale_are_refused() -> None:
    assert refused(timestamp=None) == "webhook_signature_missing"
    assert refused(signatures="") == "webhook_signature_missing"
    assert refused(timestamp="soon") == "webhook_signature_invalid"
    assert refused(timestamp="-5") == "webhook_signature_invalid"
    assert refused(now=NOW + 301) == "webhook_timestamp_expired"
    assert refused(now=NOW - 301) == "webhook_timestamp_expired"


async def wallet_client(**environ: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(
        ENDPOINTS, WALLET_SERVICE_ADDR=f"127.0.0.1:{free_port()}", **environ
    ):
        yield client


def signed(timestamp: int, body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": webhooks.signature(secret, str(timestamp), body),
        "Content-Type": "application/json",
    }


async def test_webhook_without_a_secret_is_503() -> None:
    async for client in wallet_client():
        response = await client.post("/api/webhooks/deposits", content=BODY)
        assert_problem(response, 503, "webhook_not_configured")


async def test_webhook_verifies_before_calling_the_wallet() -> None:
    async for client in wallet_client(DEPOSIT_WEBHOOK_SECRET=SECRET):
        now = int(time.time())
        forged = await client.post(
            "/api/webhooks/deposits", content=BODY, headers=signed(now, BODY, "y" * 20)
        )
        assert_problem(forged, 401, "webhook_signature_invalid")
        stale = await client.post(
            "/api/webhooks/deposits", content=BODY, headers=signed(now - 301, BODY)
        )
        assert_problem(stale, 401, "webhook_timestamp_expired")
        bad_json = b'{"chain": 5}'
        invalid = await client.post(
            "/api/webhooks/deposits", content=bad_json, headers=signed(now, bad_json)
        )
        assert_problem(invalid, 400, "invalid_field")
        # Authentic, but the wallet service is down: 503, never a 500.
        down = await client.post("/api/webhooks/deposits", content=BODY, headers=signed(now, BODY))
        assert_problem(down, 503, "service_unavailable")


async def test_wallet_routes_answer_401_without_a_token_and_503_when_the_wallet_is_down() -> None:
    async for client in wallet_client():
        assert_problem(await client.get("/api/wallet/balance"), 401, "unauthenticated")
        assert_problem(await client.get("/api/admin/withdrawals"), 401, "unauthenticated")
        public = await client.get("/api/public/wallets")
        assert_problem(public, 503, "service_unavailable")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEPOSIT_WEBHOOK_SECRET", "short"),
        ("DEPOSIT_WEBHOOK_TOLERANCE_SECONDS", "0"),
        ("WALLET_SERVICE_ADDR", "wallet"),
    ],
)
def test_bad_wallet_settings_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GatewaySettings.from_env(Env({variable: value}))
    assert caught.value.variable == variable


def test_wallet_settings_defaults() -> None:
    settings = GatewaySettings.from_env(Env({}))
    assert settings.wallet_service_addr == "127.0.0.1:50053"
    assert settings.deposit_webhook_secret is None
    assert settings.deposit_webhook_tolerance_seconds == 300


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(ENDPOINTS, version="0")


def body_fields(doc: dict[str, Any], path: str) -> set[str]:
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return set(schema["properties"])


def test_wallet_routes_are_documented_without_server_fields(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    for path in (
        "/api/public/wallets",
        "/api/wallet/balance",
        "/api/wallet/history",
        "/api/wallet/deposit-reference",
        "/api/wallet/withdrawals",
        "/api/wallet/withdrawals/{withdrawalId}",
        "/api/webhooks/deposits",
        "/api/admin/withdrawals",
        "/api/admin/withdrawals/{withdrawalId}/approve",
        "/api/admin/withdrawals/{withdrawalId}/reject",
        "/api/admin/deposits/unmatched",
    ):
        assert path in paths, path
    assert body_fields(doc, "/api/wallet/withdrawals") == {"amount", "chain", "address"}
    assert body_fields(doc, "/api/admin/withdrawals/{withdrawalId}/approve") == {"reason"}
    history = {p["name"] for p in paths["/api/wallet/history"]["get"]["parameters"]}
    assert history == {"currency", "pageSize", "pageToken"}  # no server field (page, userId)
    assert "security" not in paths["/api/webhooks/deposits"]["post"]
    assert "403" in paths["/api/admin/withdrawals/{withdrawalId}/approve"]["post"]["responses"]
    assert "parameters" not in paths["/api/wallet/balance"]["get"]  # userId is the token's
    money = doc["components"]["schemas"]["minequest.common.v1.Money"]["properties"]
    # a decimal string, as the wallet reads it (gateway/constraints.py)
    assert money["amount"]["type"] == "string"
    assert money["amount"]["pattern"] == r"^[0-9]{1,40}(\.[0-9]{1,40})?$"
    json.dumps(doc)
