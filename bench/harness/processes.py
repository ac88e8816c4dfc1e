"""Child processes for the benchmarks: a clean environment, a log file each,
readiness by port or HTTP, a bounded stop; one HTTP call; a uvicorn server
for an app factory; the work folder a run lives in."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


def base_env() -> dict[str, str]:
    """A clean environment for the children: nothing of the caller's settings leaks in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PYTHONPATH"] = str(ROOT)
    return env


class Child:
    """A child process whose output goes to ``logs/<name>.log``."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        logs: Path,
        *,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.args = tuple(args)
        self.log_path = logs / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(args),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> tuple[int, bool]:
        """SIGTERM, then SIGKILL after ``timeout``: (exit status, whether it
        stopped on SIGTERM alone)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return self.process.returncode, False
        return self.process.returncode, True


def wait_for_port(child: Child, port: int, timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not listen on {port} within {timeout}s:\n{child.tail()}")


def wait_for_http(
    child: Child, port: int, path: str, timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Until ``GET path`` answers 200."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        child.check_alive()
        try:
            reply = http_call(port, "GET", path)
            if reply.status == 200:
                return
            last = f"{reply.status} {reply.body[:200]!r}"
        except (OSError, http.client.HTTPException) as error:
            last = repr(error)
        time.sleep(0.1)
    raise RuntimeError(f"{child.name}: GET {path} not 200 within {timeout}s (last: {last})")


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def http_call(
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return Reply(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


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


class UvicornServer:
    """An ASGI app factory (``module:function``) under uvicorn: one worker,
    uvloop, httptools, no access log. ``ready_path`` answers 200 once it is up."""

    def __init__(
        self, name: str, factory: str, env: Mapping[str, str], logs: Path, ready_path: str
    ) -> None:
        self.port = free_port()
        self.ready_path = ready_path
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "auto"
        http_impl = "httptools" if importlib.util.find_spec("httptools") else "auto"
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--loop",
            loop,
            "--http",
            http_impl,
            "--lifespan",
            "on",
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ]
        self.child = Child(name, args, env, logs)

    def wait_ready(self) -> None:
        wait_for_port(self.child, self.port)
        wait_for_http(self.child, self.port, self.ready_path)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: every child and store is stopped


def run_in_work_folder(
    run: Callable[[argparse.Namespace, Path], None], args: argparse.Namespace, prefix: str
) -> int:
    """Run a bench in a fresh work folder (kept with ``args.keep``); SIGTERM
    unwinds like Ctrl-C, so every child process and store is stopped."""
    signal.signal(signal.SIGTERM, _terminate)
    if getattr(args, "keep", False):
        run(args, Path(tempfile.mkdtemp(prefix=prefix)))
        return 0
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        run(args, Path(folder))
    return 0
