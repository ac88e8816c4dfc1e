"""``python -m bench.ghz`` against a real service process: plaintext, and mutual
TLS with the internal PKI; with h2load as well when it is installed
(``make bench-tools``). Each run is a few hundred calls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bench import ghz
from runtime.embedded import free_port
from tools import pki

pytestmark = pytest.mark.integration

JWKS = "minequest.auth.v1.AuthService.GetJwks"


def start_auth(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.auth"],
        env={**os.environ, **env, "AUTH_GRPC_PORT": str(port), "AUTH_METRICS_PORT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors


def ready(target: str, credentials: grpc.ChannelCredentials | None = None) -> None:
    channel = (
        grpc.secure_channel(target, credentials, [("grpc.ssl_target_name_override", "auth")])
        if credentials
        else grpc.insecure_channel(target)
    )
    with channel:
        grpc.channel_ready_future(channel).result(timeout=30)


@pytest.fixture
def auth_env(tmp_path: Path, mongodb_uri: str, database_name: str) -> dict[str, str]:
    return {
        "MONGODB_URI": mongodb_uri,
        "AUTH_MONGODB_DATABASE": database_name,
        "AUTH_JWT_PRIVATE_KEY_FILE": str(tmp_path / "jwt.pem"),
        "AUTH_JWT_GENERATE_KEY": "true",
    }


@pytest.fixture
def plain_auth(auth_env: dict[str, str]) -> Iterator[str]:
    for target in start_auth(auth_env):
        ready(target)
        yield target


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert ghz.main(["-O", "json", *argv]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_grpc_clients_call_a_plaintext_service_and_report_like_ghz(
    plain_auth: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = report(
        capsys,
        "--insecure",
        "--generator",
        "grpc",
        "--processes",
        "2",
        "--call",
        JWKS,
        "-c",
        "4",
        "-n",
        "200",
        plain_auth,
    )
    assert data["count"] == 200
    assert data["statusCodeDistribution"] == {"OK": 200}
    assert data["errorDistribution"] == {}


def test_a_method_the_service_does_not_have_is_reported_per_call(
    plain_auth: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GetBalance is the wallet's: the auth server answers UNIMPLEMENTED to each call.
    data = report(
        capsys,
        "--insecure",
        "--generator",
        "grpc",
        "--processes",
        "1",
        "--call",
        "minequest.wallet.v1.WalletService.GetBalance",
        "-d",
        '{"userId":"u1"}',
        "-n",
        "20",
        plain_auth,
    )
    assert data["statusCodeDistribution"] == {"Unimplemented": 20}


def test_mutual_tls_with_the_internal_pki(
    tmp_path: Path, auth_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pki.ensure(tmp_path / "pki", ["auth", "gateway", "wallet"])
    server = pki.identity_files(tmp_path / "pki", "auth")
    for target in start_auth({**auth_env, **server.env()}):
        gateway = pki.identity_files(tmp_path / "pki", "gateway")
        tls = ["--cacert", str(gateway.ca), "--cert", str(gateway.cert), "--key", str(gateway.key)]
        ready(
            target,
            grpc.ssl_channel_credentials(
                gateway.ca.read_bytes(), gateway.key.read_bytes(), gateway.cert.read_bytes()
            ),
        )
        common = ["--generator", "grpc", "--processes", "1", "--cname", "auth", "-n", "50"]
        allowed = report(capsys, *common, *tls, "--call", JWKS, target)
        assert allowed["statusCodeDistribution"] == {"OK": 50}
        # The wallet's certificate is valid, but auth's access table lets only the gateway in.
        wallet = pki.identity_files(tmp_path / "pki", "wallet")
        as_wallet = [
            "--cacert",
            str(wallet.ca),
            "--cert",
            str(wallet.cert),
            "--key",
            str(wallet.key),
        ]
        refused = report(capsys, *common, *as_wallet, "--call", JWKS, target)
        assert refused["statusCodeDistribution"] == {"PermissionDenied": 50}


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load missing: make bench-tools")
def test_h2load_sends_pre_encoded_frames_to_a_plaintext_service(
    plain_auth: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = report(
        capsys,
        "--insecure",
        "--generator",
        "h2load",
        "--call",
        JWKS,
        "-c",
        "4",
        "-n",
        "200",
        plain_auth,
    )
    assert data["count"] == 200
    assert data["statusCodeDistribution"] == {"OK": 200}


def test_h2load_refuses_what_it_cannot_do(
    plain_auth: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = ghz.main(
        ["--generator", "h2load", "--cacert", __file__, "--call", JWKS, "-n", "1", plain_auth]
    )
    assert code == 2
    assert "h2load cannot present a client certificate" in capsys.readouterr().err
