"""gRPC load with ghz's command line and ghz's report; and the services' hot RPCs
against an echo ceiling.

    python -m bench.ghz --insecure --call minequest.auth.v1.AuthService.GetJwks \\
        -c 32 --connections 2 -z 5s -O summary 127.0.0.1:50051
    python -m bench.ghz --cacert .data/pki/gateway/ca.pem --cert .data/pki/gateway/cert.pem \\
        --key .data/pki/gateway/key.pem --cname wallet \\
        --call minequest.wallet.v1.WalletService.GetBalance -d '{"userId":"u1"}' \\
        -n 2000 -O json 127.0.0.1:50053
    python -m bench.ghz --suite            # every hot RPC vs the echo ceiling, ~1.5 minutes
    python -m bench.ghz --suite --quick --markdown

The real ``ghz`` runs when it is on PATH (``--generator ghz``, or ``auto``);
otherwise grpc.aio client processes (``grpc``), or h2load with a pre-encoded
request (``h2load``: plaintext only). ``-O json`` is ghz's JSON report
(``count``, ``total``, ``average``, ``fastest``, ``slowest`` in nanoseconds,
``rps``, ``latencyDistribution``, ``histogram``, ``statusCodeDistribution``,
``errorDistribution``; ``details`` with ``--details``), ``-O csv`` one line
per call. Like ghz, TLS is on unless ``--insecure``: ``--cacert`` trusts the
server's CA, ``--cert``/``--key`` present a client certificate (mutual TLS, as
the services require), ``--cname`` names the server's certificate.

``--suite`` starts the whole suite (``make dev``'s plan, mutual TLS, embedded
stores) and an echo gRPC server (the standard health service's ``Check``),
measures first which generator drives the echo harder, then calls each hot
RPC as the identity that calls it in production and prints one table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.harness import ghz_report
from bench.harness.grpc_load import (
    LoadError,
    Options,
    Tls,
    metadata_of,
    outcome_for,
    run_ghz,
)
from bench.harness.processes import Child, base_env, run_in_work_folder, wait_for_port
from bench.harness.report import load_average, machine, table
from runtime.embedded import free_port
from tools import pki

GENERATORS = ("auto", "ghz", "grpc", "h2load")
FORMATS = ("summary", "json", "csv")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """ghz's durations: ``10s``, ``500ms``, ``1m`` (a bare number is seconds)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration such as 10s or 500ms, got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be above zero, got {text!r}")
    return seconds


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m bench.ghz",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument("target", nargs="?", help="host:port of the server")
    parse.add_argument("--call", help="package.Service.Method (or package.Service/Method)")
    data = parse.add_mutually_exclusive_group()
    data.add_argument("-d", "--data", help="request as protobuf JSON (ghz template actions)")
    data.add_argument("-D", "--data-file", type=Path, help="file with the request's JSON")
    parse.add_argument("-m", "--metadata", help='request metadata as JSON: {"key":"value"}')
    parse.add_argument("-c", "--concurrency", type=positive, default=50, help="workers")
    parse.add_argument("-n", "--total", type=positive, default=200, help="calls in all")
    parse.add_argument("-z", "--duration", type=duration, help="run this long (ignores -n)")
    parse.add_argument("--rps", type=float, default=0.0, help="calls per second (0: no limit)")
    parse.add_argument("--connections", type=positive, default=1, help="TCP connections")
    parse.add_argument("-t", "--timeout", type=duration, default=20.0, help="per call (20s)")
    parse.add_argument("--insecure", action="store_true", help="plaintext (no TLS)")
    parse.add_argument("--cacert", help="the server's CA certificate (PEM)")
    parse.add_argument("--cert", help="client certificate (PEM), for mutual TLS")
    parse.add_argument("--key", help="client private key (PEM), for mutual TLS")
    parse.add_argument("--cname", help="the name the server's certificate carries")
    parse.add_argument("-O", "--format", choices=FORMATS, default="summary")
    parse.add_argument("-o", "--output", type=Path, help="write the report here (default: stdout)")
    parse.add_argument("--details", action="store_true", help="JSON: every call in 'details'")
    parse.add_argument(
        "--generator",
        choices=GENERATORS,
        default="auto",
        help="ghz (on PATH), grpc (grpc.aio processes), h2load (plaintext); auto: ghz if found",
    )
    parse.add_argument("--processes", type=int, default=0, help="grpc: client processes (cores)")
    suite = parse.add_argument_group("--suite: the hot RPCs against the echo ceiling")
    suite.add_argument("--suite", action="store_true", help="benchmark every service's hot RPCs")
    suite.add_argument("--quick", action="store_true", help="--suite: 2 s per RPC")
    suite.add_argument("--markdown", action="store_true", help="--suite: a Markdown table")
    suite.add_argument("--keep", action="store_true", help="--suite: keep the work folder")
    return parse


def options_from(args: argparse.Namespace, parse: argparse.ArgumentParser) -> Options:
    """The load asked for on the command line (parser errors name the flag)."""
    if not args.target:
        parse.error("the target host:port is required (or --suite)")
    if not args.call:
        parse.error("--call is required")
    if ":" not in args.target:
        parse.error(f"target {args.target!r}: expected host:port")
    if args.insecure and (args.cacert or args.cert or args.key):
        parse.error("--insecure is plaintext: leave out --cacert, --cert and --key")
    if bool(args.cert) != bool(args.key):
        parse.error("--cert and --key go together")
    for flag in ("cacert", "cert", "key"):
        path = getattr(args, flag)
        if path and not Path(path).is_file():
            parse.error(f"--{flag} {path}: no such file")
    if args.data_file is not None:
        try:
            data = args.data_file.read_text()
        except OSError as error:
            parse.error(f"-D {args.data_file}: {error.strerror}")
    else:
        data = args.data or "{}"
    try:
        metadata = metadata_of(args.metadata)
    except LoadError as error:
        parse.error(str(error))
    if args.rps < 0:
        parse.error("--rps must not be negative")
    return Options(
        target=args.target,
        call=args.call,
        data=data,
        metadata=metadata,
        concurrency=args.concurrency,
        total=args.total,
        duration=args.duration,
        rps=args.rps,
        connections=args.connections,
        timeout=args.timeout,
        tls=None if args.insecure else Tls(args.cacert, args.cert, args.key, args.cname),
        processes=args.processes,
        details=args.details or args.format == "csv",
    )


def generator_for(wanted: str) -> str:
    if wanted == "auto":
        return "ghz" if shutil.which("ghz") else "grpc"
    return wanted


def load_report(options: Options, generator: str) -> dict[str, Any]:
    """ghz's JSON report of one load, whichever generator ran it."""
    if generator == "ghz":
        return run_ghz(options)
    outcome = outcome_for(options, generator)
    data = ghz_report.report(outcome, options, details=options.details)
    if outcome.notes:
        data["notes"] = outcome.notes
    return data


def render(data: dict[str, Any], form: str) -> str:
    if form == "json":
        return json.dumps(data, indent=2) + "\n"
    if form == "csv":
        return ghz_report.csv(data)
    return ghz_report.summary(data)


def main(argv: Sequence[str] | None = None) -> int:
    parse = parser()
    args = parse.parse_args(argv)
    if args.suite:
        return run_in_work_folder(run_suite, args, "mq-ghz-")
    options = options_from(args, parse)
    try:
        data = load_report(options, generator_for(args.generator))
    except LoadError as error:
        print(f"python -m bench.ghz: {error}", file=sys.stderr)
        return 2
    text = render(data, args.format)
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------- --suite

#: Users the reads and writes are spread over.
USERS = 1000
_USER = f'"u{{{{randomInt 0 {USERS}}}}}"'


@dataclass(frozen=True, slots=True)
class Rpc:
    """One hot RPC: the service it is on, who calls it there, the request."""

    label: str
    service: str
    call: str
    identity: str
    data: str


def _clicks(count: int) -> str:
    one = f'{{"userId":{_USER},"idempotencyKey":"{{{{newUUID}}}}","count":1}}'
    return '{"clicks":[' + ",".join([one] * count) + "]}"


HOT_RPCS = (
    Rpc("Auth.GetJwks", "auth", "minequest.auth.v1.AuthService.GetJwks", "gateway", "{}"),
    Rpc(
        "Mining.SubmitClick",
        "mining",
        "minequest.mining.v1.MiningService.SubmitClick",
        "gateway",
        f'{{"userId":{_USER},"idempotencyKey":"{{{{newUUID}}}}","count":1}}',
    ),
    Rpc(
        "Mining.SubmitClicks (20)",
        "mining",
        "minequest.mining.v1.MiningService.SubmitClicks",
        "gateway",
        _clicks(20),
    ),
    Rpc(
        "Mining.GetMiningStatus",
        "mining",
        "minequest.mining.v1.MiningService.GetMiningStatus",
        "gateway",
        f'{{"userId":{_USER}}}',
    ),
    Rpc(
        "Wallet.GetBalance",
        "wallet",
        "minequest.wallet.v1.WalletService.GetBalance",
        "gateway",
        f'{{"userId":{_USER}}}',
    ),
    Rpc(
        "Wallet.Credit",
        "wallet",
        "minequest.wallet.v1.WalletService.Credit",
        "mining-worker",
        '{"entries":[{"userId":' + _USER + ',"amount":{"currency":"MQC","units":"1"},'
        '"source":"bench.credit","sourceId":"{{newUUID}}"}]}',
    ),
    Rpc(
        "Quests.ListQuests",
        "quests",
        "minequest.quests.v1.QuestsService.ListQuests",
        "gateway",
        f'{{"userId":{_USER}}}',
    ),
)
ECHO = "grpc.health.v1.Health.Check"


def tls_of(pki_dir: Path, identity: str, server: str) -> Tls:
    files = pki.identity_files(pki_dir, identity)
    return Tls(str(files.ca), str(files.cert), str(files.key), cname=server)


@contextlib.contextmanager
def echo_server(logs: Path, name: str, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    child = Child(name, [sys.executable, "-m", "bench.apps.echo", str(port)], env, logs)
    try:
        wait_for_port(child, port)
        yield f"127.0.0.1:{port}"
    finally:
        child.stop()


def run_suite(args: argparse.Namespace, work: Path) -> None:
    from bench.harness.suite import Suite, stores

    seconds = 2.0 if args.quick else (args.duration or 5.0)
    base = Options(
        target="",
        call=ECHO,
        concurrency=args.concurrency if args.concurrency != 50 else 32,
        connections=args.connections if args.connections != 1 else 2,
        duration=seconds,
        processes=args.processes,
    )
    print(f"Machine: {machine()} (shared: compare rows of one run)")
    print(
        f"Each row: {seconds:.0f} s, {base.concurrency} workers over {base.connections} "
        f"connections, calls spread over {USERS} users"
    )
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    with stores(work / "stores") as found:
        suite = Suite(found.urls, work, {"LOG_LEVEL": "WARNING"})
        suite.start()
        try:
            pki_dir = suite.plan.pki_dir
            echo_tls = {**base_env(), **pki.identity_files(pki_dir, "auth").env()}
            with (
                echo_server(logs, "echo-plain", base_env()) as plain,
                echo_server(logs, "echo-tls", echo_tls) as secure,
            ):
                echo_rows, echo_rps = _echo_rows(base, plain, secure, pki_dir, args)
                rows += echo_rows
                for rpc in HOT_RPCS:
                    options = replace(
                        base,
                        target=suite.plan.addresses[rpc.service],
                        call=rpc.call,
                        data=rpc.data,
                        tls=tls_of(pki_dir, rpc.identity, rpc.service),
                    )
                    data = load_report(options, _tls_generator(args))
                    rows.append(_row(rpc.label, rpc.identity, "mTLS", data, echo_rps))
                    print(f"  {rows[-1][0]}: {rows[-1][3]} calls/s", flush=True)
                suite.check_alive()
        finally:
            suite.stop()
    headers = ["RPC", "caller", "transport", "calls/s", "p50 ms", "p99 ms", "not OK", "vs echo"]
    print(f"\nLoad average now {load_average()}")
    print(table(headers, rows, markdown=args.markdown))
    print(
        "  vs echo = calls/s over the echo's (Health.Check over mTLS, same generator);\n"
        "  not OK = calls that ended with another status (RESOURCE_EXHAUSTED when a user's\n"
        "  tap bucket or the queue refuses a click: still a full call)"
    )


def _tls_generator(args: argparse.Namespace) -> str:
    """The generator for mTLS targets: h2load has no client certificates."""
    return generator_for("auto" if args.generator == "h2load" else args.generator)


def _echo_rows(
    base: Options, plain: str, secure: str, pki_dir: Path, args: argparse.Namespace
) -> tuple[list[list[str]], float]:
    """The echo over plaintext with each generator there is, then over mTLS."""
    rows = []
    drive: dict[str, float] = {}
    for generator in ("grpc", "h2load", "ghz"):
        if generator != "grpc" and not shutil.which(generator):
            continue
        data = load_report(replace(base, target=plain), generator)
        drive[generator] = float(data["rps"])
        rows.append(_row(f"echo Health.Check [{generator}]", "-", "plaintext", data, 0.0))
        print(f"  {rows[-1][0]}: {rows[-1][3]} calls/s", flush=True)
    if len(drive) > 1:
        best = max(drive, key=lambda name: drive[name])
        print(
            "  generators on the plaintext echo: "
            + ", ".join(f"{name} {rps:,.0f}/s" for name, rps in drive.items())
            + f": {best} drives the most"
        )
    generator = _tls_generator(args)
    secure_options = replace(base, target=secure, tls=tls_of(pki_dir, "gateway", "auth"))
    data = load_report(secure_options, generator)
    rows.append(_row(f"echo Health.Check [{generator}]", "gateway", "mTLS", data, 0.0))
    print(f"  {rows[-1][0]} over mTLS: {rows[-1][3]} calls/s", flush=True)
    return rows, float(data["rps"])


def _row(
    label: str, caller: str, transport: str, data: dict[str, Any], echo_rps: float
) -> list[str]:
    points = {
        point["percentage"]: point["latency"] for point in data.get("latencyDistribution") or []
    }
    statuses = data.get("statusCodeDistribution") or {}
    not_ok = sum(n for status, n in statuses.items() if status != "OK")
    rps = float(data["rps"])
    return [
        label,
        caller,
        transport,
        f"{rps:,.0f}",
        f"{points.get(50, 0) / 1e6:.2f}",
        f"{points.get(99, 0) / 1e6:.2f}",
        f"{not_ok}"
        + (f" ({100 * not_ok / data['count']:.0f} %)" if not_ok and data["count"] else ""),
        f"{rps / echo_rps:.2f}" if echo_rps else "1.00" if transport == "mTLS" else "-",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
