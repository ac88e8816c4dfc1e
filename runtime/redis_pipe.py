"""One pipelined Redis connection for scripts on a hot path.

The gateway's guard sends two ``EVALSHA`` per protected request and the
mining service one per click, and nothing else, so this is what a hot path
needs from a Redis client and no more: commands are packed by
``hiredis.pack_command``, written to one connection as they come (every
concurrent request shares it, and what is queued in one event-loop turn goes
out in one write: automatic pipelining) and replies are parsed by
``hiredis.Reader`` and handed back in order. Measured against
redis-py's asyncio client (pool, retry and health-check layers per call), it
cut the guard's client cost several times over; see the README benchmarks.
Everything else keeps using redis-py.

Redis that is *slow* is told apart from a busy event loop: a call fails when
``timeout`` passes with no byte from Redis, not merely because the loop was
late to read one. A dead Redis fails calls at once; reconnecting is tried
again at most every ``retry_interval`` so a dead server is not hammered.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import select
import ssl
import time
from typing import Any, cast

import hiredis
import redis.exceptions
from redis.asyncio.connection import SSLConnection, parse_url

__all__ = ["PipelineUnavailable", "PipelinedRedis"]


class PipelineUnavailable(redis.exceptions.ConnectionError):
    """Redis did not answer in time, or cannot be reached.

    A redis-py ``ConnectionError``, so a service's interceptor answers it
    UNAVAILABLE like any other store outage."""


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: Any) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.outbox: list[bytes] = []
        self.last_read = time.monotonic()
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)

    def send(self, command: bytes) -> None:
        """Queue a command; everything queued in one loop turn goes out in one write."""
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outbox.append(command)

    def flush(self) -> None:
        if self.transport is not None and self.outbox:
            self.transport.write(b"".join(self.outbox))
        self.outbox.clear()

    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = PipelineUnavailable(f"Redis connection lost: {exc or 'closed by the server'}")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        self._on_lost(self)


class PipelinedRedis:
    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        retry_interval_seconds: float = 0.25,
    ) -> None:
        options = parse_url(url)
        self._host: str = options.get("host", "localhost")
        self._port: int = int(options.get("port", 6379))
        self._path: str | None = options.get("path")
        self._ssl = options.get("connection_class") is SSLConnection
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        self._db = int(options.get("db", 0))
        self.timeout = timeout_seconds
        self._retry_interval = retry_interval_seconds
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._failed_at = 0.0
        self._failure = ""
        self._scripts: dict[bytes, bytes] = {}

    def script(self, source: str) -> bytes:
        """Register a script; returns its SHA1 for :meth:`evalsha`."""
        encoded = source.encode()
        sha = hashlib.sha1(encoded, usedforsecurity=False).hexdigest().encode()
        self._scripts[sha] = encoded
        return sha

    async def evalsha(self, sha: bytes, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script (loading it on NOSCRIPT); its reply, or
        :class:`PipelineUnavailable`."""
        command = _pack(b"EVALSHA", sha, len(keys), *keys, *args)
        reply = await self._call(command)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            await self._call(_pack(b"SCRIPT", b"LOAD", self._scripts[sha]))
            reply = await self._call(command)
        if isinstance(reply, hiredis.ReplyError):
            raise PipelineUnavailable(f"Redis refused the script: {reply}")
        return reply

    async def execute(self, *parts: Any) -> Any:
        """Run one command (``"HGETALL", key``); its reply, or
        :class:`PipelineUnavailable` (a refusal too)."""
        reply = await self._call(_pack(*parts))
        if isinstance(reply, hiredis.ReplyError):
            raise PipelineUnavailable(f"Redis refused {parts[0]!r}: {reply}")
        return reply

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()

    async def _call(self, command: bytes) -> Any:
        return await self._request(self._protocol or await self._connect(), command)

    async def _request(self, protocol: _Protocol, command: bytes) -> Any:
        """Queue ``command`` on ``protocol`` and wait for its reply (or the timeout)."""
        if protocol.transport is None:
            raise PipelineUnavailable("Redis connection lost")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append(future)
        protocol.send(command)
        handle = loop.call_later(self.timeout, self._expire, protocol, future)
        try:
            return await future
        finally:
            handle.cancel()

    def _expire(self, protocol: _Protocol, future: asyncio.Future[Any]) -> None:
        """A call's time is up. Fail it if Redis has been silent that long; if
        Redis kept answering (this loop was busy, and our reply is queued
        behind others'), give it until Redis has been silent ``timeout``."""
        if future.done():
            return
        silent = time.monotonic() - protocol.last_read
        if silent >= self.timeout and _readable(protocol):
            silent = 0.0  # an answer is waiting to be read: the loop was late, not Redis
        if silent >= self.timeout or protocol.transport is None:
            future.set_exception(
                PipelineUnavailable(f"Redis did not answer within {self.timeout * 1000:.0f} ms")
            )
            return
        asyncio.get_running_loop().call_later(self.timeout - silent, self._expire, protocol, future)

    async def _connect(self) -> _Protocol:
        if self._connecting is None or self._connecting.done():
            if time.monotonic() - self._failed_at < self._retry_interval:
                raise PipelineUnavailable(self._failure)
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        except PipelineUnavailable:
            raise
        except (OSError, TimeoutError) as error:
            raise PipelineUnavailable(f"cannot reach Redis: {error}") from error

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(self._lost)
        try:
            async with asyncio.timeout(max(self.timeout, 0.05) * 4):
                if self._path:
                    await loop.create_unix_connection(lambda: protocol, self._path)
                else:
                    await loop.create_connection(
                        lambda: protocol,
                        self._host,
                        self._port,
                        ssl=ssl.create_default_context() if self._ssl else None,
                    )
            setup: list[tuple[bytes | str | int, ...]] = []
            if self._password:
                auth = (self._username, self._password) if self._username else (self._password,)
                setup.append((b"AUTH", *auth))
            if self._db:
                setup.append((b"SELECT", self._db))
            for command in setup:
                reply = await self._request(protocol, _pack(*command))
                if isinstance(reply, hiredis.ReplyError):
                    raise PipelineUnavailable(f"Redis refused {command[0]!r}: {reply}")
        except BaseException as error:
            if protocol.transport is not None:
                protocol.transport.close()
            self._failed_at = time.monotonic()
            self._failure = f"cannot reach Redis: {error or type(error).__name__}"
            raise
        self._protocol = protocol
        return protocol

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None


def _pack(*parts: Any) -> bytes:
    # hiredis's stub types the argument as a 1-tuple; a tuple of any length works.
    packed: bytes = hiredis.pack_command(parts)
    return packed


def _readable(protocol: _Protocol) -> bool:
    """Whether bytes from Redis wait in the socket: in case the loop runs a due
    timer before it reads a socket that became ready meanwhile (libuv's order)."""
    transport = protocol.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)
