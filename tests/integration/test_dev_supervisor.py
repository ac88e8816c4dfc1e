"""The ``make dev`` supervisor, run for real.

The first tests run :func:`tools.dev.supervise` in this process with a table
of tiny real child processes (``python -c`` servers) and real signals sent
to this process. The last one (marked ``e2e``) runs ``python -m tools.dev``
itself with embedded stores, the auth service and the gateway, on free ports.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from runtime.embedded import free_port
from tools.supervisor import ProcessSpec, Ready, supervise

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import argparse, http.server, os, signal, socket, sys, threading, time
p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--needs", type=int, default=0)
p.add_argument("--die-after", type=float, default=0)
p.add_argument("--ignore-term", action="store_true")
a = p.parse_args()
print("hello on stdout", flush=True)
print("hello on stderr", file=sys.stderr, flush=True)
if a.needs:
    try:
        socket.create_connection(("127.0.0.1", a.needs), timeout=1).close()
        print("dependency was up", flush=True)
    except OSError:
        print("dependency was DOWN", flush=True)
def term(*_):
    print("got SIGTERM", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if a.ignore_term else term)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
if a.port:
    server = http.server.HTTPServer(("127.0.0.1", a.port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
if a.die_after:
    time.sleep(a.die_after)
    print("dying now", flush=True)
    sys.exit(3)
while True:
    time.sleep(1)
"""


def child(name: str, *args: str, ready: Ready | None = None) -> ProcessSpec:
    return ProcessSpec(name=name, argv=(sys.executable, "-c", CHILD, *args), ready=ready)


def pids(text: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"started (\w+) \(pid (\d+)\)", text)}


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_for_text(out: io.StringIO, text: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while text not in out.getvalue():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not printed within {within}s:\n{out.getvalue()}")
        await asyncio.sleep(0.05)


def order(text: str, *parts: str) -> None:
    """Assert each of ``parts`` occurs in ``text``, in this order."""
    positions = []
    for part in parts:
        assert part in text, f"{part!r} missing from:\n{text}"
        positions.append(text.index(part))
    assert positions == sorted(positions), f"out of order {parts}:\n{text}"


async def test_starts_in_order_prefixes_output_and_stops_in_reverse_on_sigint() -> None:
    first_port, second_port = free_port(), free_port()
    table = [
        child("first", "--port", str(first_port), ready=Ready("127.0.0.1", first_port)),
        child(
            "second",
            "--port",
            str(second_port),
            "--needs",
            str(first_port),
            ready=Ready("127.0.0.1", second_port, "/api/health"),
        ),
    ]
    out = io.StringIO()
    run = asyncio.create_task(
        supervise(
            table,
            env=dict(os.environ),
            out=out,
            ready_timeout=20,
            stop_timeout=5,
            ready_lines=["ALL READY"],
        )
    )
    await wait_for_text(out, "ALL READY")
    started = pids(out.getvalue())
    assert all(alive(pid) for pid in started.values())

    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(run, 20) == 0

    text = out.getvalue()
    assert "first  | hello on stdout" in text
    assert "first  | hello on stderr" in text
    assert "second | hello on stdout" in text
    assert "second | dependency was up" in text
    order(
        text,
        "first is ready (127.0.0.1:",
        "started second",
        f"second is ready (http://127.0.0.1:{second_port}/api/health)",
        "ALL READY",
        "dev    | SIGINT received: stopping",
        "second | got SIGTERM",
        "stopped second (exit code 0)",
        "first  | got SIGTERM",
        "stopped first (exit code 0)",
    )
    assert not any(alive(pid) for pid in started.values())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_a_child_that_dies_stops_everything_and_fails() -> None:
    first_port, second_port = free_port(), free_port()
    table = [
        child("first", "--port", str(first_port), ready=Ready("127.0.0.1", first_port)),
        child(
            "second",
            "--port",
            str(second_port),
            "--die-after",
            "1",
            ready=Ready("127.0.0.1", second_port),
        ),
    ]
    out = io.StringIO()
    code = await asyncio.wait_for(
        supervise(table, env=dict(os.environ), out=out, ready_timeout=20, stop_timeout=5), 30
    )
    text = out.getvalue()
    assert code == 1
    order(
        text,
        "second is ready",
        "second | dying now",
        "second exited unexpectedly (exit code 3); stopping everything",
        "first  | got SIGTERM",
        "stopped first (exit code 0)",
    )
    assert not any(alive(pid) for pid in pids(text).values())


async def test_a_child_that_dies_while_starting_stops_the_ones_before_it() -> None:
    first_port = free_port()
    table = [
        child("first", "--port", str(first_port), ready=Ready("127.0.0.1", first_port)),
        child("second", "--die-after", "0.1", ready=Ready("127.0.0.1", free_port())),
        child("third"),
    ]
    out = io.StringIO()
    code = await asyncio.wait_for(
        supervise(table, env=dict(os.environ), out=out, ready_timeout=20, stop_timeout=5), 30
    )
    text = out.getvalue()
    assert code == 1
    order(text, "second exited while starting (exit code 3)", "stopped first")
    assert "started third" not in text
    assert not any(alive(pid) for pid in pids(text).values())


async def test_a_child_never_ready_times_out() -> None:
    table = [child("first", ready=Ready("127.0.0.1", free_port(), "/api/health"))]
    out = io.StringIO()
    code = await asyncio.wait_for(
        supervise(table, env=dict(os.environ), out=out, ready_timeout=1, stop_timeout=5), 30
    )
    text = out.getvalue()
    assert code == 1
    assert "first was not ready within 1s (http://127.0.0.1:" in text
    assert not any(alive(pid) for pid in pids(text).values())


async def test_sigterm_stops_and_a_straggler_is_killed() -> None:
    port = free_port()
    table = [
        child("stubborn", "--port", str(port), "--ignore-term", ready=Ready("127.0.0.1", port))
    ]
    out = io.StringIO()
    run = asyncio.create_task(
        supervise(
            table,
            env=dict(os.environ),
            out=out,
            ready_timeout=20,
            stop_timeout=1,
            ready_lines=["UP"],
        )
    )
    await wait_for_text(out, "UP")
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(run, 20) == 0
    text = out.getvalue()
    order(
        text,
        "SIGTERM received: stopping",
        "stubborn did not stop within 1s: killing it",
        "stopped stubborn (killed by SIGKILL)",
    )
    assert not any(alive(pid) for pid in pids(text).values())


async def test_a_command_that_cannot_start_is_reported() -> None:
    first_port = free_port()
    table = [
        child("first", "--port", str(first_port), ready=Ready("127.0.0.1", first_port)),
        ProcessSpec(name="missing", argv=("/nonexistent/minequest-binary",)),
    ]
    out = io.StringIO()
    code = await asyncio.wait_for(
        supervise(table, env=dict(os.environ), out=out, ready_timeout=20, stop_timeout=5), 30
    )
    assert code == 1
    order(out.getvalue(), "cannot start missing:", "stopped first")


# -- the real thing -----------------------------------------------------------

_HAVE_SUITE = all(
    (ROOT / path).exists() for path in ("services/auth/__main__.py", "gateway/__main__.py")
)


_OUR_PREFIXES = (
    "AUTH_",
    "WALLET_",
    "QUESTS_",
    "DEPOSIT_",
    "GATEWAY_",
    "SMTP_",
    "JWT_",
    "MINEQUEST_",
    "OTEL_",
)
_OUR_NAMES = {
    "MONGODB_URI",
    "REDIS_URL",
    "LOG_LEVEL",
    "SHUTDOWN_GRACE_SECONDS",
    "ENABLE_DEV_OTP_FALLBACK",
    "CORS_ALLOW_ORIGINS",
    "MAX_BODY_BYTES",
    "GRPC_TIMEOUT_SECONDS",
    "JWKS_MIN_REFRESH_SECONDS",
    "TOKEN_CACHE_SIZE",
}


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for kid in parents.get(todo.pop(), []):
            found.add(kid)
            todo.append(kid)
    return found


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own URL
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:  # it holds the connection open
            return error.code


@pytest.mark.e2e
@pytest.mark.skipif(not _HAVE_SUITE, reason="services/auth and gateway are not in the tree yet")
def test_make_dev_runs_the_suite_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    gateway_port = free_port()
    # The developer's own Minequest settings stay out: this run uses the defaults.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_OUR_PREFIXES) and key not in _OUR_NAMES
    } | {
        "MINEQUEST_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_PORT": str(gateway_port),
        "AUTH_GRPC_PORT": str(free_port()),
        "AUTH_METRICS_PORT": str(free_port()),
        "WALLET_GRPC_PORT": str(free_port()),
        "WALLET_METRICS_PORT": str(free_port()),
        "QUESTS_GRPC_PORT": str(free_port()),
        "QUESTS_METRICS_PORT": str(free_port()),
        "MINING_GRPC_PORT": str(free_port()),
        "MINING_METRICS_PORT": str(free_port()),
        "MINING_WORKER_METRICS_PORT": str(free_port()),
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        dev = subprocess.Popen(
            [sys.executable, "-m", "tools.dev"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    family: set[int] = set()
    try:
        url = f"http://127.0.0.1:{gateway_port}"
        deadline = time.monotonic() + 120
        while f"ready: gateway at {url}" not in log_path.read_text():
            assert dev.poll() is None, f"tools.dev exited early:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no URL printed:\n{log_path.read_text()}"
            time.sleep(0.2)
        text = log_path.read_text()
        assert f"curl -s {url}/api/health" in text
        assert "WARNING: dev OTP fallback is ON" in text
        assert _get(f"{url}/api/health") == 200
        family = _descendants(dev.pid)
        assert len(family) >= 8, (
            f"expected redis, mongodb, auth, wallet, mining, quests, mining-worker, gateway: "
            f"{family}"
        )
        assert (tmp_path / "data" / "jwt-ed25519.pem").exists()

        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0, log_path.read_text()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in family if alive(pid)], log_path.read_text()
        text = log_path.read_text()
        assert "stopped gateway" in text
        assert "stopped auth" in text
        assert "stopped wallet" in text
        assert "stopped quests" in text
        assert "stopped mining" in text
        assert "stopped mining-worker" in text
    finally:
        for pid in [dev.pid, *family]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            dev.wait(timeout=10)
