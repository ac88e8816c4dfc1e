"""Run the whole suite on this machine: ``make dev`` (``python -m tools.dev``).

1. Reads environment variables only (no ``.env`` file). A malformed value, or
   a port that is already taken, stops it with one line naming the variable
   before anything starts.
2. Creates (or reuses) the internal PKI under ``MINEQUEST_DATA_DIR/pki``
   (``tools/pki.py``) and gives every process its own certificate
   (``GRPC_TLS_*``), so internal gRPC is mutual TLS with per-method
   authorisation, as in production. Then starts the embedded Redis and
   MongoDB-wire servers for whichever of ``REDIS_URL`` / ``MONGODB_URI`` is
   unset, with their data (and the dev JWT key) under ``MINEQUEST_DATA_DIR``
   (default ``.data``).
3. Starts each process of the table in order, each once the one before it is
   ready (its port accepts connections; the gateway's ``GET /api/health``
   answers 200), and writes every line a process prints with its name in
   front. Then it prints the gateway URL and curl lines to try.
4. Ctrl-C or SIGTERM: stops the processes in reverse order (SIGTERM, then
   SIGKILL after a bounded wait), then the stores, and exits 0. When a process
   dies on its own it says which and how, stops the rest and exits 1.

The table is data. A new service is one more :class:`GrpcService` row in
:data:`SERVICES` (``MINING``/``WALLET``/``QUESTS`` on 50052-50054, metrics
9102-9104); its ``<NAME>_SERVICE_ADDR`` is handed to the gateway. The
supervisor itself, :func:`supervise`, runs any list of :class:`ProcessSpec`.
``MINING_WORKER_PROCESSES`` click workers run (metrics on
``MINING_WORKER_METRICS_PORT`` and the ports after it).

This plan is the one place the suite's environment is written: the e2e
stacks (``tests/e2e/conftest.py``) and the benchmarks (``bench/harness/suite.py``)
run the same :func:`dev_plan`, made from an environment of their own:
:func:`isolated_env` (free ports, databases of their own) laid under their
store URLs and extra settings; each process runs with that environment and
its :attr:`ProcessSpec.env` over it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from runtime.config import (
    SERVICE_PORTS,
    ConfigError,
    Env,
    ServicePorts,
    gc_threshold,
    is_production,
    load_or_exit,
)
from runtime.embedded import embedded_stores, free_port
from tools import pki
from tools.supervisor import Output, PortClaim, ProcessSpec, Ready, supervise

#: An EIP-55 address from the EIP's own examples, for the printed curl lines.
EXAMPLE_WALLET = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
EXAMPLE_EMAIL = "dev@example.com"
#: Seconds each process gets to become ready.
READY_TIMEOUT = 60.0


DevEnv = Callable[[Env, Path], tuple[dict[str, str], list[str]]]


def _no_dev_env(env: Env, data_dir: Path) -> tuple[dict[str, str], list[str]]:
    return {}, []


def _auth_dev_env(env: Env, data_dir: Path) -> tuple[dict[str, str], list[str]]:
    smtp_host = env.optional("SMTP_HOST")
    production = is_production(env)
    fallback = env.boolean("ENABLE_DEV_OTP_FALLBACK", smtp_host is None and not production)
    # The auth service refuses these too; say it before anything starts.
    if fallback and smtp_host is not None:
        raise ConfigError(
            "ENABLE_DEV_OTP_FALLBACK",
            "must not be true when SMTP_HOST is set (codes would be returned to anyone)",
        )
    if fallback and production:
        raise ConfigError(
            "ENABLE_DEV_OTP_FALLBACK", "must not be true with MINEQUEST_ENV=production"
        )
    key_file = env.string("AUTH_JWT_PRIVATE_KEY_FILE", str(data_dir / "jwt-ed25519.pem"))
    values = {
        "AUTH_JWT_PRIVATE_KEY_FILE": key_file,
        "AUTH_JWT_GENERATE_KEY": _flag(env.boolean("AUTH_JWT_GENERATE_KEY", True)),
        "ENABLE_DEV_OTP_FALLBACK": _flag(fallback),
    }
    notes = []
    if fallback:
        asked = env.optional("ENABLE_DEV_OTP_FALLBACK") is not None
        why = "ENABLE_DEV_OTP_FALLBACK=true" if asked else "SMTP_HOST is unset"
        notes.append(
            f"WARNING: dev OTP fallback is ON ({why}): one-time codes are returned "
            "in the API answer and logged. Never run like this in production."
        )
    return values, notes


@dataclass(frozen=True, slots=True)
class GrpcService:
    """A gRPC service run as ``python -m services.<name>``, configured by
    ``<NAME>_*``; its default ports come from ``runtime.config.SERVICE_PORTS``."""

    name: str
    dev_env: DevEnv = _no_dev_env
    #: The services it calls: it gets their ``<NAME>_SERVICE_ADDR``, as the gateway does.
    peers: tuple[str, ...] = ()

    @property
    def ports(self) -> ServicePorts:
        return SERVICE_PORTS[self.name]

    @property
    def prefix(self) -> str:
        return self.name.upper()

    def bind(self, env: Env) -> tuple[str, int]:
        """The host and gRPC port it listens on."""
        prefix = self.prefix
        host = env.string(f"{prefix}_GRPC_HOST", "127.0.0.1")
        port = env.integer(f"{prefix}_GRPC_PORT", self.ports.grpc, minimum=1, maximum=65535)
        return host, port

    def address(self, env: Env) -> str:
        """Where the others dial it (``<NAME>_SERVICE_ADDR``, else its bind)."""
        host, port = self.bind(env)
        return env.string(f"{self.prefix}_SERVICE_ADDR", f"{_dial_host(host)}:{port}")


#: Started in this order, stopped in reverse; the gateway comes last.
SERVICES: tuple[GrpcService, ...] = (
    GrpcService("auth", dev_env=_auth_dev_env),
    GrpcService("wallet", peers=("auth",)),  # whose wallet a withdrawal goes to
    # boost purchases debit the wallet; leaderboard usernames come from auth
    GrpcService("mining", peers=("wallet", "auth")),
    GrpcService("quests", peers=("auth", "wallet")),
)


#: The certificate of the click workers (each worker process runs as it).
WORKER_IDENTITY = "mining-worker"


@dataclass(frozen=True, slots=True)
class DevPlan:
    data_dir: Path
    #: The internal CA and one certificate per process (``tools/pki.py``).
    pki_dir: Path
    processes: tuple[ProcessSpec, ...]
    notes: tuple[str, ...]
    gateway_url: str
    #: How long a process may take to stop after SIGTERM before it is killed.
    stop_timeout: float
    #: Which certificate each process runs with (``mining-worker-2`` is a ``mining-worker``).
    identities: dict[str, str]
    #: Where each gRPC service is dialled (``<NAME>_SERVICE_ADDR``).
    addresses: dict[str, str]

    def spec(self, name: str) -> ProcessSpec:
        """The process called ``name`` (KeyError when the plan has none)."""
        for spec in self.processes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def workers(self) -> tuple[ProcessSpec, ...]:
        return tuple(
            spec for spec in self.processes if self.identities[spec.name] == WORKER_IDENTITY
        )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def one_box_gateway_workers(cores: int | None = None) -> int:
    """Gateway processes when the whole suite shares one machine: a core fewer
    than it has (at least one), since SecantusDB, Redis, the services and the
    worker need one between them. On 2 cores one gateway process accepted 13 %
    more clicks than two, at a quarter less gateway CPU each (its batches of
    clicks are twice as large): README, Benchmarks. On its own machine (a
    container, a pod) the gateway's default stays the core count."""
    return max(1, (cores if cores is not None else os.cpu_count() or 1) - 1)


def _dial_host(bind_host: str) -> str:
    """Where to connect to reach a server bound on ``bind_host``."""
    return "127.0.0.1" if bind_host in {"0.0.0.0", "::", ""} else bind_host  # noqa: S104


def dev_plan(env: Env) -> DevPlan:
    """The processes ``make dev`` runs, from the environment (raises ConfigError)."""
    data_dir = Path(env.string("MINEQUEST_DATA_DIR", ".data")).resolve()
    gc_threshold(env)  # read by the embedded SecantusDB too: a bad value stops here
    pki_dir = data_dir / "pki"
    python = sys.executable
    processes: list[ProcessSpec] = []
    notes: list[str] = []
    addresses = {f"{service.prefix}_SERVICE_ADDR": service.address(env) for service in SERVICES}
    for service in SERVICES:
        prefix = service.prefix
        host, port = service.bind(env)
        metrics = env.integer(
            f"{prefix}_METRICS_PORT", service.ports.metrics, minimum=0, maximum=65535
        )
        extra, service_notes = service.dev_env(env, data_dir)
        claims = [PortClaim(f"{prefix}_GRPC_PORT", host, port)]
        if metrics:
            claims.append(PortClaim(f"{prefix}_METRICS_PORT", host, metrics))
        processes.append(
            ProcessSpec(
                name=service.name,
                argv=(python, "-m", f"services.{service.name}"),
                env={
                    f"{prefix}_GRPC_HOST": host,
                    f"{prefix}_GRPC_PORT": str(port),
                    f"{prefix}_METRICS_PORT": str(metrics),
                    **{
                        name: addresses[name]
                        for name in (f"{peer.upper()}_SERVICE_ADDR" for peer in service.peers)
                    },
                    **extra,
                    **pki.identity_files(pki_dir, service.name).env(),
                },
                ports=tuple(claims),
                ready=Ready(_dial_host(host), port),
            )
        )
        notes.extend(service_notes)
    processes.extend(_mining_workers(env, python, addresses, pki_dir))
    host = env.string("GATEWAY_HOST", "127.0.0.1")
    port = env.integer("GATEWAY_PORT", 8080, minimum=1, maximum=65535)
    metrics_host = env.string("GATEWAY_METRICS_HOST", "127.0.0.1")
    metrics = env.integer("GATEWAY_METRICS_PORT", 9100, minimum=0, maximum=65535)
    gateway_ports = [PortClaim("GATEWAY_PORT", host, port)]
    if metrics:
        gateway_ports.append(PortClaim("GATEWAY_METRICS_PORT", metrics_host, metrics))
    ready = Ready(_dial_host(host), port, "/api/health")
    processes.append(
        ProcessSpec(
            name="gateway",
            argv=(python, "-m", "gateway"),
            env={
                "GATEWAY_HOST": host,
                "GATEWAY_PORT": str(port),
                "GATEWAY_WORKERS": env.string("GATEWAY_WORKERS", str(one_box_gateway_workers())),
                **addresses,
                **pki.identity_files(pki_dir, "gateway").env(),
            },
            ports=tuple(gateway_ports),
            ready=ready,
        )
    )
    grace = env.number("SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0)
    return DevPlan(
        data_dir=data_dir,
        pki_dir=pki_dir,
        processes=tuple(processes),
        notes=tuple(notes),
        gateway_url=f"http://{ready.host}:{ready.port}",
        stop_timeout=grace + 5.0,
        identities={
            spec.name: WORKER_IDENTITY if spec.name.startswith(WORKER_IDENTITY) else spec.name
            for spec in processes
        },
        addresses={
            service.name: addresses[f"{service.prefix}_SERVICE_ADDR"] for service in SERVICES
        },
    )


def _mining_workers(
    env: Env, python: str, addresses: dict[str, str], pki_dir: Path
) -> list[ProcessSpec]:
    """The click workers: they drain the stream and credit through the wallet.
    They have no gRPC port, so they count as started at once. One is
    ``mining-worker``; several are ``mining-worker-1`` ... with metrics on
    consecutive ports."""
    host = env.string("MINING_GRPC_HOST", "127.0.0.1")
    count = env.integer("MINING_WORKER_PROCESSES", 1, minimum=1, maximum=64)
    base = env.integer("MINING_WORKER_METRICS_PORT", 9105, minimum=0, maximum=65535 - count + 1)
    workers = []
    for index in range(count):
        metrics = base + index if base else 0
        workers.append(
            ProcessSpec(
                name=WORKER_IDENTITY if count == 1 else f"{WORKER_IDENTITY}-{index + 1}",
                argv=(python, "-m", "services.mining", "worker"),
                env={
                    **addresses,
                    "MINING_WORKER_METRICS_PORT": str(metrics),
                    **pki.identity_files(pki_dir, WORKER_IDENTITY).env(),
                },
                ports=(PortClaim("MINING_WORKER_METRICS_PORT", host, metrics),) if metrics else (),
            )
        )
    return workers


def isolated_env(tag: str, *, metrics: Collection[str] = ("gateway",)) -> dict[str, str]:
    """Ports and databases of its own, for a suite that runs beside others (the
    e2e stacks, the benchmarks): every gRPC port and the gateway's on a free
    port, the Prometheus ports of the processes named in ``metrics``
    (``gateway``, a service, ``mining-worker``) on free ports and the others
    off, and ``<NAME>_MONGODB_DATABASE`` = ``<tag>_<name>_<random>``. Lay the
    store URLs and any other settings over it, then :func:`dev_plan`."""
    suffix = uuid.uuid4().hex[:10]
    env: dict[str, str] = {}
    for service in SERVICES:
        prefix = service.prefix
        env[f"{prefix}_GRPC_HOST"] = "127.0.0.1"
        env[f"{prefix}_GRPC_PORT"] = str(free_port())
        env[f"{prefix}_METRICS_PORT"] = str(free_port()) if service.name in metrics else "0"
        env[f"{prefix}_MONGODB_DATABASE"] = f"{tag}_{service.name}_{suffix}"
    env["MINING_WORKER_METRICS_PORT"] = str(free_port()) if WORKER_IDENTITY in metrics else "0"
    env["GATEWAY_HOST"] = "127.0.0.1"
    env["GATEWAY_PORT"] = str(free_port())
    env["GATEWAY_METRICS_PORT"] = str(free_port()) if "gateway" in metrics else "0"
    return env


def banner(gateway_url: str) -> list[str]:
    """What to print once everything answers: the URL and curl lines that work."""
    post = f"curl -s -H 'Content-Type: application/json' {gateway_url}/api/auth"
    register = f'{{"walletAddress":"{EXAMPLE_WALLET}","email":"{EXAMPLE_EMAIL}"}}'
    verify = '{"challengeId":"<challengeId>","code":"<devCode>"}'
    return [
        f"ready: gateway at {gateway_url} (Ctrl-C stops everything)",
        f"  curl -s {gateway_url}/api/health",
        f"  {post}/register -d '{register}'",
        f"""  {post}/otp/request -d '{{"email":"{EXAMPLE_EMAIL}"}}'""",
        f"  {post}/otp/verify -d '{verify}'",
    ]


class PortUnavailableError(Exception):
    """A port the plan needs is taken (or claimed twice)."""


def check_ports(processes: Sequence[ProcessSpec]) -> None:
    """Raise :class:`PortUnavailableError` naming the first port that cannot be bound.

    A port claimed twice is a mistake in the configuration alone, so it is
    reported before any port is probed on this machine.
    """
    claims = [claim for spec in processes for claim in spec.ports]
    seen: dict[int, str] = {}
    for claim in claims:
        if claim.port in seen:
            raise PortUnavailableError(
                f"{claim.variable} and {seen[claim.port]} both ask for port {claim.port}; "
                f"give one of them another port"
            )
        seen[claim.port] = claim.variable
    for claim in claims:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((claim.host, claim.port))
            except OSError as error:
                reason = (
                    "is already in use"
                    if error.errno == errno.EADDRINUSE
                    else f"cannot be bound ({error.strerror})"
                )
                raise PortUnavailableError(
                    f"port {claim.port} ({claim.variable}) on {claim.host} {reason}; "
                    f"stop what holds it or set {claim.variable} to a free port"
                ) from None


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    plan = load_or_exit(lambda: dev_plan(Env()))
    try:
        check_ports(plan.processes)
    except PortUnavailableError as error:
        print(f"dev: {error}", file=sys.stderr)
        return 2
    output = Output(sys.stdout, [spec.name for spec in plan.processes])
    for note in plan.notes:
        output.say(note)
    try:
        issued = pki.ensure(plan.pki_dir, sorted(set(plan.identities.values())))
    except OSError as error:
        print(f"dev: cannot write the certificates in {plan.pki_dir}: {error}", file=sys.stderr)
        return 2
    output.say(
        f"internal gRPC: mutual TLS, one certificate per process in {plan.pki_dir} "
        f"({'issued ' + ', '.join(issued) if issued else 'reused'})"
    )
    # Until the event loop takes over, SIGTERM behaves like Ctrl-C, so the
    # stores that are already up are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with embedded_stores(plan.data_dir, os.environ) as urls:
            embedded = [variable for variable in urls if not os.environ.get(variable)]
            for variable, url in urls.items():
                origin = f"embedded, data in {plan.data_dir}" if variable in embedded else "yours"
                output.say(f"{variable}={redact(url)} ({origin})")
            child_env = {**os.environ, **urls, "PYTHONUNBUFFERED": "1"}
            try:
                return asyncio.run(
                    supervise(
                        plan.processes,
                        env=child_env,
                        ready_timeout=READY_TIMEOUT,
                        stop_timeout=plan.stop_timeout,
                        ready_lines=banner(plan.gateway_url),
                    )
                )
            finally:
                # Stopping the stores is bounded; don't let a second Ctrl-C orphan them.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                if embedded:
                    output.say("stopping the embedded stores")
    except KeyboardInterrupt:
        return 0
    except RuntimeError as error:  # an embedded store did not start
        print(f"dev: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
