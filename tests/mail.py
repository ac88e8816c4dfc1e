"""A real SMTP server for tests: aiosmtpd with a handler that keeps every
message and lets sync and async tests wait for one; readers of what a code
mail carries (the 6-digit code, the login key, the link); and waits for the
auth service's background sender.

The server speaks plaintext (no STARTTLS): a service mailing it needs
``SMTP_SECURITY=none``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY

from runtime.embedded import free_port


class Mailbox:
    """An aiosmtpd handler that keeps every message and lets tests wait for one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append((list(envelope.rcpt_tos), message))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, recipient: str, *, count: int = 1, timeout: float = 15.0) -> EmailMessage:
        """The ``count``-th message to ``recipient``, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                mine = [msg for rcpts, msg in self.messages if recipient in rcpts]
                if len(mine) >= count:
                    return mine[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail #{count} for {recipient} within {timeout}s")
                self._arrived.wait(left)

    async def arrival(
        self, recipient: str, *, count: int = 1, within: float = 15.0
    ) -> EmailMessage:
        """:meth:`wait_for` for async tests (waits in a worker thread)."""
        return await asyncio.to_thread(self.wait_for, recipient, count=count, timeout=within)

    def code_for(self, recipient: str, *, count: int = 1) -> str:
        """The 6-digit one-time code in a mail to ``recipient``."""
        return self.code_in(self.wait_for(recipient, count=count))

    @staticmethod
    def code_in(message: EmailMessage) -> str:
        """The 6-digit one-time code in ``message``."""
        body = message.get_body(preferencelist=("plain",))
        text = f"{message['Subject']}\n{body.get_content() if body else ''}"
        match = re.search(r"\b(\d{6})\b", text)
        assert match, f"no 6-digit code in the mail: {text!r}"
        return match.group(1)

    @staticmethod
    def key_in(message: EmailMessage) -> str:
        """The one-time login key in ``message``."""
        body = message.get_body(preferencelist=("plain",))
        match = re.search(r"^login key: (\S+)\s*$", body.get_content() if body else "", re.M)
        assert match, "no login key in the mail"
        return match.group(1)

    @staticmethod
    def link_in(message: EmailMessage) -> str | None:
        """The login link in ``message``, if it has one."""
        body = message.get_body(preferencelist=("plain",))
        match = re.search(r"^(https?://\S+)\s*$", body.get_content() if body else "", re.M)
        return match.group(1) if match else None


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """An aiosmtpd server on a free port of 127.0.0.1, stopped on exit."""
    handler = Mailbox(free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


def delivery_failures(reason: str) -> float:
    """``auth_otp_delivery_failures_total{reason}`` in this process so far."""
    value = REGISTRY.get_sample_value("auth_otp_delivery_failures_total", {"reason": reason})
    return value or 0.0


async def until(condition: Callable[[], bool], *, within: float = 15.0) -> None:
    """Wait until ``condition()`` holds (a background send finished)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(0.02)
