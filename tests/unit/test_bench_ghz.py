"""``python -m bench.ghz``: ghz's command line and ghz's report (no load run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import ghz
from bench.harness import ghz_report
from bench.harness.grpc_load import (
    Encoder,
    LoadError,
    Options,
    Outcome,
    Tls,
    ghz_command,
    grpc_frame,
    parse_h2load_log,
    render,
)

TARGET = "127.0.0.1:50051"
JWKS = "minequest.auth.v1.AuthService.GetJwks"


def options(*argv: str) -> Options:
    parse = ghz.parser()
    return ghz.options_from(parse.parse_args(list(argv)), parse)


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        options(*argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_ghz_flags_are_read_as_ghz_reads_them() -> None:
    read = options(
        "--insecure",
        "--call",
        "minequest.wallet.v1.WalletService/GetBalance",
        "-d",
        '{"userId":"u1"}',
        "-m",
        '{"x-request-id":"r1"}',
        "-c",
        "8",
        "-n",
        "500",
        "--rps",
        "100",
        "--connections",
        "2",
        "-t",
        "500ms",
        TARGET,
    )
    assert read.path == "/minequest.wallet.v1.WalletService/GetBalance"
    assert (read.concurrency, read.total, read.connections) == (8, 500, 2)
    assert read.rps == 100.0
    assert read.timeout == 0.5
    assert read.duration is None
    assert read.metadata == {"x-request-id": "r1"}
    assert read.tls is None


def test_a_duration_replaces_the_total_and_tls_is_on_unless_insecure(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a call")
    read = options("--call", JWKS, "-z", "1m", "--cacert", str(ca), "--cname", "auth", TARGET)
    assert read.duration == 60.0
    assert read.tls == Tls(cacert=str(ca), cname="auth")


def test_data_comes_from_a_file_with_capital_d(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"userId":"from-file"}')
    assert options("--insecure", "--call", JWKS, "-D", str(request), TARGET).data == (
        '{"userId":"from-file"}'
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--call", JWKS), "the target host:port is required"),
        (("--insecure", TARGET), "--call is required"),
        (("--insecure", "--call", JWKS, "localhost"), "expected host:port"),
        (("--insecure", "--call", JWKS, "-z", "soon", TARGET), "expected a duration"),
        (("--insecure", "--call", JWKS, "-c", "0", TARGET), "must be at least 1"),
        (("--insecure", "--call", JWKS, "-m", "[1]", TARGET), "a JSON object of strings"),
        (("--insecure", "--call", JWKS, "-O", "html", TARGET), "invalid choice: 'html'"),
        (("--call", JWKS, "--cert", "c.pem", TARGET), "--cert and --key go together"),
        (("--call", JWKS, "--cacert", "/nowhere/ca.pem", TARGET), "no such file"),
        (("--insecure", "--cacert", "ca.pem", "--call", JWKS, TARGET), "--insecure is plaintext"),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    assert message in refused(capsys, *argv)


def test_an_unknown_method_or_bad_data_is_a_clear_error() -> None:
    with pytest.raises(LoadError, match=r"no service 'minequest\.nope\.v1\.X'"):
        Encoder("minequest.nope.v1.X.Y", "{}")
    with pytest.raises(LoadError, match="has no GetJwk "):
        Encoder("minequest.auth.v1.AuthService.GetJwk", "{}")
    with pytest.raises(LoadError, match=r"not a minequest\.wallet\.v1\.GetBalanceRequest"):
        Encoder("minequest.wallet.v1.WalletService.GetBalance", '{"user":"u1"}')


def test_templates_render_per_call_and_encode_the_request() -> None:
    encoder = Encoder(
        "minequest.wallet.v1.WalletService.GetBalance",
        '{"userId":"u{{.RequestNumber}}-{{.WorkerID}}"}',
    )
    assert encoder.templated
    assert encoder.encode(7, 3) == b"\n\x05u7-w3"
    keys = {render("{{newUUID}}", 0, 0) for _ in range(5)}
    assert len(keys) == 5
    assert render("{{randomInt 4 5}}", 0, 0) == "4"
    with pytest.raises(LoadError, match="unknown template action"):
        render("{{.Nope}}", 0, 0)


def test_a_grpc_frame_is_the_flag_the_length_and_the_message() -> None:
    assert grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"


def outcome() -> Outcome:
    ms = 1_000_000
    return Outcome(
        latencies=[ms * n for n in range(1, 11)],
        statuses=["OK"] * 9 + ["Unavailable"],
        errors=[""] * 9 + ["rpc error: code = Unavailable desc = down"],
        starts=[1_700_000_000_000_000_000 + n for n in range(10)],
        total_ns=500 * ms,
        generator="test",
    )


def test_the_json_report_has_ghz_fields_in_integer_nanoseconds() -> None:
    loaded = Options(target=TARGET, call=JWKS, total=10)
    data = ghz_report.report(outcome(), loaded)
    assert data["count"] == 10
    assert (data["total"], data["fastest"], data["slowest"]) == (500_000_000, 1_000_000, 10_000_000)
    assert data["average"] == 5_500_000
    assert all(isinstance(data[name], int) for name in ("total", "average", "fastest", "slowest"))
    assert data["rps"] == pytest.approx(20.0)
    assert [point["percentage"] for point in data["latencyDistribution"]] == [
        10,
        25,
        50,
        75,
        90,
        95,
        99,
    ]
    assert data["latencyDistribution"][2] == {"percentage": 50, "latency": 5_000_000}
    assert data["latencyDistribution"][-1] == {"percentage": 99, "latency": 10_000_000}
    assert data["statusCodeDistribution"] == {"OK": 9, "Unavailable": 1}
    assert data["errorDistribution"] == {"rpc error: code = Unavailable desc = down": 1}
    assert sum(bucket["count"] for bucket in data["histogram"]) == 10
    assert data["histogram"][0]["mark"] == pytest.approx(0.001)
    assert "details" not in data
    json.dumps(data)  # serialisable as it is


def test_details_and_csv_list_every_call() -> None:
    data = ghz_report.report(outcome(), Options(target=TARGET, call=JWKS), details=True)
    assert len(data["details"]) == 10
    assert data["details"][-1]["status"] == "Unavailable"
    lines = ghz_report.csv(data).splitlines()
    assert lines[0] == "duration (ms),status,error"
    assert lines[1] == '1.00,OK,""'
    assert lines[-1] == '10.00,Unavailable,"rpc error: code = Unavailable desc = down"'


def test_the_summary_reads_like_ghz() -> None:
    text = ghz_report.summary(ghz_report.report(outcome(), Options(target=TARGET, call=JWKS)))
    assert "  Count:\t10\n" in text
    assert "  Requests/sec:\t20.00\n" in text
    assert "  50 % in 5.00 ms \n" in text
    assert "  [OK]\t9 responses\n" in text
    assert "  [1]\trpc error: code = Unavailable desc = down\n" in text


def test_h2load_log_lines_become_calls() -> None:
    parsed = parse_h2load_log("1000000\t200\t1500\n1000100\t200\t2500\n1000200\t503\t100\n")
    assert parsed.latencies == [1_500_000, 2_500_000, 100_000]
    assert parsed.statuses == ["OK", "OK", "Unavailable"]
    assert parsed.total_ns == 2_600_000


def test_the_real_ghz_gets_the_same_command_line() -> None:
    loaded = Options(
        target=TARGET,
        call=JWKS,
        data='{"a":1}',
        concurrency=4,
        duration=2.0,
        tls=Tls("ca.pem", "c.pem", "k.pem", "auth"),
    )
    command = ghz_command("ghz", loaded)
    assert command[:5] == ["ghz", "--call", JWKS, "-d", '{"a":1}']
    assert command[command.index("-z") : command.index("-z") + 2] == ["-z", "2.0s"]
    assert "--insecure" not in command
    assert command[-3:] == ["--cname", "auth", TARGET]
