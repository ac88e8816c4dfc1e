"""End-to-end fixtures: every service, the click worker and the gateway as
child processes.

Each :class:`Stack` runs the processes of ``make dev``'s plan
(:func:`tools.dev.dev_plan`: ``services.auth``, ``services.wallet``,
``services.mining`` and its worker, ``services.quests`` and the gateway) on
free ports and databases of its own (:func:`tools.dev.isolated_env`) against
the session's Redis and MongoDB-wire servers (see ``tests/conftest.py``), with
a freshly generated JWT key and its own internal PKI (``tools/pki.py``): every
child gets its own certificate, so the suite runs with mutual TLS and the
access tables as shipped. OTP mail goes to a real SMTP server (aiosmtpd) that
the tests read. A stack is ready when ``GET /api/health`` answers 200; it is
stopped with SIGTERM and must exit cleanly. Tests that call a service
directly dial it with :meth:`Stack.channel` as one of the identities.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import pytest

from bench.harness.processes import Child
from runtime.config import Env
from runtime.tls import channel_credentials, load_tls, target_options
from services.auth.keys import load_signing_key
from tests.mail import Mailbox, smtp_server
from tools import pki
from tools.dev import DevPlan, dev_plan, isolated_env

ROOT = Path(__file__).resolve().parents[2]
#: The deposit provider's webhook secret in every stack (tests sign with it).
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789"
#: The Telegram bot token of every stack (tests sign Mini App initData with it).
TELEGRAM_BOT_TOKEN = "123456789:e2e-telegram-bot-token_0123456789"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as handler:
        yield handler


class Stack:
    """Every service, the click worker and the gateway in front of them."""

    def __init__(
        self,
        *,
        mongodb_uri: str,
        redis_url: str,
        smtp_port: int,
        work_dir: Path,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.key_file = work_dir / "jwt-private.pem"
        inherited = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
        env = {
            **inherited,
            **isolated_env("e2e"),
            "PYTHONPATH": str(ROOT),
            "MINEQUEST_DATA_DIR": str(work_dir),
            "MONGODB_URI": mongodb_uri,
            "REDIS_URL": redis_url,
            "AUTH_JWT_PRIVATE_KEY_FILE": str(self.key_file),
            "AUTH_JWT_GENERATE_KEY": "true",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "SMTP_FROM": "no-reply@minequest.test",
            # The test SMTP server offers no STARTTLS.
            "SMTP_SECURITY": "none",
            "ENABLE_DEV_OTP_FALLBACK": "false",
            "WALLET_DEPOSIT_WALLETS": "USDT:ethereum:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "WALLET_WITHDRAWAL_LIMITS": "MQC:1:1000:5000,USDT:5:1000:2000",
            "DEPOSIT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_BOT_TOKEN": TELEGRAM_BOT_TOKEN,
            "MINING_WORKER_BLOCK_MS": "100",
            # make dev lingers 2 s per batch; the tests wait less for credits.
            "MINING_WORKER_LINGER_MS": "200",
            # Two gateway processes under their parent, whatever the test host's
            # cores (make dev gives a core fewer than it has): the tests drive
            # the multi-process gateway, metrics merged by the parent.
            "GATEWAY_WORKERS": "2",
            "MAX_BODY_BYTES": "65536",
            "LOG_LEVEL": "INFO",
            **(overrides or {}),
        }
        #: What every child shares (and commands such as ``reconcile`` run with);
        #: each child adds its own part of the plan, its certificate included
        #: (:meth:`env_for`). Tests may change it, then :meth:`restart` a child.
        self.env = env
        plan = self.plan()
        self.pki_dir = plan.pki_dir
        pki.ensure(self.pki_dir, sorted(set(plan.identities.values())))
        self.base_url = plan.gateway_url
        #: The gateway's Prometheus endpoint: an internal port, not the public one.
        self.metrics_port = int(env["GATEWAY_METRICS_PORT"])
        self.wallet_port = int(env["WALLET_GRPC_PORT"])
        self.mining_port = int(env["MINING_GRPC_PORT"])
        self.quests_port = int(env["QUESTS_GRPC_PORT"])
        #: Which process of the plan each child runs (a spawned copy has a name of its own).
        self._runs: dict[str, str] = {spec.name: spec.name for spec in plan.processes}
        self.children = [self._start(spec.name, plan) for spec in plan.processes]
        try:
            self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise

    def plan(self) -> DevPlan:
        """``make dev``'s plan for the stack's current :attr:`env`."""
        return dev_plan(Env(self.env))

    def env_for(self, identity: str) -> dict[str, str]:
        """The environment of a process running as ``identity`` (its ``GRPC_TLS_*``)."""
        return self.env | pki.identity_files(self.pki_dir, identity).env()

    def _start(self, name: str, plan: DevPlan) -> Child:
        spec = plan.spec(self._runs[name])
        return Child(name, spec.argv, {**self.env, **spec.env}, self.work_dir)

    def channel(self, service: str, *, identity: str) -> grpc.Channel:
        """A (blocking) channel to one service, calling as ``identity``; the
        service's access table decides what it may call."""
        target = self.plan().addresses[service]
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
            f"--- {child.name} output ---\n{child.tail(60)}" for child in self.children
        )
        return f"{problem}\n{logs}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0)

    def log(self, name: str) -> str:
        """Everything a child process has written so far."""
        return self.child(name).output()

    def child(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def _stop_child(self, child: Child) -> int:
        code, clean = child.stop(STOP_TIMEOUT_SECONDS)
        if not clean:
            raise AssertionError(f"{child.name} ignored SIGTERM:\n{child.tail(60)}")
        return code

    def restart(self, name: str) -> None:
        """Stop one child (a no-op when it is gone already), start it again as
        the plan for the current :attr:`env` says, wait until the stack is ready."""
        old = self.child(name)
        self._stop_child(old)
        self.children[self.children.index(old)] = self._start(name, self.plan())
        self._wait_ready()

    def spawn(self, name: str, args: list[str]) -> Child:
        """Start one more copy of the plan's process run as ``python -m *args``
        (a second worker, say) under ``name``; stopped with the stack."""
        plan = self.plan()
        self._runs[name] = next(spec.name for spec in plan.processes if list(spec.argv[2:]) == args)
        child = self._start(name, plan)
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
        statuses = {}
        for child in reversed(self.children):
            code, clean = child.stop(STOP_TIMEOUT_SECONDS)
            statuses[child.name] = code if clean else "ignored SIGTERM"
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
