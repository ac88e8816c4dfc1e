"""uvicorn's httptools protocol with a bound on the request head: 431 above it.

uvicorn (with httptools) accepts a request head of any size: an 8 MiB header
or 20,000 headers are parsed, held in memory and handed to the app. This
subclass counts the request line and headers as they are parsed, and the raw
bytes of a head not finished yet (httptools holds a header until it is
whole), and answers ``431 Request Header Fields Too Large`` (problem+json
``headers_too_large``) and closes the connection once either bound is
passed: ``MAX_HEADER_BYTES`` (default 16 KiB, as Node.js) or
``MAX_HEADER_COUNT`` (default 100). The app never sees such a request.

It replaces :meth:`data_received` of uvicorn's class, so it is tied to the
pinned uvicorn version; ``tests/integration/test_gateway_http_server.py``
drives it over real sockets.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runtime.log import Throttle

__all__ = ["limited_protocol"]

log = logging.getLogger(__name__)
_LOG_THROTTLE = Throttle(5.0)


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the head passed a bound."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = 16_384
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False
        self._head_bytes = 0
        self._raw_head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0
        self._raw_head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if len(self.headers) >= self.max_headers:
            raise _HeadTooLarge(f"more than {self.max_headers} headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            raise _HeadTooLarge(f"the request head exceeds {self.max_head_bytes} bytes")

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadTooLarge):
                self._refuse(str(error.__context__))
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_open:
            # The whole chunk was head: a header still being received counts too.
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self.max_head_bytes:
                self._refuse(f"the request head exceeds {self.max_head_bytes} bytes")

    def _bad_request(self) -> None:
        held = _LOG_THROTTLE.allow("bad")
        if held is not None:
            log.warning("invalid HTTP request received", extra={"held": held})
        self.send_400_response("Invalid HTTP request received.")

    def _refuse(self, detail: str) -> None:
        held = _LOG_THROTTLE.allow("431")
        if held is not None:
            log.warning("request head too large: %s", detail, extra={"held": held})
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Request Header Fields Too Large",
                "status": 431,
                "error": "headers_too_large",
                "detail": detail,
            },
            separators=(",", ":"),
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()


def limited_protocol(max_head_bytes: int, max_headers: int) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these bounds."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "max_headers": max_headers},
    )
