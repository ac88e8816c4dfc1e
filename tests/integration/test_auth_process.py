"""The auth service as a real process: bad configuration (an unsafe
combination included) fails fast with one line; SIGTERM drains and exits
cleanly; ``create-admin`` runs on the database alone."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.embedded import free_port
from services.auth.store import AuthStore
from services.auth.users import insert_new_user, new_user

pytestmark = pytest.mark.integration


def run_auth(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.auth"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_missing_key_file_fails_with_one_line(tmp_path: Path, mongodb_uri: str):
    process = run_auth(
        {
            "MONGODB_URI": mongodb_uri,
            "AUTH_METRICS_PORT": "0",
            "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "absent.pem"),
        }
    )
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert stderr.strip().splitlines() == [
        f"configuration error: AUTH_JWT_PRIVATE_KEY_FILE: {tmp_path / 'absent.pem'} does not "
        "exist (set AUTH_JWT_GENERATE_KEY=true to create one)"
    ]


def test_bad_port_fails_naming_the_variable(tmp_path: Path, mongodb_uri: str):
    process = run_auth(
        {
            "MONGODB_URI": mongodb_uri,
            "AUTH_GRPC_PORT": "http",
            "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
        }
    )
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "AUTH_GRPC_PORT: must be an integer" in stderr


def test_serves_health_and_exits_cleanly_on_sigterm(
    tmp_path: Path, mongodb_uri: str, database_name: str
):
    port, metrics_port = free_port(), free_port()
    process = run_auth(
        {
            "MONGODB_URI": mongodb_uri,
            "AUTH_MONGODB_DATABASE": database_name,
            "AUTH_GRPC_PORT": str(port),
            "AUTH_METRICS_PORT": str(metrics_port),
            "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
            "AUTH_JWT_GENERATE_KEY": "true",
        }
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            health = health_pb2_grpc.HealthStub(channel)
            answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            auth = auth_pb2_grpc.AuthServiceStub(channel)
            auth.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert (
            'grpc_server_handled_total{grpc_code="OK",grpc_method="GetJwks",'
            'grpc_service="minequest.auth.v1.AuthService"} 1.0'
        ) in metrics
        assert "grpc_server_handling_seconds_bucket" in metrics
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert time.monotonic() - started < 15
    assert '"msg": "stopped"' in stderr
    assert "Traceback" not in stderr


def test_grpc_port_in_use_fails_naming_the_variable(tmp_path: Path, mongodb_uri: str):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = run_auth(
            {
                "MONGODB_URI": mongodb_uri,
                "AUTH_GRPC_PORT": str(port),
                "AUTH_METRICS_PORT": "0",
                "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
                "AUTH_JWT_GENERATE_KEY": "true",
            }
        )
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"AUTH_GRPC_PORT: cannot listen on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


def test_unreachable_mongodb_fails_with_a_clear_line(tmp_path: Path):
    process = run_auth(
        {
            "MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500",
            "AUTH_METRICS_PORT": "0",
            "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
            "AUTH_JWT_GENERATE_KEY": "true",
        }
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "a store is unreachable" in stderr
    assert "Traceback" not in stderr


def config_error(env: dict[str, str]) -> list[str]:
    process = run_auth(env)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    return stderr.strip().splitlines()


def test_the_dev_fallback_refuses_to_start_beside_smtp(tmp_path: Path, mongodb_uri: str):
    lines = config_error(
        {
            "MONGODB_URI": mongodb_uri,
            "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
            "ENABLE_DEV_OTP_FALLBACK": "true",
            "SMTP_HOST": "mail.example.com",
        }
    )
    assert len(lines) == 1
    assert lines[0].startswith("configuration error: ENABLE_DEV_OTP_FALLBACK: ")
    assert "SMTP_HOST" in lines[0]


def test_the_dev_fallback_refuses_to_start_in_production(tmp_path: Path, mongodb_uri: str):
    lines = config_error(
        {
            "MONGODB_URI": mongodb_uri,
            "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
            "ENABLE_DEV_OTP_FALLBACK": "true",
            "MINEQUEST_ENV": "production",
            "SIWE_DOMAIN": "app.example.com",
            "SIWE_URI": "https://app.example.com",
        }
    )
    assert lines == [
        "configuration error: ENABLE_DEV_OTP_FALLBACK: must not be true with "
        "MINEQUEST_ENV=production"
    ]


def test_production_wants_the_sign_in_with_ethereum_domain(tmp_path: Path, mongodb_uri: str):
    lines = config_error(
        {
            "MONGODB_URI": mongodb_uri,
            "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
            "MINEQUEST_ENV": "production",
        }
    )
    assert len(lines) == 1
    assert lines[0].startswith("configuration error: SIWE_DOMAIN: is required")


async def test_create_admin_needs_only_the_database_and_a_verified_wallet(
    mongodb_uri: str, database_name: str, mongo: AsyncMongoClient[dict[str, Any]]
):
    store = AuthStore(mongo, database_name)
    now = datetime.now(UTC)
    wallet = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    unverified = new_user(
        wallet=wallet,
        email="u@example.com",
        phone=None,
        username=None,
        role="user",
        referred_by=None,
        now=now,
    )
    verified = new_user(
        wallet="0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        email="v@example.com",
        phone=None,
        username=None,
        role="user",
        referred_by=None,
        now=now,
    )
    verified["wallet_verified_at"] = now
    await insert_new_user(store, unverified)
    await insert_new_user(store, verified)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "SMTP_", "SIWE_"))} | {
        "MONGODB_URI": mongodb_uri,
        "AUTH_MONGODB_DATABASE": database_name,
    }

    def create_admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.auth", "create-admin", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = await asyncio.to_thread(create_admin, "--email", "nobody@example.com")
    assert missing.returncode == 2
    assert "register first, verify the wallet, then promote" in missing.stderr
    not_proved = await asyncio.to_thread(create_admin, "--email", "u@example.com")
    assert not_proved.returncode == 2
    assert "is not verified" in not_proved.stderr
    other = await asyncio.to_thread(create_admin, "--email", "v@example.com", "--wallet", wallet)
    assert other.returncode == 2
    assert "--wallet" in other.stderr
    assert (await store.user(verified["_id"]) or {})["role"] == "user", "refusals change nothing"
    done = await asyncio.to_thread(create_admin, "--user-id", verified["_id"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"promoted admin {verified['_id']}"
    assert (await store.user(verified["_id"]) or {})["role"] == "admin"
    both = await asyncio.to_thread(create_admin, "--email", "v@example.com", "--phone", "+1")
    assert both.returncode == 2


def test_create_admin_without_a_database_says_so_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "services.auth", "create-admin", "--email", "ops@example.com"],
        env={
            **os.environ,
            "MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "create-admin: MongoDB is unreachable (ServerSelectionTimeoutError); check MONGODB_URI"
    ]
