"""Gateway configuration: defaults, and one clear error naming a bad variable."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings
from runtime.config import ConfigError, Env
from runtime.embedded import free_port


def load(**environ: str) -> GatewaySettings:
    return GatewaySettings.from_env(Env(environ))


def test_defaults() -> None:
    settings = load()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.auth_service_addr == "127.0.0.1:50051"
    assert settings.redis_url is None
    assert settings.mongodb_uri is None
    assert settings.cors_allow_origins == ()
    assert settings.max_body_bytes == 1_048_576
    assert settings.grpc_timeout_seconds == 5
    assert (settings.jwt_issuer, settings.jwt_audience) == ("minequest", "minequest-api")
    assert settings.jwks_min_refresh_seconds == 30
    assert settings.token_cache_size == 100_000


def test_values_are_read() -> None:
    settings = load(
        GATEWAY_PORT="9000",
        CORS_ALLOW_ORIGINS="https://a.example, http://b:3000",
        REDIS_URL="redis://127.0.0.1:6379/0",
        AUTH_SERVICE_ADDR="auth:50051",
    )
    assert settings.port == 9000
    assert settings.cors_allow_origins == ("https://a.example", "http://b:3000")
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.auth_service_addr == "auth:50051"


def test_dns_targets_are_accepted_for_scaled_services() -> None:
    assert load(AUTH_SERVICE_ADDR="dns:///auth:50051").auth_service_addr == "dns:///auth:50051"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_PORT", "eighty"),
        ("GATEWAY_PORT", "70000"),
        ("MAX_BODY_BYTES", "0"),
        ("AUTH_SERVICE_ADDR", "auth"),
        ("AUTH_SERVICE_ADDR", "auth:port"),
        ("REDIS_URL", "localhost:6379"),
        ("MONGODB_URI", "http://db"),
        ("CORS_ALLOW_ORIGINS", "example.com"),
        ("GRPC_TIMEOUT_SECONDS", "-1"),
        ("LOG_LEVEL", "LOUD"),
        ("TOKEN_CACHE_SIZE", "-5"),
        ("JWKS_MIN_REFRESH_SECONDS", "x"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(**{variable: value})
    assert caught.value.variable == variable


def test_bad_config_exits_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        capture_output=True,
        text=True,
        env={"GATEWAY_PORT": "nope", "PATH": ""},
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: GATEWAY_PORT: must be an integer, got 'nope'"
    ]


#: The seed app's names (its .env.example and its API's env.ts), as an operator
#: moving from it sets them.
SEED_LIMITS = {
    "MINING_RATE_LIMIT_GLOBAL": "12000",
    "MINING_RATE_LIMIT_GLOBAL_BURST": "24000",
    "MINING_RATE_LIMIT_PER_USER": "5",
    "MINING_RATE_LIMIT_USER_BURST": "10",
    "MINING_RATE_LIMIT_PER_IP": "20",
    "MINING_RATE_LIMIT_IP_BURST": "40",
    "RL_REGISTER_PER_HOUR": "5",
    "RL_REGISTER_WALLET_PER_DAY": "10",
}


def test_the_seed_apps_rate_limit_names_are_read() -> None:
    policies = load(**{**SEED_LIMITS, "MINING_RATE_LIMIT_PER_USER": "7"}).rate_limit_policies
    mining = policies.for_route("POST", "/api/mining/click")
    assert mining is not None
    assert {t.name: (t.rate, t.burst) for t in mining.tiers}["user"] == (7, 10)


def test_the_gateway_starts_with_the_seed_apps_rate_limit_names() -> None:
    """The process, not just the loader: it serves its document, then stops on SIGTERM."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "GATEWAY_PORT": str(port),
        "GATEWAY_METRICS_PORT": "0",
        **SEED_LIMITS,
    }
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as gateway:
        try:
            status = None
            deadline = time.monotonic() + 30
            while status is None and gateway.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    status = httpx.get(f"http://127.0.0.1:{port}/api/openapi.json").status_code
                time.sleep(0.2)
        finally:
            gateway.send_signal(signal.SIGTERM)
            output, _ = gateway.communicate(timeout=30)
        assert status == 200, output
        assert "configuration error" not in output
