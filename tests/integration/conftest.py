"""Fixtures for service integration tests: a real SMTP server and real gRPC
servers on port 0, backed by the session's real Redis and MongoDB-wire servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from runtime.embedded import free_port


@dataclass
class Mailbox:
    """Collects every message a real aiosmtpd server receives."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    async def wait_for(self, recipient: str, count: int = 1, within: float = 5.0) -> Message:
        async with asyncio.timeout(within):
            while True:
                found = [m for m in self.messages if m["To"] == recipient]
                if len(found) >= count:
                    return found[count - 1]
                await asyncio.sleep(0.02)

    @staticmethod
    def code_in(message: Message) -> str:
        body = message.get_payload(decode=True)
        assert isinstance(body, bytes)
        match = re.search(r"\b(\d{6})\b", body.decode())
        assert match, "no 6-digit code in the mail"
        return match.group(1)


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()
