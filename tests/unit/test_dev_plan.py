"""The ``make dev`` process table, port checks and output prefixing (no processes)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils.address import is_checksum_address

from runtime.config import ConfigError, Env
from runtime.embedded import free_port
from runtime.tls import load_tls
from tools import dev, pki, supervisor
from tools.dev import PortUnavailableError, banner, check_ports, dev_plan
from tools.supervisor import PortClaim, ProcessSpec, describe_exit

#: The wildcard address, as a bind host in the plan.
ANY = "0.0.0.0"  # noqa: S104


def plan(**environ: str) -> dev.DevPlan:
    return dev_plan(Env(environ))


def by_name(result: dev.DevPlan) -> dict[str, ProcessSpec]:
    return {spec.name: spec for spec in result.processes}


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_default_plan_runs_the_services_then_gateway_with_the_dev_settings(
    tmp_path: Path,
) -> None:
    result = plan(MINEQUEST_DATA_DIR=str(tmp_path))
    assert [spec.name for spec in result.processes] == [
        "auth",
        "wallet",
        "mining",
        "quests",
        "mining-worker",
        "gateway",
    ]
    named = by_name(result)
    auth, wallet, gateway = named["auth"], named["wallet"], named["gateway"]
    assert auth.argv == (sys.executable, "-m", "services.auth")
    assert wallet.argv == (sys.executable, "-m", "services.wallet")
    assert gateway.argv == (sys.executable, "-m", "gateway")
    assert gateway.env["GATEWAY_WORKERS"] == str(dev.one_box_gateway_workers())
    assert auth.env["AUTH_JWT_PRIVATE_KEY_FILE"] == str(tmp_path / "jwt-ed25519.pem")
    assert auth.env["AUTH_JWT_GENERATE_KEY"] == "true"
    assert auth.env["ENABLE_DEV_OTP_FALLBACK"] == "true"
    assert auth.ports == (
        PortClaim("AUTH_GRPC_PORT", "127.0.0.1", 50051),
        PortClaim("AUTH_METRICS_PORT", "127.0.0.1", 9101),
    )
    assert auth.ready == supervisor.Ready("127.0.0.1", 50051)
    assert wallet.ports == (
        PortClaim("WALLET_GRPC_PORT", "127.0.0.1", 50053),
        PortClaim("WALLET_METRICS_PORT", "127.0.0.1", 9103),
    )
    assert wallet.ready == supervisor.Ready("127.0.0.1", 50053)
    assert wallet.env["AUTH_SERVICE_ADDR"] == "127.0.0.1:50051"  # whose wallet a withdrawal is
    assert gateway.env["AUTH_SERVICE_ADDR"] == "127.0.0.1:50051"
    assert gateway.env["WALLET_SERVICE_ADDR"] == "127.0.0.1:50053"
    quests = named["quests"]
    assert quests.argv == (sys.executable, "-m", "services.quests")
    assert quests.ready == supervisor.Ready("127.0.0.1", 50054)
    assert (quests.env["AUTH_SERVICE_ADDR"], quests.env["WALLET_SERVICE_ADDR"]) == (
        "127.0.0.1:50051",
        "127.0.0.1:50053",
    )
    assert gateway.env["QUESTS_SERVICE_ADDR"] == "127.0.0.1:50054"
    mining, worker = named["mining"], named["mining-worker"]
    assert mining.ready == supervisor.Ready("127.0.0.1", 50052)
    assert gateway.env["MINING_SERVICE_ADDR"] == "127.0.0.1:50052"
    # The worker has no port to wait on; it credits through the wallet.
    assert worker.argv == (sys.executable, "-m", "services.mining", "worker")
    assert worker.ready is None
    assert worker.env["WALLET_SERVICE_ADDR"] == "127.0.0.1:50053"
    assert worker.ports == (PortClaim("MINING_WORKER_METRICS_PORT", "127.0.0.1", 9105),)
    # the gateway's metrics are on an internal port of their own
    assert gateway.ports == (
        PortClaim("GATEWAY_PORT", "127.0.0.1", 8080),
        PortClaim("GATEWAY_METRICS_PORT", "127.0.0.1", 9100),
    )
    assert gateway.ready == supervisor.Ready("127.0.0.1", 8080, "/api/health")
    assert result.gateway_url == "http://127.0.0.1:8080"
    assert result.data_dir == tmp_path
    assert result.stop_timeout == 15.0
    [note] = result.notes
    assert note.startswith("WARNING: dev OTP fallback is ON (SMTP_HOST is unset)")


def test_every_process_gets_its_own_certificate(tmp_path: Path) -> None:
    result = plan(MINEQUEST_DATA_DIR=str(tmp_path))
    assert result.pki_dir == tmp_path / "pki"
    for spec in result.processes:
        folder = tmp_path / "pki" / spec.name
        assert spec.env["GRPC_TLS_CA_FILE"] == str(folder / "ca.pem"), spec.name
        assert spec.env["GRPC_TLS_CERT_FILE"] == str(folder / "cert.pem"), spec.name
        assert spec.env["GRPC_TLS_KEY_FILE"] == str(folder / "key.pem"), spec.name
    assert {spec.name for spec in result.processes} == set(pki.IDENTITIES)


def test_data_dir_defaults_to_dot_data_in_the_working_folder() -> None:
    assert plan().data_dir == Path(".data").resolve()


def test_smtp_host_turns_the_otp_fallback_off() -> None:
    result = plan(SMTP_HOST="smtp.example.com")
    assert by_name(result)["auth"].env["ENABLE_DEV_OTP_FALLBACK"] == "false"
    assert result.notes == ()


def test_the_users_own_settings_win() -> None:
    result = plan(
        ENABLE_DEV_OTP_FALLBACK="false",
        AUTH_JWT_PRIVATE_KEY_FILE="/keys/k.pem",
        AUTH_JWT_GENERATE_KEY="no",
        AUTH_SERVICE_ADDR="auth.internal:7000",
    )
    auth, gateway = by_name(result)["auth"], by_name(result)["gateway"]
    assert auth.env["ENABLE_DEV_OTP_FALLBACK"] == "false"
    assert auth.env["AUTH_JWT_PRIVATE_KEY_FILE"] == "/keys/k.pem"
    assert auth.env["AUTH_JWT_GENERATE_KEY"] == "false"
    assert gateway.env["AUTH_SERVICE_ADDR"] == "auth.internal:7000"
    assert result.notes == ()


def test_fallback_forced_on_without_smtp_warns() -> None:
    [note] = plan(ENABLE_DEV_OTP_FALLBACK="true").notes
    assert "(ENABLE_DEV_OTP_FALLBACK=true)" in note


@pytest.mark.parametrize(
    "environ",
    [
        {"SMTP_HOST": "smtp.example.com", "ENABLE_DEV_OTP_FALLBACK": "true"},
        {"MINEQUEST_ENV": "production", "ENABLE_DEV_OTP_FALLBACK": "true"},
    ],
)
def test_fallback_forced_on_with_smtp_or_in_production_is_refused(
    environ: dict[str, str],
) -> None:
    with pytest.raises(ConfigError) as caught:
        plan(**environ)
    assert caught.value.variable == "ENABLE_DEV_OTP_FALLBACK"


def test_production_leaves_the_fallback_off_without_smtp() -> None:
    result = plan(MINEQUEST_ENV="production")
    assert by_name(result)["auth"].env["ENABLE_DEV_OTP_FALLBACK"] == "false"
    assert result.notes == ()


def test_ports_and_hosts_follow_the_environment() -> None:
    result = plan(
        AUTH_GRPC_HOST=ANY,
        AUTH_GRPC_PORT="6001",
        AUTH_METRICS_PORT="0",
        GATEWAY_HOST=ANY,
        GATEWAY_PORT="6002",
        SHUTDOWN_GRACE_SECONDS="1",
    )
    auth, gateway = by_name(result)["auth"], by_name(result)["gateway"]
    assert auth.env["AUTH_GRPC_PORT"] == "6001"
    assert auth.ports == (PortClaim("AUTH_GRPC_PORT", ANY, 6001),)
    assert auth.ready == supervisor.Ready("127.0.0.1", 6001)
    assert gateway.env["AUTH_SERVICE_ADDR"] == "127.0.0.1:6001"
    assert gateway.ready == supervisor.Ready("127.0.0.1", 6002, "/api/health")
    assert result.gateway_url == "http://127.0.0.1:6002"
    assert result.stop_timeout == 6.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_PORT", "eighty"),
        ("GATEWAY_PORT", "0"),
        ("AUTH_GRPC_PORT", "70000"),
        ("AUTH_METRICS_PORT", "-1"),
        ("ENABLE_DEV_OTP_FALLBACK", "maybe"),
        ("AUTH_JWT_GENERATE_KEY", "sure"),
        ("SHUTDOWN_GRACE_SECONDS", "soon"),
        ("MINEQUEST_ENV", "staging"),
        ("MINING_WORKER_PROCESSES", "0"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        plan(**{variable: value})
    assert caught.value.variable == variable


def test_several_workers_run_as_the_worker_identity_on_consecutive_metrics_ports() -> None:
    result = plan(MINING_WORKER_PROCESSES="3", MINING_WORKER_METRICS_PORT="9200")
    workers = result.workers
    assert [spec.name for spec in workers] == [f"mining-worker-{n}" for n in (1, 2, 3)]
    assert [spec.ports[0].port for spec in workers] == [9200, 9201, 9202]
    assert {result.identities[spec.name] for spec in workers} == {"mining-worker"}
    assert {spec.env["GRPC_TLS_CERT_FILE"] for spec in workers} == {
        str(result.pki_dir / "mining-worker" / "cert.pem")
    }
    # the gateway still comes last, after every worker
    assert result.processes[-1].name == "gateway"


def test_an_isolated_environment_moves_every_port_and_database(tmp_path: Path) -> None:
    first, second = dev.isolated_env("e2e"), dev.isolated_env("e2e", metrics=())
    assert first["AUTH_GRPC_PORT"] != second["AUTH_GRPC_PORT"]
    assert first["MINING_MONGODB_DATABASE"].startswith("e2e_mining_")
    assert first["MINING_MONGODB_DATABASE"] != second["MINING_MONGODB_DATABASE"]
    assert second["GATEWAY_METRICS_PORT"] == "0"
    result = plan(**first, MINEQUEST_DATA_DIR=str(tmp_path))
    defaults = {claim.port for spec in plan().processes for claim in spec.ports}
    moved = {claim.port for spec in result.processes for claim in spec.ports}
    assert not moved & defaults
    assert result.addresses["wallet"] == f"127.0.0.1:{first['WALLET_GRPC_PORT']}"
    assert result.gateway_url == f"http://127.0.0.1:{first['GATEWAY_PORT']}"
    check_ports(result.processes)  # all free, none claimed twice


def test_every_service_in_the_table_gets_its_own_ports() -> None:
    claims = [claim for spec in plan().processes for claim in spec.ports]
    assert len({claim.port for claim in claims}) == len(claims)
    assert len({service.name for service in dev.SERVICES}) == len(dev.SERVICES)


def test_banner_prints_the_url_and_working_curl_lines() -> None:
    lines = banner("http://127.0.0.1:8080")
    assert lines[0] == "ready: gateway at http://127.0.0.1:8080 (Ctrl-C stops everything)"
    assert "  curl -s http://127.0.0.1:8080/api/health" in lines
    bodies = [json.loads(match[1]) for line in lines for match in re.finditer(r"-d '(.*?)'", line)]
    assert bodies == [
        {"walletAddress": dev.EXAMPLE_WALLET, "email": dev.EXAMPLE_EMAIL},
        {"email": dev.EXAMPLE_EMAIL},
        {"challengeId": "<challengeId>", "code": "<devCode>"},
    ]
    assert [line.split(" -d ")[0].rsplit("/", 2)[-2:] for line in lines[2:]] == [
        ["auth", "register"],
        ["otp", "request"],
        ["otp", "verify"],
    ]
    assert is_checksum_address(dev.EXAMPLE_WALLET)


def test_free_ports_pass() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = int(sock.getsockname()[1])
    check_ports([ProcessSpec("a", ("true",), ports=(PortClaim("A_PORT", "127.0.0.1", free),))])


def test_a_taken_port_is_named_with_its_variable(listener: int) -> None:
    spec = ProcessSpec(
        "gateway", ("true",), ports=(PortClaim("GATEWAY_PORT", "127.0.0.1", listener),)
    )
    with pytest.raises(PortUnavailableError) as caught:
        check_ports([spec])
    assert str(caught.value) == (
        f"port {listener} (GATEWAY_PORT) on 127.0.0.1 is already in use; "
        f"stop what holds it or set GATEWAY_PORT to a free port"
    )


def test_a_port_taken_on_one_address_blocks_the_wildcard(listener: int) -> None:
    spec = ProcessSpec("auth", ("true",), ports=(PortClaim("AUTH_METRICS_PORT", ANY, listener),))
    with pytest.raises(PortUnavailableError, match="AUTH_METRICS_PORT"):
        check_ports([spec])


def test_one_port_claimed_twice_is_refused(listener: int) -> None:
    # Reported before any port is probed: another port of the plan being
    # taken on this machine does not hide the mistake in the configuration.
    result = plan(AUTH_GRPC_PORT="6010", GATEWAY_PORT="6010", WALLET_GRPC_PORT=str(listener))
    with pytest.raises(PortUnavailableError) as caught:
        check_ports(result.processes)
    assert str(caught.value) == (
        "GATEWAY_PORT and AUTH_GRPC_PORT both ask for port 6010; give one of them another port"
    )


def test_main_refuses_a_taken_port_before_starting_anything(
    listener: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # Every other port the plan claims is a free one, so the answer does not
    # depend on what else this machine is running.
    for claim in (claim for spec in plan().processes for claim in spec.ports):
        monkeypatch.setenv(claim.variable, str(free_port()))
    monkeypatch.setenv("GATEWAY_PORT", str(listener))
    monkeypatch.setenv("MINEQUEST_DATA_DIR", str(tmp_path))

    def no_stores(*args: object) -> None:
        raise AssertionError("stores must not start")

    monkeypatch.setattr(dev, "embedded_stores", no_stores)
    assert dev.main() == 2
    err = capsys.readouterr().err
    assert err == (
        f"dev: port {listener} (GATEWAY_PORT) on 127.0.0.1 is already in use; "
        f"stop what holds it or set GATEWAY_PORT to a free port\n"
    )


class StoresStarted(Exception):
    """Raised where make dev would start the embedded stores."""


def test_main_writes_every_certificate_before_the_stores_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for claim in (claim for spec in plan().processes for claim in spec.ports):
        monkeypatch.setenv(claim.variable, str(free_port()))
    monkeypatch.setenv("MINEQUEST_DATA_DIR", str(tmp_path))

    def stores(*args: object) -> None:
        raise StoresStarted

    monkeypatch.setattr(dev, "embedded_stores", stores)
    with pytest.raises(StoresStarted):
        dev.main()
    assert f"internal gRPC: mutual TLS, one certificate per process in {tmp_path / 'pki'}" in (
        capsys.readouterr().out
    )
    for spec in plan(MINEQUEST_DATA_DIR=str(tmp_path)).processes:
        tls = load_tls(Env(dict(spec.env)))
        assert tls is not None
        assert tls.identity == spec.name
    with pytest.raises(StoresStarted):
        dev.main()  # a second start reuses them
    assert "(reused)" in capsys.readouterr().out


def test_main_refuses_bad_configuration_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_GRPC_PORT", "abc")
    with pytest.raises(SystemExit) as caught:
        dev.main()
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "configuration error: AUTH_GRPC_PORT: must be an integer, got 'abc'\n"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "mongodb://app:s3cret@db1:27017,db2:27017/?replicaSet=rs0",
            "mongodb://app:***@db1:27017,db2:27017/?replicaSet=rs0",
        ),
    ],
)
def test_printed_urls_hide_passwords(url: str, shown: str) -> None:
    assert dev.redact(url) == shown


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "exit code 0"),
        (3, "exit code 3"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
    ],
)
def test_describe_exit(code: int, text: str) -> None:
    assert describe_exit(code) == text


async def test_pump_prefixes_every_line_however_the_bytes_arrive() -> None:
    stream = asyncio.StreamReader()
    for chunk in (b'{"msg": "one"}\n{"msg": "t', b'wo"}\r\n', b"\n\xffbad utf-8\nno newline"):
        stream.feed_data(chunk)
    stream.feed_eof()
    out = io.StringIO()
    await supervisor._pump(stream, "auth", supervisor.Output(out, ["auth", "gateway"]))
    assert out.getvalue().splitlines() == [
        'auth    | {"msg": "one"}',
        'auth    | {"msg": "two"}',
        "auth    | ",
        "auth    | \ufffdbad utf-8",
        "auth    | no newline",
    ]


def test_the_gateway_gets_a_core_fewer_than_the_machine_unless_told(tmp_path: Path) -> None:
    """The whole suite shares the machine: one core is left to the rest."""
    assert [dev.one_box_gateway_workers(n) for n in (1, 2, 4, 16)] == [1, 1, 3, 15]
    told = by_name(plan(MINEQUEST_DATA_DIR=str(tmp_path), GATEWAY_WORKERS="3"))["gateway"]
    assert told.env["GATEWAY_WORKERS"] == "3"
