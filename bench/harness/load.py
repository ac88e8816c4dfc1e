"""HTTP load: wrk with ``bench/wrk/post.lua`` (one instance per port, run at
the same time, results merged), or a slower Python generator when wrk is
missing. Every request is a POST with the next user's token and a fresh
``Idempotency-Key``."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.harness.processes import ROOT
from bench.harness.tokens import Credentials

WRK_SCRIPT = ROOT / "bench" / "wrk" / "post.lua"
WRK_MISSING = "wrk not found: make bench-tools (apt-get install -y wrk)"
SOCKET_ERRORS = ("connect_errors", "read_errors", "write_errors", "timeouts")


@dataclass(slots=True)
class LoadResult:
    requests: int
    seconds: float
    #: Answers by status: ``s200``, ``s202``, ``s429``, ``s503``, ``s_other``.
    statuses: dict[str, int] = field(default_factory=dict)
    #: Latency (µs) at every 0.1 % of each instance, with its weight.
    quantiles: list[tuple[int, float]] = field(default_factory=list)
    socket_errors: int = 0
    #: Answers with a status >= 400.
    status_errors: int = 0

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

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
        ordered = sorted(self.quantiles)
        for value, weight in ordered:
            running += weight
            if running >= fraction * total - 1e-9:
                return value / 1000
        return ordered[-1][0] / 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)


def merge(results: Sequence[LoadResult]) -> LoadResult:
    """Instances run at the same time: requests add up, the time is the longest."""
    merged = LoadResult(0, 0.0)
    for result in results:
        merged.requests += result.requests
        merged.seconds = max(merged.seconds, result.seconds)
        for name, value in result.statuses.items():
            merged.statuses[name] = merged.statuses.get(name, 0) + value
        merged.quantiles.extend(result.quantiles)
        merged.socket_errors += result.socket_errors
        merged.status_errors += result.status_errors
    return merged


def parse_wrk(output: str) -> LoadResult:
    """The ``WRK_JSON`` line ``post.lua`` prints (ValueError when there is none)."""
    line = next((ln for ln in output.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise ValueError("no WRK_JSON line in wrk's output")
    data = json.loads(line.removeprefix("WRK_JSON "))
    requests = int(data["requests"])
    points = data.get("quantiles_us") or []
    weight = requests / max(1, len(points))
    return LoadResult(
        requests=requests,
        seconds=int(data["duration_us"]) / 1e6,
        statuses={name: int(value) for name, value in data.get("statuses", {}).items()},
        quantiles=[(int(value), weight) for value in points],
        socket_errors=sum(int(data.get(name, 0)) for name in SOCKET_ERRORS),
        status_errors=int(data.get("status_errors", 0)),
    )


class LoadGenerator:
    name = "?"

    def run(
        self,
        ports: Sequence[int],
        connections: int,
        seconds: float,
        run_id: str,
        *,
        threads: int = 1,
    ) -> LoadResult:
        raise NotImplementedError


class Wrk(LoadGenerator):
    """wrk and ``post.lua``: POST ``path`` with ``body``, tokens in rotation."""

    def __init__(self, credentials: Credentials, path: str, body: str) -> None:
        executable = shutil.which("wrk")
        if executable is None:
            raise SystemExit(WRK_MISSING)
        self.executable = executable
        self.credentials = credentials
        self.path = path
        self.body = body
        version = subprocess.run(
            [executable, "-v"], capture_output=True, text=True, check=False
        ).stdout
        self.name = version.splitlines()[0].split(" Copyright")[0] if version else "wrk"

    def run(
        self,
        ports: Sequence[int],
        connections: int,
        seconds: float,
        run_id: str,
        *,
        threads: int = 1,
    ) -> LoadResult:
        """One wrk instance per port at the same time, the connections split."""
        users = len(self.credentials.tokens)
        share = max(1, connections // len(ports))
        processes: list[subprocess.Popen[str]] = []
        try:
            for index, port in enumerate(ports):
                command = [
                    self.executable,
                    f"-t{max(1, min(threads, share))}",
                    f"-c{share}",
                    f"-d{max(1, round(seconds))}s",
                    "--timeout",
                    "5s",
                    "-s",
                    str(WRK_SCRIPT),
                    f"http://127.0.0.1:{port}",
                    "--",
                    str(self.credentials.tokens_file),
                    f"{run_id}-{index}",
                    self.path,
                    self.body,
                    str(users * index // len(ports)),
                ]
                processes.append(
                    subprocess.Popen(
                        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    )
                )
            outputs = [process.communicate(timeout=seconds + 60) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        results = []
        for process, (out, err) in zip(processes, outputs, strict=True):
            try:
                if process.returncode != 0:
                    raise ValueError(f"exit status {process.returncode}")
                results.append(parse_wrk(out))
            except ValueError as error:
                raise RuntimeError(f"wrk failed ({error}):\n{out}\n{err}") from None
        return merge(results)


class PythonLoad(LoadGenerator):
    """A closed-loop HTTP/1.1 keep-alive generator on asyncio (uvloop when there).
    Slower than wrk: with it, a fast server's req/s is the generator's limit."""

    name = "python asyncio generator"
    CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")

    def __init__(self, credentials: Credentials, path: str, body: str) -> None:
        self.tokens = credentials.tokens
        self.path = path
        self.body = body.encode()

    def run(
        self,
        ports: Sequence[int],
        connections: int,
        seconds: float,
        run_id: str,
        *,
        threads: int = 1,
    ) -> LoadResult:
        factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        if importlib.util.find_spec("uvloop"):
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(self._run(ports, connections, seconds, run_id))

    async def _run(
        self, ports: Sequence[int], connections: int, seconds: float, run_id: str
    ) -> LoadResult:
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        socket_errors = 0
        counter = itertools.count()
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(port: int) -> None:
            nonlocal socket_errors
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while time.perf_counter() < deadline:
                    number = next(counter)
                    token = self.tokens[number % len(self.tokens)]
                    head = (
                        f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Authorization: Bearer {token}\r\n"
                        f"Idempotency-Key: {run_id}-{number}\r\n"
                        f"Content-Type: application/json\r\n"
                        f"Content-Length: {len(self.body)}\r\n\r\n"
                    )
                    sent = time.perf_counter()
                    writer.write(head.encode() + self.body)
                    answer = await reader.readuntil(b"\r\n\r\n")
                    length = self.CONTENT_LENGTH.search(answer)
                    await reader.readexactly(int(length.group(1)) if length else 0)
                    latencies.append(time.perf_counter() - sent)
                    status = int(answer[9:12])
                    name = f"s{status}" if status in (200, 202, 429, 503) else "s_other"
                    statuses[name] = statuses.get(name, 0) + 1
            except (OSError, asyncio.IncompleteReadError):
                socket_errors += 1
            finally:
                writer.close()

        await asyncio.gather(*(worker(ports[i % len(ports)]) for i in range(connections)))
        elapsed = time.perf_counter() - started
        return LoadResult(
            requests=len(latencies),
            seconds=elapsed,
            statuses=statuses,
            quantiles=quantiles_of(latencies),
            socket_errors=socket_errors,
            status_errors=len(latencies) - statuses.get("s200", 0) - statuses.get("s202", 0),
        )


def quantiles_of(latencies: Sequence[float]) -> list[tuple[int, float]]:
    """Latencies (seconds) as (µs, weight) at every 0.1 %, as ``post.lua`` reports them."""
    if not latencies:
        return []
    ordered = sorted(latencies)
    weight = len(ordered) / 1000
    count = len(ordered)
    # nearest rank: the smallest latency at or above i/1000 of the calls
    return [
        (round(1e6 * ordered[max(0, -(-i * count // 1000) - 1)]), weight) for i in range(1, 1001)
    ]


def choose_generator(wanted: str, credentials: Credentials, path: str, body: str) -> LoadGenerator:
    """``wanted``: ``wrk``, ``python`` or ``auto`` (wrk when installed)."""
    have_wrk = shutil.which("wrk") is not None
    if wanted == "wrk" and not have_wrk:
        raise SystemExit(WRK_MISSING)
    if have_wrk and wanted != "python":
        return Wrk(credentials, path, body)
    generator = PythonLoad(credentials, path, body)
    if wanted == "auto":
        generator.name += " (wrk not found: make bench-tools)"
        print(
            "NOTE: wrk not found (make bench-tools); using the Python generator, "
            "which shares the 2 cores less politely and saturates early."
        )
    return generator
