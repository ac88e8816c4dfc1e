"""``GATEWAY_WORKERS``: real ``python -m gateway`` processes on one port.

The gateway starts without its services here (their calls would fail fast);
what is checked is the process model: N workers serve the port together, one
metrics endpoint covers them all, a killed worker comes back by itself while
the others keep serving, a taken port is one clear line, and SIGTERM stops
everything with exit 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness.cpu import children_of
from runtime.embedded import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def gateway_env(port: int, metrics_port: int, workers: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_METRICS_PORT": str(metrics_port),
        "GATEWAY_WORKERS": str(workers),
        "LOG_LEVEL": "WARNING",
        "SHUTDOWN_GRACE_SECONDS": "1",
    }


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (loopback)
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(check: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not true within {seconds} s: {check}")


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == wanted and line.split()[3] == "0A")


Gateway = tuple[subprocess.Popen[bytes], int, int, Path]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=gateway_env(port, metrics_port, 2),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: listeners(port) == 2)
        yield process, port, metrics_port, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_workers_share_the_port_and_one_metrics_endpoint(
    gateway: Gateway,
) -> None:
    """Two listening sockets on the port, one per worker (SO_REUSEPORT): the
    parent only reserves it."""
    process, port, metrics_port, _ = gateway
    assert len(children_of(process.pid)) == 2
    for _ in range(40):
        assert get(f"http://127.0.0.1:{port}/api/nope")[0] == 404
    status, text = get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    samples = [
        line
        for line in text.decode().splitlines()
        if line.startswith("http_requests_total{") and '"404"' in line
    ]
    assert samples, text.decode()[:2000]
    # The parent adds up every worker's counts.
    assert sum(float(line.rsplit(" ", 1)[1]) for line in samples) == 40


def test_a_killed_worker_comes_back_while_the_other_serves(
    gateway: Gateway,
) -> None:
    process, port, _, log = gateway
    first, second = sorted(children_of(process.pid))
    os.kill(first, signal.SIGKILL)
    # Once the dead worker's socket is gone (connections queued on it at that
    # moment are reset, as with any killed server), the other worker answers
    # every connection while the dead one is replaced.
    wait_until(lambda: listeners(port) == 1 or first not in children_of(process.pid))
    for _ in range(10):
        assert get(f"http://127.0.0.1:{port}/api/nope")[0] == 404
    wait_until(lambda: len(children_of(process.pid)) == 2 and first not in children_of(process.pid))
    assert second in children_of(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert "gateway worker died; restarting it" in log.read_text()


def test_a_taken_port_is_one_line_naming_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=gateway_env(port, 0, 2),
            check=False,
            capture_output=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert b"GATEWAY_PORT" in result.stderr
    assert b"Traceback" not in result.stderr
