"""The auth service as a real process: bad configuration fails fast with one
line; SIGTERM drains and exits cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.embedded import free_port

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
