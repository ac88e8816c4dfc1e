"""Launch day on this machine: the whole click pipeline under load, side by side
with its ceiling and with seed 000's own design, in one run.

    python -m bench.clicks                          # ceiling, defaults, seed: ~5 minutes
    python -m bench.clicks --quick                  # a smoke run, ~1.5 minutes
    python -m bench.clicks --variants defaults,1-gateway,unbatched
    python -m bench.clicks --variant 'w4:GATEWAY_WORKERS=4,MINING_WORKER_CONCURRENCY=8'
    python -m bench.clicks --profile gateway,mining,mining-worker,wallet,mongodb
    python -m bench.clicks --rounds 3               # three interleaved rounds: ~15 minutes

Every variant is loaded the same way: wrk (``bench/wrk/post.lua``), 32
connections, ``--users`` users' access tokens in rotation, a fresh
``Idempotency-Key`` and ``{"count":1}`` per request, so every request is a new
click; only the per-IP tier is opened (all load comes from 127.0.0.1).

- **ceiling**: a bare Starlette endpoint making one grpc.aio unary call to an
  echo service (``bench/apps/echo.py``): one HTTP request plus one gRPC call
  in Python here, with no work behind it.
- **a suite variant** is an environment laid over ``make dev``'s plan
  (``tools.dev``): the whole suite on fresh embedded stores, every process as
  ``make dev`` runs it (:data:`VARIANTS`; ``--variant`` adds one).
- **seed 000**: its own design (Node/Express + BullMQ + a MongoDB worker),
  run by ``../shared/peers/seed_node.py`` when that file exists (``--seed``).

Per variant: accepted clicks/s (202), p50/p99, the drain during the load
(stream entries the workers finished per second) and the backlog when the
load stops as a share of what was accepted, CPU per accepted-and-credited
click across all processes (from the load's start until the backlog is
drained, read from ``/proc``) and per process; then the exactly-once audit
(``services.mining.audit``): duplicates 0 and every queued click credited.
Goals (issue "Launch day on one box") are printed MET/MISSED.

``--rounds N`` runs the whole sequence (ceiling, variants, seed) N times,
interleaved, so that each ratio is taken between runs minutes apart, not
across a machine whose speed moves: one table per round, then each
variant's ratios to the ceiling and to seed 000 round by round, with their
median and range.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.cpu import CpuMeter
from bench.harness.load import LoadResult, Wrk
from bench.harness.processes import (
    ROOT,
    Child,
    UvicornServer,
    base_env,
    http_call,
    run_in_work_folder,
    wait_for_port,
)
from bench.harness.profiling import Recorder, print_top, py_spy, read_stacks
from bench.harness.report import load_average, machine, median, table, verdict
from bench.harness.suite import Suite, stores
from bench.harness.tokens import Credentials, mint_tokens
from runtime.embedded import free_port

CLICK_PATH = "/api/mining/click"
BODY = '{"count":1}'
STREAM = "mining-clicks"
SEED_PEER = ROOT.parent / "shared" / "peers" / "seed_node.py"

#: The issue's load (users, connections, seconds): the defaults; the goals hold for it.
ISSUE_LOAD = (2000, 32, 60)
GOAL_VS_SEED = 2.0
GOAL_P99_MS = 50.0
GOAL_DRAIN_SHARE = 0.95
GOAL_CPU_MS = 0.8

#: Every suite variant: settings laid over ``make dev``'s plan. Knobs:
#: GATEWAY_WORKERS (gateway processes), GATEWAY_CLICK_BATCH_MAX /
#: GATEWAY_CLICK_BATCH_WINDOW_MS (click coalescing; MAX=1 is off),
#: MINING_WORKER_BATCH_SIZE, MINING_WORKER_CONCURRENCY, MINING_WORKER_LINGER_MS,
#: MINING_WORKER_PROCESSES (worker processes). (uvicorn against granian was
#: measured on the bare app: README, "Libraries and why".)
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "1-gateway": {"GATEWAY_WORKERS": "1"},
    # make dev gives the gateway a core fewer than the machine has; this is
    # the gateway's own default (a process per core).
    "core-gateways": {"GATEWAY_WORKERS": str(os.cpu_count() or 1)},
    "no-linger": {"MINING_WORKER_LINGER_MS": "0"},
    "unbatched": {"GATEWAY_CLICK_BATCH_MAX": "1"},
    "2-workers": {"MINING_WORKER_PROCESSES": "2"},
    "batch-500": {"MINING_WORKER_BATCH_SIZE": "500"},
    # The drain at the requests' priority (runtime.priority).
    "no-nice": {"MINING_WORKER_NICE": "0", "MONGODB_EMBEDDED_NICE": "0"},
    # The defaults before the 8 s linger and 10,000-click batches.
    "linger-2s": {"MINING_WORKER_LINGER_MS": "2000", "MINING_WORKER_BATCH_SIZE": "5000"},
}
#: Every variant: all load comes from 127.0.0.1, so the per-IP tiers are opened:
#: the clicks' and the first verification of each token (600/min per IP).
OPEN_IP_TIER = {
    "MINING_RATE_LIMIT_IP_RATE": "10000000",
    "MINING_RATE_LIMIT_IP_BURST": "10000000",
    "TOKEN_RATE_LIMIT_IP_RATE": "10000000",
}
PROFILE_TARGETS = ("gateway", "mining", "mining-worker", "wallet", "auth", "mongodb", "redis")


@dataclass(slots=True)
class Exactness:
    """The audit after a variant's backlog drained."""

    queued: int
    clicks: int
    credited: int
    duplicates: int
    problems: list[str] = field(default_factory=list)

    @property
    def every_202_credited(self) -> bool:
        return not self.problems and self.queued == self.clicks == self.credited


@dataclass(slots=True)
class Row:
    """One variant's figures (None where a variant cannot say)."""

    name: str
    accepted_per_s: float
    p50_ms: float
    p99_ms: float
    seconds: float
    drain_per_s: float | None = None
    backlog_share: float | None = None
    cpu_ms_per_click: float | None = None
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    exactness: Exactness | None = None
    refused: str = ""
    #: Clicks the mining service answered during the load, by outcome.
    outcomes: dict[str, float] = field(default_factory=dict)
    note: str = ""


# --------------------------------------------------------------------------- ceiling


def measure_ceiling(work: Path, generator: Wrk, args: argparse.Namespace) -> Row:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    echo_port = free_port()
    env = base_env()
    echo = Child("echo-grpc", [sys.executable, "-m", "bench.apps.echo", str(echo_port)], env, logs)
    try:
        wait_for_port(echo, echo_port)
        server = UvicornServer(
            "ceiling-http",
            "bench.apps.echo:create",
            {**env, "MQBENCH_ECHO_ADDR": f"127.0.0.1:{echo_port}"},
            logs,
            "/bench/count",
        )
        try:
            server.wait_ready()
            if args.warmup:
                generator.run([server.port], args.connections, args.warmup, "cw")
            meter = CpuMeter({"http app": server.child.pid, "echo gRPC": echo.pid})
            meter.start()
            load = generator.run([server.port], args.connections, args.duration, "cm")
            cpu = meter.stop()
            server.child.check_alive()
            return Row(
                name="ceiling (Starlette + grpc.aio echo)",
                accepted_per_s=load.rps,
                p50_ms=load.p50_ms,
                p99_ms=load.p99_ms,
                seconds=load.seconds,
                cpu_ms_per_click=1000 * sum(cpu.values()) / max(1, load.requests),
                cpu_by_process={name: 1000 * v / max(1, load.requests) for name, v in cpu.items()},
            )
        finally:
            server.child.stop()
    finally:
        echo.stop()


# --------------------------------------------------------------------------- suite variants


def backlog(redis: Any) -> int:
    return int(redis.xlen(STREAM)) if redis.exists(STREAM) else 0


def wait_drained(redis: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if backlog(redis) == 0:
            return True
        time.sleep(0.1)
    return False


def smoke(suite: Suite, credentials: Credentials) -> None:
    """One click until it is accepted (the gateway fetches the JWK set first)."""
    deadline = time.monotonic() + 60
    last = "no answer"
    while time.monotonic() < deadline:
        suite.check_alive()
        with contextlib.suppress(OSError):
            reply = http_call(
                suite.gateway_port,
                "POST",
                CLICK_PATH,
                {
                    "Authorization": f"Bearer {credentials.tokens[-1]}",
                    "Idempotency-Key": f"smoke-{uuid.uuid4().hex}",
                    "Content-Type": "application/json",
                },
                BODY.encode(),
            )
            if reply.status in (202, 429):
                return
            last = f"{reply.status} {reply.body[:300]!r}"
        time.sleep(0.2)
    raise RuntimeError(f"no click accepted within 60 s (last: {last})")


@dataclass(frozen=True, slots=True)
class Bench:
    """What every variant of one run shares."""

    work: Path
    key_file: Path
    credentials: Credentials
    generator: Wrk
    args: argparse.Namespace


def measure_variant(bench: Bench, name: str, settings: Mapping[str, str], index: int) -> Row:
    import redis as sync_redis

    args = bench.args
    folder = bench.work / f"variant-{index}"
    environment = {
        **OPEN_IP_TIER,
        "LOG_LEVEL": args.log_level,
        "AUTH_JWT_PRIVATE_KEY_FILE": str(bench.key_file),
        **dict(args.env),
        **settings,
    }
    with stores(folder / "stores", environment) as found:
        suite = Suite(found.urls, folder, environment, redis_db=3 + index % 12)
        try:
            suite.start()
            redis = sync_redis.Redis.from_url(suite.env["REDIS_URL"], decode_responses=True)
            try:
                return _load_variant(bench, name, suite, found.pids, redis)
            finally:
                redis.close()
        finally:
            suite.stop()


def _load_variant(
    bench: Bench, name: str, suite: Suite, store_pids: Mapping[str, int], redis: Any
) -> Row:
    args, generator = bench.args, bench.generator
    smoke(suite, bench.credentials)
    port = [suite.gateway_port]
    if args.warmup:
        generator.run(port, args.connections, args.warmup, f"w{uuid.uuid4().hex[:6]}")
        wait_drained(redis, args.drain_limit)
    pids = {**suite.pids(), **store_pids}
    recorder = _profiler(pids, args, suite.logs)
    meter = CpuMeter(pids)
    meter.start()
    outcomes_before, processed_before, backlog_before = (
        suite.outcomes(),
        suite.processed(),
        backlog(redis),
    )
    load = generator.run(port, args.connections, args.duration, f"m{uuid.uuid4().hex[:6]}")
    outcomes = {
        name: count - outcomes_before.get(name, 0.0)
        for name, count in suite.outcomes().items()
        if count - outcomes_before.get(name, 0.0)
    }
    queued_during = outcomes.get("queued", 0.0)
    processed_during = suite.processed() - processed_before
    at_stop = backlog(redis)
    drained = wait_drained(redis, args.drain_limit)
    cpu = meter.stop()
    suite.check_alive()
    if recorder is not None:
        _print_profiles(name, recorder)
    if not suite.worker_metrics_ports:  # no worker metrics: what left the stream
        processed_during = queued_during - (at_stop - backlog_before)
    accepted = max(1.0, queued_during)
    exactness = audit(suite, redis)
    return Row(
        name=name,
        accepted_per_s=load.accepted_per_second,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        seconds=load.seconds,
        drain_per_s=processed_during / load.seconds,
        backlog_share=at_stop / accepted,
        cpu_ms_per_click=1000 * sum(cpu.values()) / accepted,
        cpu_by_process={process: 1000 * v / accepted for process, v in cpu.items()},
        exactness=exactness,
        refused=_refused(load),
        outcomes=outcomes,
        note="" if drained else f"backlog not drained within {args.drain_limit:.0f} s",
    )


def _refused(load: LoadResult) -> str:
    parts = [
        f"{label} {100 * load.share(status):.1f} %"
        for status, label in (("s429", "429"), ("s503", "503"))
        if load.count(status)
    ]
    other = load.count("s_other") + load.socket_errors
    if other:
        parts.append(f"other {other}")
    return ", ".join(parts)


def audit(suite: Suite, redis: Any) -> Exactness:
    """The exactly-once audit over the mining and wallet databases."""
    from pymongo import AsyncMongoClient

    from services.mining.audit import audit as exactly_once

    async def run() -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(suite.env["MONGODB_URI"])
        try:
            return await exactly_once(
                client[suite.database["mining"]], client[suite.database["wallet"]]
            )
        finally:
            await client.close()

    result = asyncio.run(run())
    problems = [
        f"{label} {len(found)} (e.g. {found[0]})"
        for label, found in (
            ("doubles", result.doubles),
            ("missing", result.missing),
            ("wrong", result.wrong),
            ("unknown", result.unknown),
        )
        if found
    ]
    if result.outbox_pending:
        problems.append(f"outbox pending {result.outbox_pending}")
    left = backlog(redis)
    if left:
        problems.append(f"backlog {left}")
    return Exactness(
        queued=round(suite.queued()),
        clicks=result.clicks,
        credited=len(result.credited_clicks),
        duplicates=len(result.doubles),
        problems=problems,
    )


# --------------------------------------------------------------------------- seed 000


def measure_seed(peer: Path, args: argparse.Namespace) -> Row:
    command = [sys.executable, str(peer), "--python", sys.executable]
    command += ["--seconds", str(args.duration), "--users", str(args.users)]
    command += ["--connections", str(args.connections)]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=args.duration + 600
    )
    line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("{")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{peer} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line)
    accepted = float(data["accepted_per_s"])
    drain = float(data["drain_during_load_per_s"])
    return Row(
        name="seed 000 (Node/Express + BullMQ + MongoDB worker)",
        accepted_per_s=accepted,
        p50_ms=float(data["p50_ms"]),
        p99_ms=float(data["p99_ms"]),
        seconds=float(data["seconds"]),
        drain_per_s=drain,
        backlog_share=max(0.0, accepted - drain) / accepted if accepted else None,
        refused=f"non-2xx {data.get('non2xx', 0)}" if data.get("non2xx") else "",
    )


# --------------------------------------------------------------------------- profiling


def _profiler(pids: Mapping[str, int], args: argparse.Namespace, out: Path) -> Recorder | None:
    if not args.profile:
        return None
    spy = py_spy()
    if spy is None:
        print("--profile: py-spy not found (the bench extra installs it); skipped")
        return None
    chosen = {
        name: pid
        for name, pid in pids.items()
        if any(name == target or name.startswith(f"{target}-") for target in args.profile)
    }
    return Recorder(spy, chosen, args.duration, out, rate=args.profile_rate)


def _print_profiles(variant: str, recorder: Recorder) -> None:
    print(f"\nProfiles of {variant} (py-spy, GIL holder, during the measured load):")
    for name, (raw, problem) in recorder.finish().items():
        if raw is None:
            print(f"  {name}: {problem}")
            continue
        self_samples, inclusive, total = read_stacks(raw)
        print(f"\n== {name} ({total} samples)")
        print_top(self_samples, inclusive, total, most=15)


# --------------------------------------------------------------------------- report


def _number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def print_report(rows: Sequence[Row], args: argparse.Namespace, *, markdown: bool) -> None:
    ceiling = next((row for row in rows if row.name.startswith("ceiling")), None)
    seed = next((row for row in rows if row.name.startswith("seed")), None)
    headers = [
        "variant",
        "accepted/s",
        "p50 / p99 ms",
        "drain during load",
        "backlog at end",
        "CPU ms/click",
        "vs ceiling",
        "vs seed",
        "dups",
        "every 202 credited",
    ]
    lines = []
    for row in rows:
        drain = "-"
        if row.drain_per_s is not None:
            share = row.drain_per_s / row.accepted_per_s if row.accepted_per_s else 0.0
            drain = f"{row.drain_per_s:,.0f}/s ({share:.2f})"
        exact = row.exactness
        lines.append(
            [
                row.name,
                _number(row.accepted_per_s),
                f"{row.p50_ms:.1f} / {row.p99_ms:.1f}",
                drain,
                _number(None if row.backlog_share is None else 100 * row.backlog_share, 1, " %"),
                _number(row.cpu_ms_per_click, 2),
                _number(row.accepted_per_s / ceiling.accepted_per_s, 2)
                if ceiling and ceiling.accepted_per_s
                else "-",
                _number(row.accepted_per_s / seed.accepted_per_s, 2)
                if seed and seed.accepted_per_s
                else "-",
                "-" if exact is None else str(exact.duplicates),
                "-" if exact is None else ("yes" if exact.every_202_credited else "NO"),
            ]
        )
    print()
    print(
        f"{args.users} users, {args.connections} connections, {args.duration} s per variant "
        f"(+{args.warmup} s warm-up); load average now {load_average()}"
    )
    print(table(headers, lines, markdown=markdown))
    print(
        "  drain during load = stream entries the workers finished per second while the load\n"
        "  ran (share of accepted); backlog at end = entries left when it stopped, as a share\n"
        "  of the clicks accepted; CPU ms/click = CPU of every process from the load's start\n"
        "  until the backlog drained, per accepted click (the ceiling: per request)"
    )
    print("\nCPU per accepted click, by process (ms):")
    for row in rows:
        if row.cpu_by_process:
            parts = sorted(row.cpu_by_process.items(), key=lambda item: -item[1])
            print(f"  {row.name}: " + ", ".join(f"{n} {v:.3f}" for n, v in parts))
    for row in rows:
        if row.refused or row.note:
            print(f"  {row.name}: " + "; ".join(part for part in (row.refused, row.note) if part))
        if row.outcomes:
            parts = sorted(row.outcomes.items(), key=lambda item: -item[1])
            print(
                f"  {row.name}: the mining service answered "
                + ", ".join(f"{name} {count:,.0f}" for name, count in parts)
                + " (other 429/503 came from the gateway's limits)"
            )
        exact = row.exactness
        if exact is not None:
            print(
                f"  {row.name}: queued {exact.queued}, click records {exact.clicks}, credited "
                f"{exact.credited}, duplicates {exact.duplicates}"
                + (f"; {'; '.join(exact.problems)}" if exact.problems else "")
            )
    print_goals(rows, seed, args)


def print_goals(rows: Sequence[Row], seed: Row | None, args: argparse.Namespace) -> None:
    users, connections, seconds = ISSUE_LOAD
    print(
        "\nGoals:"
        if (args.users, args.connections, args.duration) == ISSUE_LOAD
        else f"\nGoals (not the issue's load of {users} users, {connections} connections, "
        f"{seconds} s: indicative):"
    )
    for row in rows:
        if row.exactness is None:
            continue
        parts = []
        if seed and seed.accepted_per_s:
            ratio = row.accepted_per_s / seed.accepted_per_s
            parts.append(
                f"accepted {ratio:.2f}x seed (>= {GOAL_VS_SEED}x: {verdict(ratio >= GOAL_VS_SEED)})"
            )
        else:
            parts.append("accepted vs seed: no seed run")
        parts.append(f"p99 {row.p99_ms:.1f} ms (< {GOAL_P99_MS:.0f}: {verdict(row.p99_ms < 50)})")
        share = (row.drain_per_s or 0.0) / row.accepted_per_s if row.accepted_per_s else 0.0
        drain_goal = verdict(share >= GOAL_DRAIN_SHARE)
        if args.duration < seconds:
            drain_goal += f", a {args.duration} s run: the goal is for {seconds} s"
        parts.append(f"drain {100 * share:.0f} % of accepted (>= 95 %: {drain_goal})")
        cpu = row.cpu_ms_per_click or float("nan")
        parts.append(f"CPU {cpu:.2f} ms/click (<= {GOAL_CPU_MS}: {verdict(cpu <= GOAL_CPU_MS)})")
        exact = row.exactness
        parts.append(f"duplicates {exact.duplicates} ({verdict(exact.duplicates == 0)})")
        parts.append(f"every 202 credited ({verdict(exact.every_202_credited)})")
        print(f"  {row.name}: " + "; ".join(parts))


# --------------------------------------------------------------------------- main


def parse_env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``name:NAME=VALUE,NAME=VALUE`` (``name:`` alone: the defaults under another name)."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name:NAME=VALUE,..., got {text!r}")
    return name, dict(parse_env(part) for part in rest.split(",") if part)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.clicks",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="variants: "
        + "; ".join(
            f"{name} = {', '.join(f'{k}={v}' for k, v in env.items()) or 'make dev defaults'}"
            for name, env in VARIANTS.items()
        ),
    )
    users, connections, seconds = ISSUE_LOAD
    parser.add_argument("--users", type=int, default=users, help="distinct users/tokens")
    parser.add_argument("--duration", type=int, default=seconds, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per variant")
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument(
        "--variants", default="defaults", help="comma-separated names of VARIANTS (below)"
    )
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="one more variant: settings laid over make dev's plan (repeatable)",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceiling")
    parser.add_argument(
        "--seed",
        type=Path,
        default=SEED_PEER,
        help="seed 000's design runner (default: ../shared/peers/seed_node.py; "
        "skipped when absent)",
    )
    parser.add_argument("--no-seed", action="store_true", help="skip seed 000's design")
    parser.add_argument(
        "--drain-limit", type=float, default=120.0, help="seconds to wait for a backlog to drain"
    )
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of every process")
    parser.add_argument(
        "--env",
        type=parse_env,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every variant's processes (repeatable)",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="py-spy these during each variant's load (perturbs it), comma-separated: "
        + ", ".join(PROFILE_TARGETS),
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds of the whole sequence"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.duration, args.warmup = min(args.users, 300), 5, 1
        args.drain_limit = min(args.drain_limit, 30.0)
    args.profile = [name.strip() for name in args.profile.split(",") if name.strip()]
    unknown = set(args.profile) - set(PROFILE_TARGETS)
    if unknown:
        parser.error(f"--profile: unknown {', '.join(sorted(unknown))}")
    chosen = [name.strip() for name in args.variants.split(",") if name.strip()]
    missing = [name for name in chosen if name not in VARIANTS]
    if missing:
        parser.error(f"--variants: unknown {', '.join(missing)} (known: {', '.join(VARIANTS)})")
    args.suite_variants = [(name, VARIANTS[name]) for name in chosen] + args.variant
    if min(args.duration, args.users, args.connections, args.rounds) < 1:
        parser.error("--duration, --users, --connections and --rounds must be at least 1")
    return args


def run(args: argparse.Namespace, work: Path) -> None:
    print(f"Machine: {machine()} (shared: compare ratios from one run)")
    started = time.monotonic()
    key_file = work / "jwt-private.pem"
    credentials = mint_tokens(key_file, args.users, work)
    generator = Wrk(credentials, CLICK_PATH, BODY)
    bench = Bench(work, key_file, credentials, generator, args)
    rounds: list[list[Row]] = []
    for number in range(args.rounds):
        prefix = f"round {number + 1}: " if args.rounds > 1 else ""
        rows = measure_round(bench, number, prefix)
        rounds.append(rows)
        if args.rounds > 1:
            print(f"\n-- round {number + 1} of {args.rounds}")
        print_report(rows, args, markdown=args.markdown)
    if args.rounds > 1:
        print_ratios(rounds)
    print(f"\nWhole run: {time.monotonic() - started:.0f} s")
    if args.keep:
        print(f"Logs and files: {work}")


def measure_round(bench: Bench, number: int, prefix: str) -> list[Row]:
    """The ceiling, each suite variant and seed 000, one after the other."""
    args = bench.args
    rows: list[Row] = []
    if not args.no_ceiling:
        rows.append(measure_ceiling(bench.work / f"ceiling-{number}", bench.generator, args))
        print(f"  {prefix}{_progress(rows[-1])}", flush=True)
    count = len(args.suite_variants)
    for index, (name, settings) in enumerate(args.suite_variants):
        rows.append(measure_variant(bench, name, settings, number * count + index))
        print(f"  {prefix}{_progress(rows[-1])}", flush=True)
    if not args.no_seed:
        if args.seed.exists():
            rows.append(measure_seed(args.seed, args))
            print(f"  {prefix}{_progress(rows[-1])}", flush=True)
        else:
            print(f"  seed 000's design: {args.seed} not found; skipped")
    return rows


def print_ratios(rounds: Sequence[Sequence[Row]]) -> None:
    """Each suite variant's accepted/s over the ceiling's and the seed's of the
    same round, round by round, with the median and the range."""
    print("\nRatios inside each round (accepted/s over the same round's):")
    names = [row.name for row in rounds[0] if row.exactness is not None]
    for reference in ("ceiling", "seed"):
        for name in names:
            ratios = []
            for rows in rounds:
                base = next((r for r in rows if r.name.startswith(reference)), None)
                row = next((r for r in rows if r.name == name), None)
                if base and row and base.accepted_per_s:
                    ratios.append(row.accepted_per_s / base.accepted_per_s)
            if not ratios:
                continue
            goal = (
                f"; goal >= {GOAL_VS_SEED}x: {verdict(median(ratios) >= GOAL_VS_SEED)}"
                if reference == "seed"
                else ""
            )
            print(
                f"  {name} / {reference}: "
                + ", ".join(f"{ratio:.2f}" for ratio in ratios)
                + f" (median {median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}"
                + f"{goal})"
            )


def _progress(row: Row) -> str:
    return f"{row.name}: {row.accepted_per_s:,.0f} accepted/s, p99 {row.p99_ms:.1f} ms" + (
        f", drain {row.drain_per_s:,.0f}/s" if row.drain_per_s is not None else ""
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_work_folder(run, parse_args(argv), "mq-clicks-")


if __name__ == "__main__":
    raise SystemExit(main())
