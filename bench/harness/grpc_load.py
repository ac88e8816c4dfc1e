"""gRPC load, as ``ghz`` does it: one unary method called ``total`` times (or
for ``duration``) by ``concurrency`` workers over ``connections`` connections.

Three generators, one :class:`Outcome`:

- :func:`run_ghz`: the real ``ghz`` binary, when it is on PATH (its JSON report read back);
- :func:`run_aio`: several processes of grpc.aio clients (one event loop per
  process: one Python client saturates a core long before a server does);
- :func:`run_h2load`: nghttp2's ``h2load`` (C) sending pre-encoded gRPC frames
  over plaintext HTTP/2. It cannot present a client certificate (no mTLS)
  and does not read ``grpc-status`` trailers, so its answers count as OK when
  the HTTP status is 200; static data only (no templates).

Request data is protobuf JSON with ghz's template actions
(``{{.RequestNumber}}``, ``{{.WorkerID}}``, ``{{.UUID}}``, ``{{newUUID}}``,
``{{.TimestampUnix}}``, ``{{randomInt A B}}``), rendered per call.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import multiprocessing
import os
import pkgutil
import random
import re
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor

#: Python's status names -> ghz's (Go's ``codes.Code.String()``).
STATUS_NAMES = {
    code: "".join(part.capitalize() for part in code.name.split("_")) for code in grpc.StatusCode
}
STATUS_NAMES[grpc.StatusCode.CANCELLED] = "Canceled"
STATUS_NAMES[grpc.StatusCode.OK] = "OK"

_TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


class LoadError(Exception):
    """A mistake in what was asked (unknown method, bad data, missing tool)."""


@dataclass(frozen=True, slots=True)
class Tls:
    """Client TLS: ``cacert`` to trust the server; ``cert``/``key`` for mTLS."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    #: The name the server's certificate must carry (ghz ``--cname``).
    cname: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(read(self.cacert), read(self.key), read(self.cert))


@dataclass(frozen=True, slots=True)
class Options:
    target: str
    #: ``package.Service.Method`` or ``package.Service/Method``.
    call: str
    data: str = "{}"
    metadata: dict[str, str] = field(default_factory=dict)
    concurrency: int = 50
    total: int = 200
    #: Seconds; when set, ``total`` is ignored.
    duration: float | None = None
    rps: float = 0.0
    connections: int = 1
    timeout: float = 20.0
    #: None: plaintext (ghz ``--insecure``).
    tls: Tls | None = None
    processes: int = 0
    details: bool = False

    @property
    def path(self) -> str:
        service, method = split_call(self.call)
        return f"/{service}/{method}"


@dataclass(slots=True)
class Outcome:
    """Every call: latency (ns), status name, error text (empty when OK), start (ns)."""

    latencies: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    total_ns: int = 0
    generator: str = ""
    notes: list[str] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.latencies += other.latencies
        self.statuses += other.statuses
        self.errors += other.errors
        self.starts += other.starts

    @property
    def count(self) -> int:
        return len(self.latencies)

    def status_counts(self) -> Counter[str]:
        return Counter(self.statuses)


def split_call(call: str) -> tuple[str, str]:
    """``pkg.Service.Method`` / ``pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    if "/" in call:
        service, _, method = call.rpartition("/")
    else:
        service, _, method = call.rpartition(".")
    if not service or not method:
        raise LoadError(f"--call {call!r}: expected package.Service.Method")
    return service, method


def _load_descriptors() -> None:
    """Import every generated module, so the default pool knows every service."""
    import minequest

    for module in pkgutil.walk_packages(minequest.__path__, "minequest."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
    importlib.import_module("grpc_health.v1.health_pb2")


def find_method(call: str) -> MethodDescriptor:
    service_name, method_name = split_call(call)
    _load_descriptors()
    pool = descriptor_pool.Default()
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        raise LoadError(f"--call {call!r}: no service {service_name!r} in protos/") from None
    method = service.methods_by_name.get(method_name)
    if method is None:
        known = ", ".join(sorted(service.methods_by_name))
        raise LoadError(f"--call {call!r}: {service_name} has no {method_name} (has {known})")
    if method.client_streaming or method.server_streaming:
        raise LoadError(f"--call {call!r}: only unary methods are supported")
    return method


class Encoder:
    """Request bytes from the JSON data, rendered per call when it is a template."""

    def __init__(self, call: str, data: str) -> None:
        method = find_method(call)
        self.message_class = message_factory.GetMessageClass(method.input_type)
        self.data = data
        self.templated = bool(_TEMPLATE.search(data))
        self._static = b"" if self.templated else self._encode(data)

    def _encode(self, text: str) -> bytes:
        try:
            parsed = json.loads(text)
        except ValueError as error:
            raise LoadError(f"-d: not JSON ({error})") from None
        try:
            message = json_format.ParseDict(parsed, self.message_class())
        except json_format.ParseError as error:
            name = self.message_class.DESCRIPTOR.full_name
            raise LoadError(f"-d: not a {name}: {error}") from None
        return bytes(message.SerializeToString())

    def encode(self, number: int, worker: int) -> bytes:
        if not self.templated:
            return self._static
        return self._encode(render(self.data, number, worker))


def render(text: str, number: int, worker: int) -> str:
    """ghz's template actions in ``text``, for call ``number`` of ``worker``."""

    def action(match: re.Match[str]) -> str:
        words = match.group(1).split()
        name = words[0] if words else ""
        if name == ".RequestNumber":
            return str(number)
        if name == ".WorkerID":
            return f"w{worker}"
        if name in (".UUID", "newUUID"):
            return str(uuid.uuid4())
        if name == ".TimestampUnix":
            return str(int(time.time()))
        if name == ".TimestampUnixMilli":
            return str(int(time.time() * 1000))
        if name == "randomInt" and len(words) == 3:
            return str(random.randint(int(words[1]), int(words[2]) - 1))
        raise LoadError(f"-d: unknown template action {{{{{match.group(1)}}}}}")

    return _TEMPLATE.sub(action, text)


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: uncompressed flag, 4-byte length, bytes."""
    return struct.pack(">BI", 0, len(message)) + message


def error_text(code: grpc.StatusCode, details: str | None) -> str:
    """As ghz reports an error: ``rpc error: code = X desc = ...``."""
    return f"rpc error: code = {STATUS_NAMES[code]} desc = {details or ''}"


# --------------------------------------------------------------------------- grpc.aio


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def run_aio(options: Options) -> Outcome:
    """``options.processes`` processes (default: the core count) of grpc.aio clients."""
    Encoder(options.call, options.data)  # fail here, not in every child
    processes = max(1, min(options.processes or (os.cpu_count() or 1), options.concurrency))
    start_at = time.time() + 1.0 + 0.3 * processes  # after the spawned imports
    jobs = [(options, processes, index, start_at) for index in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        parts = pool.starmap(_aio_process, jobs)
    outcome = Outcome(generator=f"grpc.aio, {processes} client process(es)")
    first = min((min(part.starts) for part in parts if part.starts), default=0)
    last = max(
        (
            max(s + lat for s, lat in zip(part.starts, part.latencies, strict=True))
            for part in parts
            if part.starts
        ),
        default=0,
    )
    for part in parts:
        outcome.extend(part)
    outcome.total_ns = max(0, last - first)
    return outcome


def _aio_process(options: Options, processes: int, index: int, start_at: float) -> Outcome:
    return asyncio.run(_aio_load(options, processes, index, start_at))


async def _aio_load(options: Options, processes: int, index: int, start_at: float) -> Outcome:
    encoder = Encoder(options.call, options.data)
    workers = _share(options.concurrency, processes, index)
    connections = max(1, _share(options.connections, processes, index))
    total = None if options.duration else _share(options.total, processes, index)
    rate = options.rps / processes if options.rps else 0.0
    metadata = tuple((name.lower(), value) for name, value in options.metadata.items())
    channel_options: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
    if options.tls is not None and options.tls.cname:
        channel_options.append(("grpc.ssl_target_name_override", options.tls.cname))
    channels = [
        grpc.aio.secure_channel(options.target, options.tls.credentials(), channel_options)
        if options.tls is not None
        else grpc.aio.insecure_channel(options.target, channel_options)
        for _ in range(connections)
    ]
    outcome = Outcome()
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), timeout=options.timeout)
        calls: list[Any] = [
            channel.unary_unary(options.path, request_serializer=None, response_deserializer=None)
            for channel in channels
        ]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        begun = time.perf_counter()
        deadline = begun + options.duration if options.duration else None
        issued = 0

        async def worker(number: int) -> None:
            nonlocal issued
            call = calls[number % len(calls)]
            while True:
                if total is not None and issued >= total:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                sequence = issued
                issued += 1
                if rate:
                    wait = begun + sequence / rate - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                request = encoder.encode(sequence * processes + index, number)
                started = time.time_ns()
                clock = time.perf_counter_ns()
                try:
                    await call(request, timeout=options.timeout, metadata=metadata)
                    status, error = "OK", ""
                except grpc.aio.AioRpcError as failure:
                    status = STATUS_NAMES[failure.code()]
                    error = error_text(failure.code(), failure.details())
                outcome.latencies.append(time.perf_counter_ns() - clock)
                outcome.starts.append(started)
                outcome.statuses.append(status)
                outcome.errors.append(error)

        await asyncio.gather(*(worker(number) for number in range(workers)))
    finally:
        for channel in channels:
            await channel.close()
    return outcome


# --------------------------------------------------------------------------- h2load


def run_h2load(options: Options) -> Outcome:
    """h2load over plaintext HTTP/2 with one pre-encoded request frame."""
    if options.tls is not None:
        raise LoadError("h2load cannot present a client certificate: use --insecure or grpc")
    encoder = Encoder(options.call, options.data)
    if encoder.templated:
        raise LoadError("h2load sends one pre-encoded body: -d templates need the grpc generator")
    if options.rps:
        raise LoadError("h2load has no request rate limit (its -r is connections/s): use grpc")
    h2load = shutil.which("h2load")
    if h2load is None:
        raise LoadError("h2load not found: make bench-tools (Debian's nghttp2-client)")
    connections = max(1, options.connections)
    streams = max(1, -(-options.concurrency // connections))
    with tempfile.TemporaryDirectory(prefix="mq-h2load-") as folder:
        body = Path(folder) / "frame.bin"
        body.write_bytes(grpc_frame(encoder.encode(0, 0)))
        log = Path(folder) / "requests.tsv"
        command = [h2load, "-c", str(connections), "-m", str(streams)]
        command += ["-t", str(max(1, min(connections, os.cpu_count() or 1)))]
        if options.duration:
            command += ["-D", str(max(1, round(options.duration)))]
        else:
            command += ["-n", str(options.total)]
        command += ["-d", str(body), "--log-file", str(log)]
        command += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        for name, value in options.metadata.items():
            command += ["-H", f"{name.lower()}: {value}"]
        command.append(f"http://{options.target}{options.path}")
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=(options.duration or 600) + 60,
        )
        if done.returncode != 0 or not log.exists():
            raise LoadError(f"h2load failed ({done.returncode}): {done.stdout[-600:]}{done.stderr}")
        outcome = parse_h2load_log(log.read_text())
    outcome.generator = f"h2load, {connections} connection(s) x {streams} streams"
    outcome.notes.append("h2load: HTTP 200 counted as OK (it does not read grpc-status)")
    return outcome


def parse_h2load_log(text: str) -> Outcome:
    """``--log-file`` lines: start (µs since the epoch), HTTP status, µs to the end."""
    outcome = Outcome()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        start_us, status, elapsed_us = int(parts[0]), int(parts[1]), int(parts[2])
        outcome.starts.append(start_us * 1000)
        outcome.latencies.append(elapsed_us * 1000)
        ok = status == 200
        outcome.statuses.append("OK" if ok else "Unavailable")
        outcome.errors.append("" if ok else f"HTTP status {status}")
    if outcome.starts:
        outcome.total_ns = max(
            s + lat for s, lat in zip(outcome.starts, outcome.latencies, strict=True)
        ) - min(outcome.starts)
    return outcome


# --------------------------------------------------------------------------- ghz


def ghz_command(ghz: str, options: Options) -> list[str]:
    """The ghz command line for ``options`` (JSON report on stdout)."""
    command = [ghz, "--call", options.call, "-d", options.data]
    command += ["-c", str(options.concurrency), "--connections", str(options.connections)]
    command += ["-t", f"{options.timeout}s", "-O", "json"]
    command += ["-z", f"{options.duration}s"] if options.duration else ["-n", str(options.total)]
    if options.metadata:
        command += ["-m", json.dumps(options.metadata)]
    if options.rps:
        command += ["--rps", str(int(options.rps))]
    if options.tls is None:
        command.append("--insecure")
    else:
        for flag, value in (
            ("--cacert", options.tls.cacert),
            ("--cert", options.tls.cert),
            ("--key", options.tls.key),
            ("--cname", options.tls.cname),
        ):
            if value:
                command += [flag, value]
    return [*command, options.target]


def run_ghz(options: Options) -> dict[str, Any]:
    """The real ghz binary; its JSON report."""
    ghz = shutil.which("ghz")
    if ghz is None:
        raise LoadError("ghz not found on PATH")
    done = subprocess.run(
        ghz_command(ghz, options),
        capture_output=True,
        text=True,
        check=False,
        timeout=(options.duration or 600) + 60,
    )
    if done.returncode != 0:
        raise LoadError(f"ghz failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def outcome_for(options: Options, generator: str) -> Outcome:
    """``generator``: ``grpc`` or ``h2load``."""
    if generator == "h2load":
        return run_h2load(options)
    if generator == "grpc":
        return run_aio(options)
    raise LoadError(f"unknown generator {generator!r}")


def metadata_of(text: str | None) -> dict[str, str]:
    """ghz ``-m``: a JSON object of strings."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise LoadError(f"-m: not JSON ({error})") from None
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise LoadError('-m: expected a JSON object of strings, e.g. {"key":"value"}')
    return {str(name): value for name, value in value.items()}


def percentiles(values: Sequence[int], marks: Sequence[int]) -> list[int]:
    """Nearest-rank percentiles of ``values`` at ``marks`` (0-100)."""
    ordered = sorted(values)
    if not ordered:
        return [0 for _ in marks]
    return [
        ordered[min(len(ordered) - 1, max(0, -(-mark * len(ordered) // 100) - 1))] for mark in marks
    ]
