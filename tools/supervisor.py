"""A small asyncio process supervisor (what ``make dev`` runs its processes with).

:func:`supervise` starts each :class:`ProcessSpec` in order, each once the one
before it is ready (:class:`Ready`: its port accepts connections, or an HTTP
GET answers 200), writes every line a process prints with its name in front,
and on SIGINT/SIGTERM stops them in reverse order (SIGTERM, then SIGKILL after
a bounded wait). When a process dies on its own it says which and how, stops
the rest and returns 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True, slots=True)
class PortClaim:
    """A port a process will bind, and the variable that chose it."""

    variable: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Ready:
    """When a process counts as started: its port accepts a TCP connection,
    or, with ``http_path``, a GET there answers 200."""

    host: str
    port: int
    http_path: str | None = None

    def describe(self) -> str:
        if self.http_path is None:
            return f"{self.host}:{self.port}"
        return f"http://{self.host}:{self.port}{self.http_path}"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One supervised process: ``env`` is laid over the supervisor's environment."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortClaim, ...] = ()
    ready: Ready | None = None


#: Dev-only settings a service adds to its own environment: (env, data_dir) -> (vars, notes).


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


class Output:
    """Writes lines with a fixed-width name in front."""

    def __init__(self, out: TextIO, names: Sequence[str]) -> None:
        self.out = out
        self.width = max(len(name) for name in ["dev", *names])

    def line(self, name: str, text: str) -> None:
        self.out.write(f"{name:<{self.width}} | {text}\n")
        self.out.flush()

    def say(self, text: str) -> None:
        self.line("dev", text)


async def _pump(stream: asyncio.StreamReader, name: str, output: Output) -> None:
    pending = b""
    while chunk := await stream.read(65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for raw in lines:
            output.line(name, raw.rstrip(b"\r").decode("utf-8", "replace"))
    if pending:
        output.line(name, pending.decode("utf-8", "replace"))


async def _answers(ready: Ready) -> bool:
    """One readiness probe: a TCP connect, or a GET answering 200."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ready.host, ready.port), timeout=2
        )
    except (OSError, TimeoutError):
        return False
    try:
        if ready.http_path is None:
            return True
        writer.write(
            f"GET {ready.http_path} HTTP/1.1\r\nHost: {ready.host}:{ready.port}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status = await asyncio.wait_for(reader.readline(), timeout=5)
        return status.split()[1:2] == [b"200"]
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _until_ready(ready: Ready) -> None:
    # Polling is the point here: nothing tells us when another process is up.
    while not await _answers(ready):  # noqa: ASYNC110
        await asyncio.sleep(0.1)


@dataclass(slots=True)
class _Child:
    spec: ProcessSpec
    process: asyncio.subprocess.Process
    pumps: list[asyncio.Task[None]]


class _Supervisor:
    def __init__(self, env: Mapping[str, str], output: Output, stop_timeout: float) -> None:
        self.env = env
        self.output = output
        self.stop_timeout = stop_timeout
        self.children: list[_Child] = []
        self.stop = asyncio.Event()

    def on_signal(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            self.output.say(f"{sig.name} received: stopping")
        self.stop.set()

    async def spawn(self, spec: ProcessSpec) -> _Child:
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env={**self.env, **spec.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Own process group: a terminal's Ctrl-C reaches only the
            # supervisor, which then stops the children in order.
            start_new_session=True,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        pumps = [
            asyncio.create_task(_pump(stream, spec.name, self.output))
            for stream in (process.stdout, process.stderr)
        ]
        child = _Child(spec, process, pumps)
        self.children.append(child)
        command = " ".join(shlex.join(spec.argv).split())
        if len(command) > 120:
            command = command[:117] + "..."
        self.output.say(f"started {spec.name} (pid {process.pid}): {command}")
        return child

    async def first_event(
        self, extra: asyncio.Task[None] | None = None, within: float | None = None
    ) -> str:
        """Wait for a stop signal, any child's exit, or ``extra``: "stop",
        "exit:<name>", "extra" or "timeout"."""
        waits: dict[asyncio.Task[Any], str] = {asyncio.create_task(self.stop.wait()): "stop"}
        for child in self.children:
            waits[asyncio.create_task(child.process.wait())] = child.spec.name
        if extra is not None:
            waits[extra] = "extra"
        try:
            done, _ = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        if not done:
            return "timeout"
        if any(waits[task] == "stop" for task in done):
            return "stop"
        exited = [waits[task] for task in done if waits[task] != "extra"]
        return f"exit:{exited[0]}" if exited else "extra"

    async def died(self, event: str, when: str) -> int:
        """Report a child that exited on its own (after its last lines); return 1."""
        child = next(c for c in self.children if c.spec.name == event.removeprefix("exit:"))
        code = await self.reap(child)
        self.output.say(
            f"{child.spec.name} exited {when} ({describe_exit(code)}); stopping everything"
        )
        return 1

    async def reap(self, child: _Child) -> int:
        """Wait for an exited child and for the rest of its output."""
        code = await child.process.wait()
        _, pending = await asyncio.wait(child.pumps, timeout=2)
        for task in pending:
            task.cancel()
        return code

    async def shutdown(self) -> None:
        for child in reversed(self.children):
            process = child.process
            if process.returncode is not None:
                await self.reap(child)
                continue
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), self.stop_timeout)
            except TimeoutError:
                self.output.say(
                    f"{child.spec.name} did not stop within {self.stop_timeout:g}s: killing it"
                )
                process.kill()
            code = await self.reap(child)
            self.output.say(f"stopped {child.spec.name} ({describe_exit(code)})")


async def supervise(
    processes: Sequence[ProcessSpec],
    *,
    env: Mapping[str, str],
    out: TextIO | None = None,
    ready_timeout: float = 60.0,
    stop_timeout: float = 15.0,
    ready_lines: Sequence[str] = (),
) -> int:
    """Run ``processes`` in order until SIGINT/SIGTERM (-> 0) or a death (-> 1).

    Each starts once the one before it is ready. ``ready_lines`` are printed
    when all are. Returns the exit status for the whole run.
    """
    output = Output(out or sys.stdout, [spec.name for spec in processes])
    supervisor = _Supervisor(env, output, stop_timeout)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, supervisor.on_signal, sig)
    try:
        return await _run(supervisor, processes, ready_timeout, ready_lines)
    finally:
        await supervisor.shutdown()
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _run(
    supervisor: _Supervisor,
    processes: Sequence[ProcessSpec],
    ready_timeout: float,
    ready_lines: Sequence[str],
) -> int:
    say = supervisor.output.say
    for spec in processes:
        try:
            await supervisor.spawn(spec)
        except OSError as error:
            say(f"cannot start {spec.name}: {error}; stopping everything")
            return 1
        if spec.ready is None:
            continue
        probe = asyncio.create_task(_until_ready(spec.ready))
        event = await supervisor.first_event(probe, within=ready_timeout)
        if event == "stop":
            return 0
        if event == "timeout":
            say(
                f"{spec.name} was not ready within {ready_timeout:g}s "
                f"({spec.ready.describe()}); stopping everything"
            )
            return 1
        if event.startswith("exit:"):
            return await supervisor.died(event, "while starting")
        say(f"{spec.name} is ready ({spec.ready.describe()})")
    for line in ready_lines:
        say(line)
    event = await supervisor.first_event()
    return 0 if event == "stop" else await supervisor.died(event, "unexpectedly")
