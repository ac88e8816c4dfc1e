"""The gateway's HTTP server bounds the request head: real uvicorn, real sockets.

``python -m gateway`` serves with :func:`gateway.http_server.limited_protocol`;
here the same protocol class runs in a uvicorn server on a free port in front
of an app that records what reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from gateway.http_server import limited_protocol
from runtime.embedded import free_port

pytestmark = pytest.mark.integration


class App:
    def __init__(self) -> None:
        self.seen = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.seen += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def serving(app: App) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=limited_protocol(4096, 20),
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # the server has no event to wait on; 5 s at most
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` (possibly huge) and read the answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def refused_with_431(answer: bytes) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    problem: dict[str, Any] = json.loads(body)
    assert problem["error"] == "headers_too_large"
    return problem


async def test_a_normal_request_passes() -> None:
    app = App()
    async with serving(app) as port:
        answer = await exchange(
            port, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nConnection: close\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert app.seen == 1


async def test_one_huge_header_is_a_431_and_never_reaches_the_app() -> None:
    app = App()
    async with serving(app) as port:
        answer = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000)
    assert "exceeds 4096 bytes" in refused_with_431(answer)["detail"]
    assert app.seen == 0


async def test_headers_that_add_up_are_a_431() -> None:
    app = App()
    lines = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 300) for n in range(15))
    async with serving(app) as port:
        answer = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    refused_with_431(answer)
    assert app.seen == 0


async def test_too_many_headers_are_a_431() -> None:
    app = App()
    lines = b"".join(b"X-%d: 1\r\n" % n for n in range(25))
    async with serving(app) as port:
        answer = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert "more than 20 headers" in refused_with_431(answer)["detail"]
    assert app.seen == 0


async def test_a_huge_url_is_a_431() -> None:
    app = App()
    async with serving(app) as port:
        answer = await exchange(port, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    refused_with_431(answer)
    assert app.seen == 0


async def test_a_body_in_the_same_packet_does_not_count_as_head() -> None:
    app = App()
    body = b"x" * 60_000
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    async with serving(app) as port:
        answer = await exchange(port, request + body)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert app.seen == 1


async def test_garbage_is_still_a_400() -> None:
    app = App()
    async with serving(app) as port:
        answer = await exchange(port, b"\x00\x01 not http\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert app.seen == 0
