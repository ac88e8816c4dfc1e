"""What the gateway's protection costs: one POST served three ways, side by side.

One trivial authenticated, idempotent, rate-limited POST, served in one run by
the same load generator against

  (a) a bare Starlette JSON endpoint (no authentication, limits or idempotency),
  (b) the full gateway stack (``gateway.app.create_app``: request id, metrics,
      gzip, body limit, EdDSA JWT authentication, three rate-limit tiers and
      the idempotency claim in one Redis script, the answer stored after),
  (c) FastAPI + slowapi (the same three limits on Redis) + asgi-idempotency-header
      (its Redis backend), on the same Redis server.

Each variant is its own uvicorn process (one worker, uvloop, httptools, no
access log). The real auth service runs as a process (it serves the JWK set
the gateway fetches over gRPC); access tokens for ``--users`` users are minted
with its key. Every request carries a token from that pool and a unique
``Idempotency-Key``, so every protected request pays the full price.

Per variant and round: a warm-up (during which Redis ``MONITOR`` counts the
commands clients send, i.e. round trips, apart from those run inside Lua
scripts), a measured run at ``--connections`` (req/s, p50, p99; ``INFO
commandstats`` before and after), and a run on one connection (the latency a
request pays when the server is not saturated). Rounds are interleaved
(a, b, c, a, b, c, ...) and the medians reported.

    python -m bench.gateway_overhead                  # about 2.5 minutes
    python -m bench.gateway_overhead --rounds 5 --duration 15 --profile b

Needs the ``bench`` extra (``make bench`` installs it) and, preferably, wrk
(``make bench-tools``); without wrk a slower Python load generator is used
and said so. Redis and MongoDB are embedded servers unless REDIS_URL /
MONGODB_URI are set. Only 127.0.0.1 is ever loaded. The processes, load,
Redis counting, profiling and tables come from ``bench/harness``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.apps import COUNT_PATH, GLOBAL_PER_SECOND, IP_PER_SECOND, OP_PATH, USER_PER_SECOND
from bench.harness.load import LoadGenerator, LoadResult, choose_generator
from bench.harness.processes import (
    Child,
    Reply,
    UvicornServer,
    base_env,
    http_call,
    run_in_work_folder,
    wait_for_port,
)
from bench.harness.profiling import Recorder, print_top, py_spy, read_stacks
from bench.harness.redis_stats import CONNECTION_SETUP, MonitorCounter, RedisAdmin, redis_with_db
from bench.harness.report import load_average, machine, median, verdict, versions
from bench.harness.suite import stores
from bench.harness.tokens import Credentials, mint_tokens
from runtime.embedded import free_port

BODY = b'{"amount":1}'
START_TIMEOUT_SECONDS = 60.0
#: Redis databases: one per protected variant, so MONITOR lines can be told apart.
GATEWAY_DB, FASTAPI_DB, AUTH_DB = 1, 2, 15

GOAL_P50_OVERHEAD_MS = 0.5
GOAL_ROUND_TRIPS = 2.0
GOAL_VS_FASTAPI = 8.0


@dataclass(frozen=True, slots=True)
class Variant:
    key: str
    label: str
    factory: str
    redis_db: int | None


VARIANTS = (
    Variant("a", "bare Starlette", "bench.apps.bare:create", None),
    Variant("b", "gateway stack", "bench.apps.gateway_app:create", GATEWAY_DB),
    Variant("c", "FastAPI+slowapi+idem", "bench.apps.fastapi_app:create", FASTAPI_DB),
)


# --------------------------------------------------------------------------- servers


class Server(UvicornServer):
    """One variant under uvicorn; :data:`COUNT_PATH` says how many requests it answered."""

    def __init__(self, variant: Variant, env: Mapping[str, str], logs: Path) -> None:
        name = f"{variant.key}-{variant.factory.split(':')[0]}"
        super().__init__(name, variant.factory, env, logs, COUNT_PATH)
        self.variant = variant

    def served(self) -> int:
        return int(http_call(self.port, "GET", COUNT_PATH).json()["served"])


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Measurement:
    """One variant in one round."""

    loaded: LoadResult
    single: LoadResult
    warmup: LoadResult
    #: Commands sent per request, by name (MONITOR, warm-up); scripts' own excluded.
    round_trips: dict[str, float] = field(default_factory=dict)
    #: Commands run inside Lua scripts per request (MONITOR, warm-up).
    in_scripts: dict[str, float] = field(default_factory=dict)
    #: INFO commandstats calls per request in the measured run (all, scripts' included).
    commandstats: dict[str, float] = field(default_factory=dict)
    setup_commands: int = 0


def per_request(counts: Mapping[str, int], served: int) -> dict[str, float]:
    if served <= 0:
        return {}
    return {name: calls / served for name, calls in counts.items() if calls}


def measure(
    server: Server,
    generator: LoadGenerator,
    admin: RedisAdmin,
    args: argparse.Namespace,
    run_id: str,
) -> Measurement:
    variant = server.variant
    monitor = MonitorCounter(admin) if variant.redis_db is not None else None
    before = server.served()
    warm = generator.run(
        [server.port], args.connections, args.warmup, f"{run_id}w", threads=args.threads
    )
    time.sleep(0.3)  # requests the generator gave up on still finish
    warm_served = server.served() - before
    sent: Counter[str] = Counter()
    scripted: Counter[str] = Counter()
    setup = 0
    if monitor is not None:
        for (db, from_script, command), calls in monitor.stop().items():
            if db != variant.redis_db:
                continue
            if from_script:
                scripted[command] += calls
            elif command in CONNECTION_SETUP:
                setup += calls
            else:
                sent[command] += calls

    stats_before, served_before = admin.commandstats(), server.served()
    loaded = generator.run(
        [server.port], args.connections, args.duration, f"{run_id}m", threads=args.threads
    )
    time.sleep(0.3)
    stats_after, served_after = admin.commandstats(), server.served()
    single = generator.run([server.port], 1, args.latency_duration, f"{run_id}s")
    return Measurement(
        loaded=loaded,
        single=single,
        warmup=warm,
        round_trips=per_request(sent, warm_served),
        in_scripts=per_request(scripted, warm_served),
        commandstats=per_request(stats_after - stats_before, served_after - served_before)
        if variant.redis_db is not None
        else {},
        setup_commands=setup,
    )


# --------------------------------------------------------------------------- semantics


TOKEN_HEADERS = ("x-idempotency", "idempotent-replayed")


def describe(reply: Reply, owner: str, names: Mapping[str, str]) -> str:
    parts = [str(reply.status)]
    if reply.headers.get("x-idempotency") == "HIT" or reply.headers.get(
        "idempotent-replayed", ""
    ).lower() in ("true", "1"):
        parts.append("replayed")
    data = reply.json()
    if isinstance(data, dict):
        problem = data.get("error") or data.get("detail")
        if problem:
            parts.append(str(problem))
        user = data.get("user")
        if isinstance(user, str) and user != owner:
            parts.append(f"with {names.get(user, 'another user')}'s answer")
    return " ".join(parts)


def probe_semantics(server: Server, credentials: Credentials) -> dict[str, str]:
    """A few requests that show what the idempotency layer promises."""
    port = server.port
    token_a, token_b = credentials.tokens[0], credentials.tokens[1]
    user_a, user_b = credentials.user_ids[0], credentials.user_ids[1]
    names = {user_a: "user A", user_b: "user B"}
    key = f"probe-{uuid.uuid4().hex}"

    def post(token: str | None, body: bytes, idem: str | None = key) -> Reply:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if idem:
            headers["Idempotency-Key"] = idem
        return http_call(port, "POST", OP_PATH, headers, body)

    first = post(token_a, b'{"amount":1}')
    return {
        "first request (user A, key K)": describe(first, user_a, names),
        "rate-limit headers on it": "yes"
        if any(name.startswith(("ratelimit", "x-ratelimit")) for name in first.headers)
        else "no",
        "retry: user A, key K, same body": describe(post(token_a, b'{"amount":1}'), user_a, names),
        "user A, key K, another body": describe(post(token_a, b'{"amount":2}'), user_a, names),
        "user B, same key K": describe(post(token_b, b'{"amount":1}'), user_b, names),
        "no token, same key K": describe(post(None, b'{"amount":1}'), "", names),
        "no token, fresh key": describe(
            post(None, b'{"amount":1}', idem=f"probe-{uuid.uuid4().hex}"), "", names
        ),
        "user A, no Idempotency-Key": describe(post(token_a, b'{"amount":1}', None), user_a, names),
    }


FROM_SOURCE = (
    (
        "rate-limit check",
        "GCRA token buckets, all tiers + the idempotency claim in one Lua script "
        "(atomic: a request refused by one tier charges none)",
        "fixed windows (slowapi's default), one EVALSHA per limit, each a separate "
        "round trip; a request refused by the 3rd limit was already counted by the "
        "first two",
    ),
    (
        "Redis client on the hot path",
        "one pipelined connection (hiredis packs and parses); a call fails when Redis "
        "has sent nothing for GUARD_REDIS_TIMEOUT_MS",
        "slowapi calls limits' synchronous redis-py storage from inside the async "
        "endpoint (Limiter.limiter.hit): the event loop is blocked for each round trip",
    ),
    (
        "key scope",
        "caller + method + concrete path + key",
        "the raw header value, global to the whole app (one namespace for all users)",
    ),
    (
        "request fingerprint",
        "method, path, query and canonical JSON body: reuse with another request is a 422",
        "none: another body with the same key gets the first answer",
    ),
    (
        "in-flight duplicate",
        "409 with Retry-After while the lease (IDEMPOTENCY_LEASE_SECONDS) lives",
        "409 via a member of one Redis set with no expiry, never removed after a "
        "success: the set grows by one member per keyed request, and the key answers "
        "409 forever once its stored answer (24 h) is gone, or after a crash or an "
        "unhandled exception mid-request",
    ),
    (
        "which answers are kept",
        "a user's 2xx and 4xx except 401/408/409/429, a stranger's 2xx only; a 5xx "
        "releases the claim so a retry runs",
        "any JSON answer, 5xx included (a transient failure is replayed for 24 h), "
        "only the JSON body and status (no headers); a non-JSON answer releases the key",
    ),
    (
        "atomicity of the store",
        "one script: compare the lease, then SET with retention",
        "SET, SET, EXPIRE, EXPIRE as four separate calls",
    ),
    (
        "Redis down",
        "per policy: fail open, or 503 limits_unavailable (fail closed)",
        "an exception, i.e. 500, unless swallow_errors / in_memory_fallback are set",
    ),
)


# --------------------------------------------------------------------------- reporting


VERSIONS = (
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "redis",
    "hiredis",
    "pyjwt",
    "cryptography",
    "fastapi",
    "slowapi",
    "limits",
    "asgi-idempotency-header",
)


def merged(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    names = sorted({name for row in rows for name in row})
    return {name: median([row.get(name, 0.0) for row in rows]) for name in names}


def breakdown(counts: Mapping[str, float]) -> str:
    if not counts:
        return "-"
    return ", ".join(
        f"{name.upper()} {value:.2f}"
        for name, value in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    )


def summarize(results: Mapping[str, list[Measurement]]) -> dict[str, dict[str, float]]:
    """Medians over the rounds, per variant."""
    rows: dict[str, dict[str, float]] = {}
    for key, runs in results.items():
        rows[key] = {
            "rps": median([m.loaded.rps for m in runs]),
            "p50": median([m.loaded.p50_ms for m in runs]),
            "p99": median([m.loaded.p99_ms for m in runs]),
            "p50_1": median([m.single.p50_ms for m in runs]),
            "p99_1": median([m.single.p99_ms for m in runs]),
            "trips": sum(merged([m.round_trips for m in runs]).values()),
            "cmds": sum(merged([m.commandstats for m in runs]).values()),
            "errors": sum(m.loaded.errors + m.single.errors for m in runs),
            "warmup_errors": sum(m.warmup.errors for m in runs),
        }
    return rows


def print_table(
    results: Mapping[str, list[Measurement]], rows: Mapping[str, Mapping[str, float]], conns: int
) -> None:
    print()
    print(f"Per round (req/s @{conns} connections, p50/p99 ms):")
    for variant in VARIANTS:
        if variant.key in results:
            line = "  ".join(
                f"{m.loaded.rps:7.0f} {m.loaded.p50_ms:5.2f}/{m.loaded.p99_ms:5.2f}"
                for m in results[variant.key]
            )
            print(f"  ({variant.key}) {variant.label:<22} {line}")
    print()
    print(
        f"{'':<28}{'-- ' + str(conns) + ' connections --':>27}"
        f"{'-- 1 connection --':>18}{'Redis':>8}{'Redis':>8}"
    )
    print(
        f"{'variant':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'trips':>8}{'cmds':>8}{'errors':>8}"
    )
    for variant in VARIANTS:
        if variant.key not in rows:
            continue
        row = rows[variant.key]
        protected = variant.redis_db is not None
        trips = f"{row['trips']:.2f}" if protected else "-"
        cmds = f"{row['cmds']:.2f}" if protected else "-"
        print(
            f"({variant.key}) {variant.label:<24}{row['rps']:>9.0f}{row['p50']:>9.2f}"
            f"{row['p99']:>9.2f}{row['p50_1']:>9.3f}{row['p99_1']:>9.3f}"
            f"{trips:>8}{cmds:>8}{int(row['errors']):>8}"
        )
    print(
        "  Redis trips = commands sent per request (MONITOR during warm-up; commands run\n"
        "                inside Lua scripts and connection setup not counted)\n"
        "  Redis cmds  = INFO commandstats calls per request in the measured run\n"
        "                (what Lua scripts run included)"
    )
    for variant in VARIANTS:
        runs = results.get(variant.key)
        if not runs or variant.redis_db is None:
            continue
        print(f"  ({variant.key}) sent:       {breakdown(merged([m.round_trips for m in runs]))}")
        print(f"      in scripts: {breakdown(merged([m.in_scripts for m in runs]))}")
        print(f"      all:        {breakdown(merged([m.commandstats for m in runs]))}")


def print_goals(rows: Mapping[str, Mapping[str, float]], conns: int) -> None:
    print()
    print("Ratios and goals:")
    if {"a", "b"} <= rows.keys():
        a, b = rows["a"], rows["b"]
        overhead = b["p50_1"] - a["p50_1"]
        met = verdict(overhead <= GOAL_P50_OVERHEAD_MS)
        print(f"  (b)/(a) throughput:                 {b['rps'] / a['rps']:.2f}x")
        print(
            f"  (b)-(a) p50, 1 connection:          {overhead:+.3f} ms  "
            f"goal <= {GOAL_P50_OVERHEAD_MS:g} ms: {met}"
        )
        print(
            f"  (b)-(a) p50, {conns} connections:        {b['p50'] - a['p50']:+.3f} ms  "
            "(closed loop at saturation: p50 ~ connections / throughput,\n"
            f"{'':<50}so this restates the throughput gap)"
        )
    if "b" in rows:
        trips = rows["b"]["trips"]
        met = verdict(trips <= GOAL_ROUND_TRIPS + 0.005)
        print(
            f"  Redis round trips per request (b):  {trips:.2f}       "
            f"goal <= {GOAL_ROUND_TRIPS:.0f}: {met}"
        )
    if {"b", "c"} <= rows.keys():
        ratio = rows["b"]["rps"] / rows["c"]["rps"]
        print(
            f"  (b)/(c) throughput:                 {ratio:.2f}x       "
            f"goal >= {GOAL_VS_FASTAPI}x: {verdict(ratio >= GOAL_VS_FASTAPI)}"
        )
        print(f"  Redis round trips per request (c):  {rows['c']['trips']:.2f}")
    bad = [key for key, row in rows.items() if row["errors"]]
    if bad:
        print(
            f"  WARNING: error answers (>= 400) or socket errors in ({'), ('.join(bad)}); "
            "--keep keeps the servers' logs"
        )
    if rows["b"]["errors"] or rows["b"]["warmup_errors"]:
        print(
            f"  NOTE: (b) answered {int(rows['b']['errors'])} errors in measured runs and "
            f"{int(rows['b']['warmup_errors'])} in warm-ups. When the gateway log says\n"
            "        'Redis did not answer within N ms, failing closed', these are 503s: Redis "
            "sent nothing for\n"
            "        GUARD_REDIS_TIMEOUT_MS while answers were due (here: Redis, wrk and the "
            "gateway share 2 cores),\n"
            "        and the bench's policy fails closed; --guard-timeout-ms raises the bar"
        )


def print_semantics(semantics: Mapping[str, Mapping[str, str]]) -> None:
    print()
    print("Idempotency semantics, probed live (status, replayed?, error):")
    width = max(len(name) for name in semantics["b"])
    print(f"  {'request':<{width}}  {'(b) gateway':<34}(c) FastAPI+slowapi+idem")
    for name, outcome in semantics["b"].items():
        print(f"  {name:<{width}}  {outcome:<34}{semantics['c'].get(name, '?')}")
    print()
    print(
        "From the sources (gateway/*, slowapi 0.1.10, limits 5.8.0, asgi-idempotency-header 0.2.0):"
    )
    for topic, ours, theirs in FROM_SOURCE:
        print(f"  {topic}:")
        print(textwrap.fill(ours, 96, initial_indent="    (b) ", subsequent_indent=" " * 8))
        print(textwrap.fill(theirs, 96, initial_indent="    (c) ", subsequent_indent=" " * 8))


def report(
    results: Mapping[str, list[Measurement]],
    semantics: Mapping[str, Mapping[str, str]],
    args: argparse.Namespace,
) -> None:
    rows = summarize(results)
    print_table(results, rows, args.connections)
    if "b" in rows:
        print_goals(rows, args.connections)
    if {"b", "c"} <= semantics.keys():
        print_semantics(semantics)


# --------------------------------------------------------------------------- profiling


def profile(
    server: Server,
    generator: LoadGenerator,
    args: argparse.Namespace,
    out_dir: Path,
) -> None:
    """py-spy record on the server during one loaded run; top functions by self
    and inclusive samples, from the collapsed stacks."""
    spy = py_spy()
    if spy is None:
        print(f"\n--profile: py-spy not found (the bench extra); skipping {server.variant.key}")
        return
    recorder = Recorder(
        spy, {server.variant.key: server.child.pid}, args.duration, out_dir, gil_only=False
    )
    time.sleep(0.5)
    loaded = generator.run(
        [server.port],
        args.connections,
        args.duration,
        f"prof{uuid.uuid4().hex[:6]}",
        threads=args.threads,
    )
    raw, problem = recorder.finish()[server.variant.key]
    if raw is None:
        print(f"\n--profile: {problem}")
        return
    self_samples, inclusive, total = read_stacks(raw)
    print()
    print(
        f"Profile of ({server.variant.key}) {server.variant.label} under load "
        f"({loaded.rps:.0f} req/s while sampled; py-spy {total} samples;\n"
        f"  raw stacks: {raw}, kept with --keep)"
    )
    print_top(self_samples, inclusive, total)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway_overhead",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument(
        "--latency-duration", type=int, default=3, help="seconds of the 1-connection run"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--users", type=int, default=1000, help="distinct users/tokens")
    parser.add_argument("--variants", default="abc", help="which of a, b, c to run (default: abc)")
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument(
        "--fastapi-token-cache",
        dest="fastapi_cache",
        choices=("on", "off"),
        default="on",
        help="(c) keeps verified tokens in an LRU as the gateway does (on, the default), "
        "or verifies the signature on every request (off, the FastAPI tutorial's way)",
    )
    parser.add_argument(
        "--guard-timeout-ms", type=int, default=50, help="(b) GUARD_REDIS_TIMEOUT_MS"
    )
    parser.add_argument(
        "--gateway-log-level", default="INFO", help="(b) LOG_LEVEL (production: INFO)"
    )
    parser.add_argument(
        "--profile",
        default="",
        help="after the rounds, py-spy one more loaded run of these variants (e.g. b or bc)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return parser.parse_args(argv)


def policy_file(path: Path) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            [[policy]]
            name = "protected"
            routes = ["POST {OP_PATH}"]
            fail = "closed"
            tiers = [
              {{ name = "global", key = "global", rate = {GLOBAL_PER_SECOND}, period = "1s" }},
              {{ name = "user", key = "user", rate = {USER_PER_SECOND}, period = "1s" }},
              {{ name = "ip", key = "ip", rate = {IP_PER_SECOND}, period = "1s" }},
            ]
            """
        )
    )
    return path


def smoke_and_probe(
    servers: Mapping[str, Server], credentials: Credentials
) -> dict[str, dict[str, str]]:
    """One good request each (a 200, which also makes the gateway fetch the JWK
    set), then the semantics probes on the protected variants."""
    semantics: dict[str, dict[str, str]] = {}
    for key, server in servers.items():
        smoke = http_call(
            server.port,
            "POST",
            OP_PATH,
            {
                "Authorization": f"Bearer {credentials.tokens[-1]}",
                "Idempotency-Key": f"smoke-{uuid.uuid4().hex}",
                "Content-Type": "application/json",
            },
            BODY,
        )
        if smoke.status != 200:
            raise RuntimeError(
                f"({key}) answered {smoke.status} {smoke.body[:300]!r}:\n{server.child.tail()}"
            )
        if key in ("b", "c"):
            semantics[key] = probe_semantics(server, credentials)
    return semantics


def run_rounds(
    servers: Mapping[str, Server],
    generator: LoadGenerator,
    admin: RedisAdmin,
    args: argparse.Namespace,
) -> dict[str, list[Measurement]]:
    """Interleaved rounds: a, b, c, a, b, c, ..."""
    results: dict[str, list[Measurement]] = {key: [] for key in servers}
    started = time.monotonic()
    for round_number in range(1, args.rounds + 1):
        for key, server in servers.items():
            run_id = f"r{round_number}{key}{uuid.uuid4().hex[:6]}"
            result = measure(server, generator, admin, args, run_id)
            server.child.check_alive()
            results[key].append(result)
            errors = result.loaded.errors + result.single.errors
            print(
                f"  round {round_number} ({key}): {result.loaded.rps:7.0f} req/s, "
                f"p50 {result.loaded.p50_ms:.2f} ms, p99 {result.loaded.p99_ms:.2f} ms; "
                f"1 connection p50 {result.single.p50_ms:.3f} ms"
                + (f"; {errors} errors" if errors else "")
                + (f"; {result.warmup.errors} errors in warm-up" if result.warmup.errors else ""),
                flush=True,
            )
    print(f"Measured in {time.monotonic() - started:.0f}s; load average now {load_average()}")
    return results


def run(args: argparse.Namespace, work: Path) -> None:
    chosen = [variant for variant in VARIANTS if variant.key in args.variants]
    if not chosen:
        raise SystemExit("--variants: choose from a, b, c")
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    print(f"Versions: {versions(VERSIONS)}")

    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        urls = stack.enter_context(stores(work / "stores")).urls
        admin = RedisAdmin(urls["REDIS_URL"])
        credentials = mint_tokens(work / "jwt-private.pem", args.users, work)
        generator = choose_generator(args.generator, credentials, OP_PATH, BODY.decode())
        print(
            f"Redis {admin.version()} ({redis_with_db(urls['REDIS_URL'], 0)}), "
            f"load generator: {generator.name}"
        )
        print(
            f"Load: {args.connections} connections, {args.threads} thread(s), "
            f"{args.warmup}s warm-up + {args.duration}s measured + {args.latency_duration}s on "
            f"1 connection, {args.rounds} interleaved round(s); {args.users} users; "
            f"(c) token cache {args.fastapi_cache}"
        )

        auth_port = free_port()
        auth_env = {
            **base_env(),
            "MONGODB_URI": urls["MONGODB_URI"],
            "REDIS_URL": redis_with_db(urls["REDIS_URL"], AUTH_DB),
            "AUTH_GRPC_PORT": str(auth_port),
            "AUTH_METRICS_PORT": "0",
            "AUTH_MONGODB_DATABASE": f"bench_auth_{uuid.uuid4().hex[:8]}",
            "AUTH_JWT_PRIVATE_KEY_FILE": str(work / "jwt-private.pem"),
            "AUTH_JWT_GENERATE_KEY": "true",
            "ENABLE_DEV_OTP_FALLBACK": "true",
            "LOG_LEVEL": "WARNING",
        }
        needs_auth = any(variant.key == "b" for variant in chosen)
        children: list[Child] = []

        def stop_children() -> None:
            for child in reversed(children):
                child.stop()

        stack.callback(stop_children)
        if needs_auth:
            auth = Child("auth", [sys.executable, "-m", "services.auth"], auth_env, logs)
            children.append(auth)
            wait_for_port(auth, auth_port)

        envs = {
            "a": base_env(),
            "b": {
                **base_env(),
                "REDIS_URL": redis_with_db(urls["REDIS_URL"], GATEWAY_DB),
                "AUTH_SERVICE_ADDR": f"127.0.0.1:{auth_port}",
                "RATE_LIMIT_POLICY_FILE": str(policy_file(work / "policies.toml")),
                "GUARD_REDIS_TIMEOUT_MS": str(args.guard_timeout_ms),
                "LOG_LEVEL": args.gateway_log_level,
            },
            "c": {
                **base_env(),
                "MQBENCH_REDIS_URL": redis_with_db(urls["REDIS_URL"], FASTAPI_DB),
                "MQBENCH_JWT_PUBLIC_KEY": str(credentials.public_key_file),
                "MQBENCH_TOKEN_CACHE": "1" if args.fastapi_cache == "on" else "0",
            },
        }
        servers: dict[str, Server] = {}
        for variant in chosen:
            servers[variant.key] = Server(variant, envs[variant.key], logs)
            children.append(servers[variant.key].child)
        for server in servers.values():
            server.wait_ready()

        semantics = smoke_and_probe(servers, credentials)
        print(f"Started everything in {time.monotonic() - started:.1f}s")

        results = run_rounds(servers, generator, admin, args)
        report(results, semantics, args)
        for key in args.profile:
            if key in servers:
                profile(servers[key], generator, args, work)
        if args.keep:
            print(f"\nLogs and files: {work}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_work_folder(run, parse_args(argv), "mq-bench-")


if __name__ == "__main__":
    raise SystemExit(main())
