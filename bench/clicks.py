"""Launch day on this machine: the whole click pipeline under load, and its ceiling.

Three variants in one run, side by side, each loaded the same way (wrk,
``bench/wrk/clicks.lua``: ``--users`` users' access tokens in rotation, a
unique ``Idempotency-Key`` and ``{"count":1}`` per request, so every request
is a new click):

  (ceiling) a bare Starlette endpoint making one grpc.aio unary call to an
            echo gRPC service (``bench/apps/echo.py``): what one HTTP request
            plus one gRPC call costs in Python here, with no work behind it;
  (1 gw)    the whole stack: auth, wallet, the mining service, ``--workers``
            mining worker processes and one gateway (``python -m gateway``);
  (2 gw)    the same stack behind two gateway processes (two ports, two wrk
            instances with half the connections each).

Per stack variant: accepted clicks/s (202), the share of 429 and 503, the
gateway's p50/p95/p99, how fast the workers drain (``mining_worker_processed_total``
during the load and after it), the backlog (``XLEN mining-clicks``) when the
load stops and how long it takes to drain, and each process's CPU. After the
runs every click is checked: MongoDB click records and wallet ledger entries
(``source = mining.click``) against the clicks the mining service queued, and
duplicates (entries - distinct click ids).

The per-IP tier is opened up (all load comes from 127.0.0.1); the per-user
(5/s, burst 10) and global tiers and the tap rules stay as shipped, so with
few users the per-user bucket refuses (429), with many the machine is the limit.

    python -m bench.clicks                        # about 4 minutes
    python -m bench.clicks --quick                # a smoke run, about 1.5 minutes
    python -m bench.clicks --profile gateway,mining,worker,wallet,mongo

``--profile`` adds one more loaded run (1 gateway) with py-spy recording the
named processes and prints where their time goes. Needs wrk (``apt-get
install -y wrk``) and, for ``--profile``, py-spy (the ``bench`` extra). Redis
and MongoDB are embedded servers unless REDIS_URL / MONGODB_URI are set. Only
127.0.0.1 is ever loaded; every process started is stopped on exit or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as ``python bench/clicks.py``
    sys.path.insert(0, str(ROOT))

from bench.gateway_overhead import (  # noqa: E402 - after the path fix above
    Child,
    Credentials,
    Server,
    Variant,
    base_env,
    http_call,
    machine,
    mint_tokens,
    print_top,
    read_stacks,
    redis_with_db,
    run_in_work_folder,
    wait_for_port,
)
from runtime.embedded import free_port  # noqa: E402
from tools import pki  # noqa: E402

WRK_SCRIPT = ROOT / "bench" / "wrk" / "clicks.lua"
CLICK_PATH = "/api/mining/click"
BODY = '{"count":1}'
STACK_DB = 3
START_TIMEOUT_SECONDS = 60.0
CLICK_SOURCE = "mining.click"
STREAM = "mining-clicks"
DEAD_LETTERS = "mining-clicks-dead"
CLK_TCK = os.sysconf("SC_CLK_TCK")

GOAL_SHARE_OF_CEILING = 0.60
GOAL_P99_MS = 50.0

CEILING = Variant("ceiling", "ceiling: Starlette + 1 gRPC call", "bench.apps.echo:create", None)


# --------------------------------------------------------------------------- load


@dataclass(slots=True)
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[str, int]
    #: Latency (µs) at every 0.1 % of each wrk instance, with its weight.
    quantiles: list[tuple[int, float]]
    socket_errors: int
    cpu_seconds: float = 0.0

    def count(self, name: str) -> int:
        return self.statuses.get(name, 0)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def accepted_per_second(self) -> float:
        return self.count("s202") / self.seconds if self.seconds else 0.0

    def share(self, name: str) -> float:
        return self.count(name) / self.requests if self.requests else 0.0

    def percentile_ms(self, fraction: float) -> float:
        total = sum(weight for _, weight in self.quantiles)
        if not total:
            return float("nan")
        running = 0.0
        for value, weight in sorted(self.quantiles):
            running += weight
            if running >= fraction * total:
                return value / 1000
        return self.quantiles[-1][0] / 1000


def run_wrk(
    ports: Sequence[int],
    connections: int,
    seconds: int,
    credentials: Credentials,
    run_id: str,
) -> LoadResult:
    """One wrk instance per port, at the same time, the connections split
    between them; their results merged."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    users = len(credentials.tokens)
    processes: list[subprocess.Popen[str]] = []
    try:
        for index, port in enumerate(ports):
            share = max(1, connections // len(ports))
            command = [
                wrk,
                "-t1",
                f"-c{share}",
                f"-d{seconds}s",
                "--timeout",
                "5s",
                "-s",
                str(WRK_SCRIPT),
                f"http://127.0.0.1:{port}",
                "--",
                str(credentials.tokens_file),
                f"{run_id}-{index}",
                BODY,
                str(users * index // len(ports)),
            ]
            processes.append(
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        outputs = [process.communicate(timeout=seconds + 60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    merged = LoadResult(0, 0.0, {}, [], 0)
    for process, (out, err) in zip(processes, outputs, strict=True):
        line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
        if process.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({process.returncode}):\n{out}\n{err}")
        data = json.loads(line.removeprefix("WRK_JSON "))
        requests = int(data["requests"])
        merged.requests += requests
        merged.seconds = max(merged.seconds, int(data["duration_us"]) / 1e6)
        for name, value in data["statuses"].items():
            merged.statuses[name] = merged.statuses.get(name, 0) + int(value)
        weight = requests / max(1, len(data["quantiles_us"]))
        merged.quantiles.extend((int(value), weight) for value in data["quantiles_us"])
        merged.socket_errors += sum(
            int(data[name])
            for name in ("connect_errors", "read_errors", "write_errors", "timeouts")
        )
    return merged


# --------------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def scrape(port: int) -> dict[str, float]:
    """A Prometheus text page as ``{name{labels}: value}``."""
    reply = http_call(port, "GET", "/metrics")
    values: dict[str, float] = {}
    for line in reply.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


@dataclass(slots=True)
class Stores:
    urls: dict[str, str]
    #: Embedded servers started here, by name (their pids are profiled / measured).
    pids: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def stores(work: Path) -> Iterator[Stores]:
    """REDIS_URL / MONGODB_URI from the environment, or embedded servers (a data
    folder and a 1 GB cache for SecantusDB, as DESIGN.md says)."""
    from runtime.embedded import EmbeddedMongo, EmbeddedRedis, EmbeddedServer

    found = Stores({})
    started: list[EmbeddedServer] = []
    try:
        factories: tuple[tuple[str, type[EmbeddedServer]], ...] = (
            ("REDIS_URL", EmbeddedRedis),
            ("MONGODB_URI", EmbeddedMongo),
        )
        for variable, factory in factories:
            if os.environ.get(variable):
                found.urls[variable] = os.environ[variable]
                continue
            server = factory(work / "stores" / factory.name)
            server.start()
            started.append(server)
            found.urls[variable] = server.url
            assert server.process is not None
            found.pids[factory.name] = server.process.pid
        yield found
    finally:
        for server in reversed(started):
            server.stop()


class Stack:
    """auth, wallet, mining, the workers, and gateways started and stopped on demand."""

    def __init__(
        self, urls: Mapping[str, str], work: Path, args: argparse.Namespace, logs: Path
    ) -> None:
        self.logs = logs
        self.pki_dir = work / "pki"
        pki.ensure(self.pki_dir)
        self.redis_url = redis_with_db(urls["REDIS_URL"], STACK_DB)
        self.mongodb_uri = urls["MONGODB_URI"]
        tag = uuid.uuid4().hex[:8]
        self.databases = {
            "auth": f"bench_auth_{tag}",
            "wallet": f"bench_wallet_{tag}",
            "mining": f"bench_mining_{tag}",
        }
        ports = {name: free_port() for name in ("auth", "wallet", "mining", "mining_metrics")}
        self.mining_metrics_port = ports["mining_metrics"]
        self.env: dict[str, str] = {
            **base_env(),
            "MONGODB_URI": self.mongodb_uri,
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": args.log_level,
            "AUTH_GRPC_PORT": str(ports["auth"]),
            "AUTH_METRICS_PORT": "0",
            "AUTH_MONGODB_DATABASE": self.databases["auth"],
            "AUTH_JWT_PRIVATE_KEY_FILE": str(work / "jwt-private.pem"),
            "AUTH_JWT_GENERATE_KEY": "true",
            "ENABLE_DEV_OTP_FALLBACK": "true",
            "AUTH_SERVICE_ADDR": f"127.0.0.1:{ports['auth']}",
            "WALLET_GRPC_PORT": str(ports["wallet"]),
            "WALLET_METRICS_PORT": "0",
            "WALLET_MONGODB_DATABASE": self.databases["wallet"],
            "WALLET_DEPOSIT_WALLETS": "USDT:ethereum:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "WALLET_SERVICE_ADDR": f"127.0.0.1:{ports['wallet']}",
            "DEPOSIT_WEBHOOK_SECRET": "bench-webhook-secret-0123456789",
            "MINING_GRPC_PORT": str(ports["mining"]),
            "MINING_METRICS_PORT": str(ports["mining_metrics"]),
            "MINING_MONGODB_DATABASE": self.databases["mining"],
            "MINING_SERVICE_ADDR": f"127.0.0.1:{ports['mining']}",
            # Not started: nothing here calls it, and /api/health is not waited on.
            "QUESTS_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
            # All load comes from 127.0.0.1: open the per-IP tier only.
            "MINING_RATE_LIMIT_IP_RATE": "10000000",
            "MINING_RATE_LIMIT_IP_BURST": "10000000",
            "GATEWAY_HOST": "127.0.0.1",
            # several gateways: their metrics ports would collide (none is scraped)
            "GATEWAY_METRICS_PORT": "0",
        }
        for name, value in args.env:
            self.env[name] = value
        self.children: dict[str, Child] = {}
        self.worker_ports: list[int] = []
        self.gateway_ports: list[int] = []
        self._ports = ports
        self._workers = args.workers

    def start(self) -> None:
        for name, module in (
            ("auth", ["services.auth"]),
            ("wallet", ["services.wallet"]),
            ("mining", ["services.mining"]),
        ):
            self._spawn(name, module, self.env)
        for index in range(self._workers):
            port = free_port()
            self.worker_ports.append(port)
            env = {**self.env, "MINING_WORKER_METRICS_PORT": str(port)}
            self._spawn(f"worker-{index + 1}", ["services.mining", "worker"], env)
        for name in ("auth", "wallet", "mining"):
            wait_for_port(self.children[name], self._ports[name])
        wait_for_port(self.children["mining"], self.mining_metrics_port)
        for index, port in enumerate(self.worker_ports):
            wait_for_port(self.children[f"worker-{index + 1}"], port)

    def _spawn(self, name: str, module: list[str], env: Mapping[str, str]) -> Child:
        """Start ``module`` as its own identity: internal gRPC is mutual TLS, as
        shipped (``make dev``, compose), so the figures include what it costs."""
        identity = "mining-worker" if module[1:] == ["worker"] else module[0].split(".")[-1]
        env = {**env, **pki.identity_files(self.pki_dir, identity).env()}
        child = Child(name, [sys.executable, "-m", *module], env, self.logs)
        self.children[name] = child
        return child

    def start_gateways(self, count: int, credentials: Credentials) -> list[int]:
        for index in range(count):
            port = free_port()
            env = {**self.env, "GATEWAY_PORT": str(port)}
            self._spawn(f"gateway-{index + 1}", ["gateway"], env)
            self.gateway_ports.append(port)
        for index, port in enumerate(self.gateway_ports):
            child = self.children[f"gateway-{index + 1}"]
            wait_for_port(child, port)
            self._smoke(child, port, credentials)
        return list(self.gateway_ports)

    def _smoke(self, child: Child, port: int, credentials: Credentials) -> None:
        """One click until it is accepted (the gateway fetches the JWK set first)."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last = "no answer"
        while time.monotonic() < deadline:
            child.check_alive()
            reply = http_call(
                port,
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
        raise RuntimeError(f"{child.name}: no click accepted (last: {last}):\n{child.tail()}")

    def stop_gateways(self) -> None:
        for index in range(len(self.gateway_ports)):
            self.children.pop(f"gateway-{index + 1}").stop()
        self.gateway_ports.clear()

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()
        self.children.clear()

    def check_alive(self) -> None:
        for child in self.children.values():
            child.check_alive()

    def processed(self) -> float:
        return sum(
            scrape(port).get("mining_worker_processed_total", 0.0) for port in self.worker_ports
        )

    def queued(self) -> float:
        return scrape(self.mining_metrics_port).get(
            'mining_click_requests_total{status="queued"}', 0.0
        )

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items()}


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class StackRun:
    label: str
    load: LoadResult
    processed_during_load: float
    backlog_at_stop: int
    drain_seconds: float
    drained: bool
    processed_after_load: float
    queued: float
    cpu: dict[str, float]

    @property
    def drain_rate_under_load(self) -> float:
        return self.processed_during_load / self.load.seconds if self.load.seconds else 0.0

    @property
    def drain_rate_after(self) -> float:
        if self.drain_seconds <= 0:
            return float("nan")
        return self.processed_after_load / self.drain_seconds


def backlog(redis: Any) -> int:
    return int(redis.xlen(STREAM))


def wait_drained(redis: Any, limit: float, poll: float = 0.1) -> tuple[float, bool]:
    """Seconds until the stream is empty (at most ``limit``) and whether it emptied."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if backlog(redis) == 0:
            return time.monotonic() - started, True
        time.sleep(poll)
    return time.monotonic() - started, False


def cpu_of(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def measure_stack(
    stack: Stack,
    gateways: int,
    credentials: Credentials,
    redis: Any,
    args: argparse.Namespace,
    *,
    store_pids: Mapping[str, int],
) -> StackRun:
    label = f"{gateways} gw"
    ports = stack.start_gateways(gateways, credentials)
    try:
        if args.warmup:
            run_wrk(ports, args.connections, args.warmup, credentials, f"w{uuid.uuid4().hex[:6]}")
            wait_drained(redis, args.drain_limit)
        pids = {**stack.pids(), **store_pids}
        cpu_before = cpu_of(pids)
        processed_before, queued_before = stack.processed(), stack.queued()
        load = run_wrk(
            ports, args.connections, args.duration, credentials, f"m{uuid.uuid4().hex[:6]}"
        )
        processed_at_stop = stack.processed()
        cpu_after = cpu_of(pids)
        at_stop = backlog(redis)
        drain_seconds, drained = wait_drained(redis, args.drain_limit)
        time.sleep(0.2)
        processed_after = stack.processed()
        stack.check_alive()
        return StackRun(
            label=label,
            load=load,
            processed_during_load=processed_at_stop - processed_before,
            backlog_at_stop=at_stop,
            drain_seconds=drain_seconds if at_stop else 0.0,
            drained=drained,
            processed_after_load=processed_after - processed_at_stop,
            queued=stack.queued() - queued_before,
            cpu={
                name: (cpu_after[name] - cpu_before[name]) / load.seconds
                for name in pids
                if load.seconds
            },
        )
    finally:
        stack.stop_gateways()


def measure_ceiling(
    env: Mapping[str, str], logs: Path, credentials: Credentials, args: argparse.Namespace
) -> LoadResult:
    echo_port = free_port()
    echo = Child("echo-grpc", [sys.executable, "-m", "bench.apps.echo", str(echo_port)], env, logs)
    try:
        wait_for_port(echo, echo_port)
        server = Server(CEILING, {**env, "MQBENCH_ECHO_ADDR": f"127.0.0.1:{echo_port}"}, logs)
        try:
            server.wait_ready()
            if args.warmup:
                run_wrk([server.port], args.connections, args.warmup, credentials, "cw")
            pids = {"http app": server.child.pid, "echo gRPC": echo.pid}
            before = cpu_of(pids)
            load = run_wrk([server.port], args.connections, args.duration, credentials, "cm")
            after = cpu_of(pids)
            load.cpu_seconds = sum(after[name] - before[name] for name in pids)
            server.child.check_alive()
            echo.check_alive()
            return load
        finally:
            server.child.stop()
    finally:
        echo.stop()


@dataclass(slots=True)
class Audit:
    queued: float
    clicks: int
    miners_clicks: int
    ledger_entries: int
    ledger_distinct: int
    backlog: int
    pending: int
    dead_letters: int

    @property
    def duplicates(self) -> int:
        return self.ledger_entries - self.ledger_distinct

    @property
    def ok(self) -> bool:
        return (
            self.duplicates == 0
            and self.clicks == self.ledger_entries == self.miners_clicks == int(self.queued)
            and self.backlog == self.pending == self.dead_letters == 0
        )


def audit(stack: Stack, redis: Any) -> Audit:
    """Every click the service queued is recorded once and credited once."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongodb_uri)
    try:
        mining = client[stack.databases["mining"]]
        wallet = client[stack.databases["wallet"]]
        clicks = mining["clicks"].count_documents({})
        miners = sum(doc.get("clicks", 0) for doc in mining["miners"].find({}, {"clicks": 1}))
        entries = wallet["entries"].count_documents({"source": CLICK_SOURCE})
        distinct = len(
            {doc["source_id"] for doc in wallet["entries"].find({"source": CLICK_SOURCE})}
        )
    finally:
        client.close()
    groups = redis.xinfo_groups(STREAM)
    pending = sum(int(group.get("pending", 0)) for group in groups)
    return Audit(
        queued=stack.queued(),
        clicks=clicks,
        miners_clicks=miners,
        ledger_entries=entries,
        ledger_distinct=distinct,
        backlog=backlog(redis),
        pending=pending,
        dead_letters=int(redis.xlen(DEAD_LETTERS)) if redis.exists(DEAD_LETTERS) else 0,
    )


# --------------------------------------------------------------------------- profiling

PROFILE_TARGETS = ("gateway", "mining", "worker", "wallet", "mongo", "auth")


def profile_run(
    stack: Stack,
    credentials: Credentials,
    redis: Any,
    args: argparse.Namespace,
    *,
    store_pids: Mapping[str, int],
    out_dir: Path,
) -> None:
    """One more loaded run (1 gateway) with py-spy recording the chosen processes."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("\n--profile: py-spy not found (pip install py-spy); skipped")
        return
    ports = stack.start_gateways(1, credentials)
    try:
        pids = {**stack.pids(), **store_pids}
        chosen = {
            "gateway": pids.get("gateway-1"),
            "mining": pids.get("mining"),
            "worker": pids.get("worker-1"),
            "wallet": pids.get("wallet"),
            "mongo": pids.get("mongodb"),
            "auth": pids.get("auth"),
        }
        seconds = args.duration
        recorders: dict[str, tuple[subprocess.Popen[str], Path]] = {}
        try:
            for name in args.profile:
                pid = chosen.get(name)
                if pid is None:
                    print(f"--profile: no {name} process here; skipped")
                    continue
                raw = out_dir / f"profile-{name}.txt"
                command = [spy, "record", "--pid", str(pid), "--duration", str(seconds + 1)]
                command += ["--rate", str(args.profile_rate), "--format", "raw"]
                command += ["--output", str(raw)]
                if args.nonblocking:
                    command.append("--nonblocking")
                if not args.all_threads:
                    command.append("--gil")
                recorders[name] = (
                    subprocess.Popen(
                        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                    ),
                    raw,
                )
            time.sleep(0.5)
            run_id = f"p{uuid.uuid4().hex[:6]}"
            load = run_wrk(ports, args.connections, seconds, credentials, run_id)
            results = {
                name: (recorder.communicate(timeout=seconds + 60)[1], raw, recorder.returncode)
                for name, (recorder, raw) in recorders.items()
            }
        finally:
            for recorder, _ in recorders.values():
                if recorder.poll() is None:
                    recorder.kill()
                    recorder.wait()
        wait_drained(redis, args.drain_limit)
    finally:
        stack.stop_gateways()
    print()
    print(
        f"Profiles (py-spy {args.profile_rate} Hz, "
        f"{'non' if args.nonblocking else ''}blocking, "
        f"{'all threads' if args.all_threads else 'GIL holder only'}) during one run with "
        "1 gateway: "
        f"{load.rps:.0f} req/s, {load.accepted_per_second:.0f} accepted/s while sampled"
    )
    for name, (problem, raw, code) in results.items():
        if code != 0 or not raw.exists():
            print(f"\n  {name}: py-spy failed ({code}): {problem.strip()[-400:]}")
            continue
        self_samples, inclusive, total = read_stacks(raw)
        print(f"\n== {name} ({total} samples; raw stacks {raw}, kept with --keep)")
        print_top(self_samples, inclusive, total, most=args.profile_top)


# --------------------------------------------------------------------------- reporting


def print_report(
    ceiling: LoadResult | None, runs: Sequence[StackRun], final: Audit, args: argparse.Namespace
) -> None:
    print()
    print(
        f"Summary: {args.users} users, {args.connections} connections, {args.duration}s per "
        f"variant, {args.workers} worker process(es)"
    )
    head = (
        f"{'variant':<10}{'req/s':>8}{'202/s':>8}{'429 %':>7}{'503 %':>7}{'other':>7}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'drain/s':>9}{'backlog':>9}"
        f"{'drain s':>9}{'after/s':>9}{'vs ceil':>9}"
    )
    print(head)
    if ceiling is not None:
        print(
            f"{'ceiling':<10}{ceiling.rps:>8.0f}{ceiling.accepted_per_second:>8.0f}"
            f"{100 * ceiling.share('s429'):>7.1f}{100 * ceiling.share('s503'):>7.1f}"
            f"{ceiling.count('s_other') + ceiling.socket_errors:>7}"
            f"{ceiling.percentile_ms(0.50):>8.2f}{ceiling.percentile_ms(0.95):>8.2f}"
            f"{ceiling.percentile_ms(0.99):>8.2f}{'-':>9}{'-':>9}{'-':>9}{'-':>9}{'1.00':>9}"
        )
    for run in runs:
        load = run.load
        ratio = f"{load.accepted_per_second / ceiling.rps:.2f}" if ceiling and ceiling.rps else "-"
        drain = f"{run.drain_seconds:.1f}" + ("" if run.drained else "+")
        after = f"{run.drain_rate_after:.0f}" if run.backlog_at_stop else "-"
        print(
            f"{run.label:<10}{load.rps:>8.0f}{load.accepted_per_second:>8.0f}"
            f"{100 * load.share('s429'):>7.1f}{100 * load.share('s503'):>7.1f}"
            f"{load.count('s_other') + load.socket_errors:>7}"
            f"{load.percentile_ms(0.50):>8.2f}{load.percentile_ms(0.95):>8.2f}"
            f"{load.percentile_ms(0.99):>8.2f}{run.drain_rate_under_load:>9.0f}"
            f"{run.backlog_at_stop:>9}{drain:>9}{after:>9}{ratio:>9}"
        )
    print(
        "  202/s = accepted clicks per second; other = statuses other than 200/202/429/503\n"
        "  plus socket errors; drain/s = entries the workers finished per second during\n"
        "  the load; backlog = XLEN when the load stopped; drain s = until it was empty\n"
        "  ('+': not within --drain-limit); after/s = drain rate once the load stopped;\n"
        "  vs ceil = 202/s over the ceiling's req/s"
    )
    print()
    print("CPU per process during the measured load (cores; 2 on this machine):")
    if ceiling is not None:
        print(
            f"  ceiling: {ceiling.cpu_seconds / ceiling.seconds:.2f} cores, "
            f"{1000 * ceiling.cpu_seconds / max(1, ceiling.requests):.3f} ms CPU per request"
        )
    for run in runs:
        parts = ", ".join(
            f"{name} {value:.2f}" for name, value in sorted(run.cpu.items(), key=lambda i: -i[1])
        )
        total = sum(run.cpu.values())
        per_click = 1000 * total * run.load.seconds / max(1, run.load.requests)
        print(f"  {run.label}: {parts}; total {total:.2f} ({per_click:.3f} ms per request)")
    print()
    print("Exactly once (after every backlog drained; all runs, warm-ups and smoke clicks):")
    print(
        f"  clicks the mining service queued: {final.queued:.0f}; MongoDB click records: "
        f"{final.clicks}; miners' click totals: {final.miners_clicks}\n"
        f"  wallet ledger entries (source {CLICK_SOURCE}): {final.ledger_entries}, distinct "
        f"click ids {final.ledger_distinct}: duplicates {final.duplicates}\n"
        f"  backlog {final.backlog}, pending {final.pending}, dead letters "
        f"{final.dead_letters}: {'OK' if final.ok else 'MISMATCH'}"
    )
    for run in runs:
        print(
            f"  {run.label}: 202 answers seen by wrk {run.load.count('s202')}, queued by the "
            f"service {run.queued:.0f} (requests in flight when wrk stopped are not seen)"
        )
    print()
    print("Goals:")
    for run in runs:
        load = run.load
        verdicts = []
        if ceiling is not None and ceiling.rps:
            share = load.accepted_per_second / ceiling.rps
            verdicts.append(
                f"accepted/ceiling {share:.2f} (>= {GOAL_SHARE_OF_CEILING:.2f}: "
                f"{'MET' if share >= GOAL_SHARE_OF_CEILING else 'MISSED'})"
            )
        p99 = load.percentile_ms(0.99)
        verdicts.append(
            f"p99 {p99:.1f} ms (< {GOAL_P99_MS:.0f}: {'MET' if p99 < GOAL_P99_MS else 'MISSED'})"
        )
        keeps_up = run.drain_rate_under_load >= 0.98 * load.accepted_per_second
        verdicts.append(
            f"drain {run.drain_rate_under_load:.0f}/s vs accepted "
            f"{load.accepted_per_second:.0f}/s ({'MET' if keeps_up else 'MISSED'})"
        )
        print(f"  {run.label}: " + "; ".join(verdicts))
    print(f"  duplicates: {final.duplicates} ({'MET' if final.duplicates == 0 else 'MISSED'})")


# --------------------------------------------------------------------------- main


def parse_env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.clicks",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--users", type=int, default=2000, help="distinct users/tokens")
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per variant")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="mining worker processes")
    parser.add_argument(
        "--gateways", default="1,2", help="gateway process counts to run (default: 1,2)"
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceiling variant")
    parser.add_argument(
        "--drain-limit", type=float, default=90.0, help="seconds to wait for a backlog to drain"
    )
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of every process")
    parser.add_argument(
        "--env",
        type=parse_env,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the stack's processes (repeatable)",
    )
    parser.add_argument(
        "--profile",
        default="",
        help=f"py-spy these during one more run, comma-separated: {', '.join(PROFILE_TARGETS)}",
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument("--profile-top", type=int, default=20, help="rows per profile")
    parser.add_argument(
        "--nonblocking", action="store_true", help="py-spy --nonblocking (no pauses)"
    )
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="py-spy samples every thread (idle ones included); default: only the thread "
        "holding the GIL (--gil), i.e. where the Python CPU goes",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.duration, args.warmup = min(args.users, 300), 4, 1
        args.drain_limit = min(args.drain_limit, 30.0)
    args.profile = [name.strip() for name in args.profile.split(",") if name.strip()]
    unknown = set(args.profile) - set(PROFILE_TARGETS)
    if unknown:
        parser.error(f"--profile: unknown {', '.join(sorted(unknown))}")
    args.gateways = [int(count) for count in args.gateways.split(",") if count.strip()]
    return args


def run(args: argparse.Namespace, work: Path) -> None:
    import redis as sync_redis

    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    started = time.monotonic()
    with contextlib.ExitStack() as exits:
        found = exits.enter_context(stores(work))
        credentials = mint_tokens(work / "jwt-private.pem", args.users, work)
        ceiling = None
        if not args.no_ceiling:
            ceiling = measure_ceiling(base_env(), logs, credentials, args)
            print(
                f"  ceiling: {ceiling.rps:.0f} req/s, p50 {ceiling.percentile_ms(0.5):.2f} ms, "
                f"p99 {ceiling.percentile_ms(0.99):.2f} ms",
                flush=True,
            )
        stack = Stack(found.urls, work, args, logs)
        exits.callback(stack.stop)
        stack.start()
        redis = sync_redis.Redis.from_url(stack.redis_url, decode_responses=True)
        exits.callback(redis.close)
        print(f"Stack started in {time.monotonic() - started:.1f}s (logs: {logs})", flush=True)
        runs: list[StackRun] = []
        for count in args.gateways:
            result = measure_stack(stack, count, credentials, redis, args, store_pids=found.pids)
            runs.append(result)
            print(
                f"  {result.label}: {result.load.rps:.0f} req/s, "
                f"{result.load.accepted_per_second:.0f} accepted/s, "
                f"p99 {result.load.percentile_ms(0.99):.1f} ms, "
                f"backlog {result.backlog_at_stop} drained in {result.drain_seconds:.1f}s",
                flush=True,
            )
        if args.profile:
            profile_run(stack, credentials, redis, args, store_pids=found.pids, out_dir=work)
        final = audit(stack, redis)
        print_report(ceiling, runs, final, args)
        print(f"\nWhole run: {time.monotonic() - started:.0f}s")
        if args.keep:
            print(f"Logs and files: {work}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_work_folder(run, parse_args(argv), "mq-clicks-")


if __name__ == "__main__":
    raise SystemExit(main())
