"""Fixtures for service integration tests: a real SMTP server; the real Redis
and MongoDB-wire servers come from the session fixtures in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.mail import Mailbox, smtp_server


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


@pytest.fixture(name="smtp_server")
def _smtp_server() -> Iterator[SmtpServer]:
    with smtp_server() as mailbox:
        yield SmtpServer("127.0.0.1", mailbox.port, mailbox)
