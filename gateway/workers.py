"""``GATEWAY_WORKERS`` gateway processes on one port, kept running.

One Python process serves one core. With ``GATEWAY_WORKERS`` above 1 (the
default is the machine's core count) ``python -m gateway`` becomes a small
parent that:

- reserves the port (a bound, non-listening ``SO_REUSEPORT`` socket: a taken
  port fails here, once, naming ``GATEWAY_PORT``), then starts the workers,
  each ``python -m gateway`` listening on that port with ``SO_REUSEPORT``, so
  the kernel spreads connections across them;
- serves ``/metrics`` on ``GATEWAY_METRICS_PORT`` for all of them
  (prometheus_client's multiprocess mode: each worker writes its samples to
  ``PROMETHEUS_MULTIPROC_DIR``, a private temporary directory by default);
- restarts a worker that dies, waiting 1 s, then twice as long after each
  crash that follows within a minute (up to 30 s), and says so in the log;
- on SIGTERM/SIGINT stops every worker gracefully and exits 0.

A worker dies with its parent (``PR_SET_PDEATHSIG``), so a killed parent
leaves no process holding the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.workers")

#: Set in a worker's environment: its index (the parent's children only).
WORKER_INDEX = "GATEWAY_WORKER_INDEX"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
_PR_SET_PDEATHSIG = 1
_MAX_BACKOFF = 30.0
_CALM_SECONDS = 60.0


def is_worker() -> bool:
    return WORKER_INDEX in os.environ


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound with ``SO_REUSEPORT`` (listening is left to the server)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    crashes: int = 0
    last_crash: float = 0.0
    restart_at: float = 0.0


def supervise(settings: GatewaySettings) -> int:
    """Run ``settings.workers`` gateway processes until SIGTERM; the exit status."""
    try:
        reservation = listening_socket(settings.host, settings.port)
    except OSError as error:
        log.error("GATEWAY_PORT: cannot listen on %s: %s", settings.port, error.strerror)
        return 2
    port = reservation.getsockname()[1]
    own_dir = MULTIPROC_DIR not in os.environ
    directory = os.environ.get(MULTIPROC_DIR) or tempfile.mkdtemp(prefix="minequest-gateway-")
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))
    try:
        if settings.metrics_port:
            _serve_metrics(settings.metrics_host, settings.metrics_port, directory)
        return _run(settings, port, directory)
    finally:
        reservation.close()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


def _serve_metrics(host: str, port: int, directory: str) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        message = f"GATEWAY_METRICS_PORT: cannot listen on {port}: {error.strerror}"
        raise SystemExit(message) from None


def _run(settings: GatewaySettings, port: int, directory: str) -> int:
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = {**os.environ, MULTIPROC_DIR: directory, "GATEWAY_PORT": str(port)}
    workers = [_Worker(index) for index in range(settings.workers)]
    log.info(
        "gateway workers starting",
        extra={"workers": settings.workers, "port": port, "host": settings.host},
    )
    while not stopping:
        now = time.monotonic()
        for worker in workers:
            if worker.process is None and now >= worker.restart_at:
                worker.process = subprocess.Popen(
                    [sys.executable, "-m", "gateway"],
                    env={**env, WORKER_INDEX: str(worker.index)},
                )
            elif worker.process is not None and worker.process.poll() is not None:
                _crashed(worker, now, directory)
        time.sleep(0.2)
    return _stop(workers, settings.shutdown_grace_seconds)


def _crashed(worker: _Worker, now: float, directory: str) -> None:
    assert worker.process is not None
    pid, code = worker.process.pid, worker.process.returncode
    _mark_dead(pid, directory)
    worker.process = None
    worker.crashes = worker.crashes + 1 if now - worker.last_crash < _CALM_SECONDS else 1
    worker.last_crash = now
    wait = min(_MAX_BACKOFF, 2.0 ** (worker.crashes - 1))
    worker.restart_at = now + wait
    log.error(
        "gateway worker died; restarting it",
        extra={"worker": worker.index, "pid": pid, "exit_code": code, "restart_in_s": wait},
    )


def _stop(workers: list[_Worker], grace: float) -> int:
    running = [w.process for w in workers if w.process is not None and w.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    status = 0
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        status = status or (process.returncode if process.returncode > 0 else 0)
    log.info("gateway workers stopped")
    return status


def _mark_dead(pid: int, directory: str) -> None:
    with contextlib.suppress(Exception):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
