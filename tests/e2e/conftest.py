"""End-to-end fixtures: every service, the click worker and the gateway as
child processes.

Each :class:`Stack` runs ``python -m services.auth``, ``services.wallet``,
``services.mining`` (and its worker), ``services.quests`` and ``python -m
gateway`` on free ports against the session's Redis and MongoDB-wire servers
(see ``tests/conftest.py``), with its own databases, a freshly generated JWT
key and its own internal PKI (``tools/pki.py``): every child gets its own
certificate, so the suite runs with mutual TLS and the access tables as
shipped. OTP mail goes to a real SMTP server (aiosmtpd) that the tests read.
A stack is ready when ``GET /api/health`` answers 200; it is stopped with
SIGTERM and must exit cleanly. Tests that call a service directly dial it
with :meth:`Stack.channel` as one of the identities.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import pytest

from runtime.config import Env
from runtime.embedded import free_port
from runtime.tls import channel_credentials, load_tls, target_options
from services.auth.keys import load_signing_key
from tests.mail import Mailbox, smtp_server
from tools import pki

ROOT = Path(__file__).resolve().parents[2]
#: The deposit provider's webhook secret in every stack (tests sign with it).
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as handler:
        yield handler


class Child:
    """One service process, its stderr captured to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def output(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM and wait; the exit status (killed after a timeout)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.output()}") from None
        return self.process.returncode


def identity_of(args: list[str]) -> str:
    """The certificate a child runs with: ``services.mining worker`` is the
    ``mining-worker``, ``services.<name>`` is ``<name>``, ``gateway`` the gateway."""
    if args[:2] == ["services.mining", "worker"]:
        return "mining-worker"
    return args[0].removeprefix("services.")


class Stack:
    """Every service, the click worker and the gateway in front of them.

    ``tls=False`` runs internal gRPC in plaintext (to measure what mTLS costs).
    """

    def __init__(
        self,
        *,
        mongodb_uri: str,
        redis_url: str,
        smtp_port: int,
        work_dir: Path,
        overrides: dict[str, str] | None = None,
        tls: bool = True,
    ) -> None:
        self.work_dir = work_dir
        self.key_file = work_dir / "jwt-private.pem"
        self.pki_dir = work_dir / "pki" if tls else None
        if self.pki_dir is not None:
            pki.ensure(self.pki_dir)
        grpc_port, http_port, self.wallet_port = free_port(), free_port(), free_port()
        self.mining_port = free_port()
        self.quests_port = free_port()
        self.base_url = f"http://127.0.0.1:{http_port}"
        #: The gateway's Prometheus endpoint: an internal port, not the public one.
        self.metrics_port = free_port()
        inherited = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
        env = {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "MONGODB_URI": mongodb_uri,
            "REDIS_URL": redis_url,
            "AUTH_GRPC_PORT": str(grpc_port),
            "AUTH_METRICS_PORT": "0",
            "AUTH_MONGODB_DATABASE": f"e2e_auth_{uuid.uuid4().hex[:10]}",
            "AUTH_JWT_PRIVATE_KEY_FILE": str(self.key_file),
            "AUTH_JWT_GENERATE_KEY": "true",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "SMTP_FROM": "no-reply@minequest.test",
            # The test SMTP server offers no STARTTLS.
            "SMTP_SECURITY": "none",
            "ENABLE_DEV_OTP_FALLBACK": "false",
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(http_port),
            "AUTH_SERVICE_ADDR": f"127.0.0.1:{grpc_port}",
            "WALLET_GRPC_PORT": str(self.wallet_port),
            "WALLET_METRICS_PORT": "0",
            "WALLET_MONGODB_DATABASE": f"e2e_wallet_{uuid.uuid4().hex[:10]}",
            "WALLET_DEPOSIT_WALLETS": "USDT:ethereum:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "WALLET_WITHDRAWAL_LIMITS": "MQC:1:1000:5000,USDT:5:1000:2000",
            "WALLET_SERVICE_ADDR": f"127.0.0.1:{self.wallet_port}",
            "DEPOSIT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MINING_GRPC_PORT": str(self.mining_port),
            "MINING_METRICS_PORT": "0",
            "MINING_WORKER_METRICS_PORT": "0",
            "GATEWAY_METRICS_PORT": str(self.metrics_port),
            "MINING_MONGODB_DATABASE": f"e2e_mining_{uuid.uuid4().hex[:10]}",
            "MINING_SERVICE_ADDR": f"127.0.0.1:{self.mining_port}",
            "MINING_WORKER_BLOCK_MS": "100",
            "QUESTS_GRPC_PORT": str(self.quests_port),
            "QUESTS_METRICS_PORT": "0",
            "QUESTS_MONGODB_DATABASE": f"e2e_quests_{uuid.uuid4().hex[:10]}",
            "QUESTS_SERVICE_ADDR": f"127.0.0.1:{self.quests_port}",
            "MAX_BODY_BYTES": "65536",
            "LOG_LEVEL": "INFO",
            **(overrides or {}),
        }
        #: What every child shares (and commands such as ``reconcile`` run with);
        #: each child adds its own certificate (:meth:`env_for`).
        self.env = env
        self.children = [
            self._start(name, args)
            for name, args in (
                ("auth", ["services.auth"]),
                ("wallet", ["services.wallet"]),
                ("mining", ["services.mining"]),
                ("mining-worker", ["services.mining", "worker"]),
                ("quests", ["services.quests"]),
                ("gateway", ["gateway"]),
            )
        ]
        try:
            self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise

    def env_for(self, identity: str) -> dict[str, str]:
        """The environment of a process running as ``identity`` (its ``GRPC_TLS_*``)."""
        if self.pki_dir is None:
            return dict(self.env)
        return self.env | pki.identity_files(self.pki_dir, identity).env()

    def _start(self, name: str, args: list[str]) -> Child:
        return Child(name, args, self.env_for(identity_of(args)), self.work_dir)

    def channel(self, service: str, *, identity: str) -> grpc.Channel:
        """A (blocking) channel to one service, calling as ``identity``; the
        service's access table decides what it may call."""
        ports = {
            "wallet": self.wallet_port,
            "mining": self.mining_port,
            "quests": self.quests_port,
            "auth": int(self.env["AUTH_GRPC_PORT"]),
        }
        target = f"127.0.0.1:{ports[service]}"
        tls = load_tls(Env(self.env_for(identity)))
        if tls is None:
            return grpc.insecure_channel(target)
        return grpc.secure_channel(target, channel_credentials(tls), target_options(service))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last = "no answer"
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                for child in self.children:
                    if child.process.poll() is not None:
                        raise RuntimeError(
                            self._report(f"{child.name} exited with {child.process.returncode}")
                        )
                try:
                    response = client.get("/api/health")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                except httpx.TransportError as error:
                    last = repr(error)
                time.sleep(0.1)
        raise RuntimeError(
            self._report(f"/api/health not 200 within {START_TIMEOUT_SECONDS}s (last: {last})")
        )

    def _report(self, problem: str) -> str:
        logs = "\n".join(
            f"--- {child.name} output ---\n{child.output()}" for child in self.children
        )
        return f"{problem}\n{logs}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0)

    def log(self, name: str) -> str:
        """Everything a child process has written so far."""
        child = next(child for child in self.children if child.name == name)
        return child.log_path.read_text(errors="replace")

    def child(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def restart(self, name: str) -> None:
        """Stop one child (a no-op when it is gone already), start it again with
        the same arguments, wait until the stack is ready."""
        old = self.child(name)
        old.stop()
        self.children[self.children.index(old)] = self._start(name, old.args)
        self._wait_ready()

    def spawn(self, name: str, args: list[str]) -> Child:
        """Start one more child (a second worker, say); stopped with the stack."""
        child = self._start(name, args)
        self.children.insert(-1, child)  # before the gateway, which stops first
        return child

    def private_key_pem(self) -> bytes:
        return self.key_file.read_bytes()

    def token_for(self, user_id: str, role: str = "user") -> str:
        """An access token signed with the stack's key, as auth would issue it,
        for tests that need many users without an OTP round each."""
        key = load_signing_key(self.key_file, generate=False)
        return key.sign_access_token(
            user_id=user_id,
            role=role,
            session_id=uuid.uuid4().hex,
            issuer="minequest",
            audience="minequest-api",
            now=datetime.now(UTC),
            ttl_seconds=900,
        )

    def stop(self, *, check: bool = True) -> None:
        """Gateway first, then the services; each must exit 0 on SIGTERM."""
        statuses = {child.name: child.stop() for child in reversed(self.children)}
        if check:
            bad = {name: code for name, code in statuses.items() if code != 0}
            assert not bad, self._report(f"unclean exit on SIGTERM: {bad}")


#: Many tests register and log in from 127.0.0.1 within seconds; the default
#: per-IP limits (5 registrations an hour) would refuse them. Stacks that test
#: the limits themselves start with the defaults.
ROOMY_LIMITS = {
    "REGISTER_RATE_LIMIT_IP_RATE": "100000",
    "REGISTER_RATE_LIMIT_WALLET_RATE": "100000",
    "AUTH_RATE_LIMIT_IP_RATE": "100000",
    "GENERAL_RATE_LIMIT_IP_RATE": "1000000",
}


_STACKS = itertools.count()


def _own_database(redis_url: str) -> str:
    """The session's Redis, on a database of the stack's own: stacks running at
    the same time must not drain each other's click stream."""
    base, _, db = redis_url.rpartition("/")
    if not db.isdigit():
        base = redis_url.rstrip("/")
    return f"{base}/{1 + next(_STACKS) % 15}"


def start_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    overrides: dict[str, str] | None = None,
    *,
    roomy: bool = True,
) -> Generator[Stack, None, None]:
    stack = Stack(
        mongodb_uri=request.getfixturevalue("mongodb_uri"),
        redis_url=_own_database(request.getfixturevalue("redis_url")),
        smtp_port=request.getfixturevalue("mailbox").port,
        work_dir=tmp_path_factory.mktemp(name),
        overrides=ROOMY_LIMITS | (overrides or {}) if roomy else overrides,
    )
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    yield from start_stack(request, tmp_path_factory, "stack")


@pytest.fixture(scope="module")
def short_otp_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack whose one-time codes expire after one second."""
    yield from start_stack(request, tmp_path_factory, "short-otp", {"AUTH_OTP_TTL_SECONDS": "1"})


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as http:
        yield http
