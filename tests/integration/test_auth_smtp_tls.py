"""OTP mail and SMTP_SECURITY: STARTTLS is required by default (a server that
does not offer it gets nothing), implicit TLS works, plaintext only when
chosen; the server's certificate is checked against SMTP_CA_FILE. A failed
send never answers the request (it runs in the background): it is counted
and logged, and the mail is simply not delivered."""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.embedded import free_port
from services.auth.settings import AuthSettings
from tests.integration.conftest import auth_channel, auth_settings
from tests.mail import delivery_failures

pytestmark = pytest.mark.integration


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Minequest test CA"))
        .issuer_name(_name("Minequest test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "smtp.pem", folder / "smtp.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@dataclass
class TlsMailbox:
    """Records each message and whether its session was encrypted."""

    deliveries: list[tuple[str, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        implicit = server.transport.get_extra_info("sslcontext") is not None
        self.deliveries.append((envelope.content.decode(), session.ssl is not None or implicit))
        return "250 OK"


@dataclass
class TlsSmtp:
    port: int
    mailbox: TlsMailbox
    ca_file: Path


@contextmanager
def tls_controller(
    folder: Path, *, starttls: bool = True, implicit: bool = False
) -> Iterator[TlsSmtp]:
    """aiosmtpd on a free port: requiring STARTTLS, speaking implicit TLS, or
    (both False) plaintext only, offering no STARTTLS at all."""
    ca, cert, key = make_ca_and_server_cert(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox, port = TlsMailbox(), free_port()
    if implicit:
        options: dict[str, Any] = {"ssl_context": context}
    elif starttls:
        options = {"tls_context": context, "require_starttls": True}
    else:
        options = {}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield TlsSmtp(port, mailbox, ca)
    finally:
        controller.stop()


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[TlsSmtp]:
    with tls_controller(tmp_path) as server:
        yield server


@pytest.fixture
def plain_smtp(tmp_path: Path) -> Iterator[TlsSmtp]:
    """A server that does not offer STARTTLS."""
    with tls_controller(tmp_path, starttls=False) as server:
        yield server


async def request_code(settings: AuthSettings) -> None:
    """Register, ask for a code, and stop the service: leaving it waits for the
    background sender, so the mail has been delivered (or has failed) after."""
    async with auth_channel(settings) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await stub.Register(
            auth_pb2.RegisterRequest(
                wallet_address="0x52908400098527886e0f7030069857d2e4169ee7",
                email="tls@example.com",
            )
        )
        await stub.RequestOtp(auth_pb2.RequestOtpRequest(email="tls@example.com"))


def settings_for(
    tmp_path: Path, mongodb_uri: str, database: str, port: int, **extra: str
) -> AuthSettings:
    """Settings whose SMTP_SECURITY is the default unless ``extra`` sets it."""
    extra = {"SMTP_SECURITY": "", **extra}
    return auth_settings(tmp_path, mongodb_uri, database, port, SMTP_TIMEOUT_SECONDS="5", **extra)


async def test_code_is_sent_over_starttls_to_a_trusted_server(
    tmp_path: Path, mongodb_uri: str, database_name: str, tls_smtp: TlsSmtp
):
    settings = settings_for(
        tmp_path, mongodb_uri, database_name, tls_smtp.port, SMTP_CA_FILE=str(tls_smtp.ca_file)
    )
    assert settings.smtp is not None
    assert settings.smtp.security == "starttls"
    await request_code(settings)
    ((content, encrypted),) = tls_smtp.mailbox.deliveries
    assert encrypted, "the server offered STARTTLS, so the mail must travel encrypted"
    assert "Your Minequest login code is" in content


async def test_an_untrusted_certificate_is_not_delivered_and_is_counted(
    tmp_path: Path,
    mongodb_uri: str,
    database_name: str,
    tls_smtp: TlsSmtp,
    caplog: pytest.LogCaptureFixture,
):
    settings = settings_for(tmp_path, mongodb_uri, database_name, tls_smtp.port)
    before = delivery_failures("tls")
    with caplog.at_level(logging.WARNING, logger="services.auth.delivery"):
        await request_code(settings)  # answered like any other request: no 503
    assert tls_smtp.mailbox.deliveries == []
    assert delivery_failures("tls") == before + 1
    assert [vars(r)["reason"] for r in caplog.records if r.msg == "otp delivery failed"] == ["tls"]


async def test_a_server_without_starttls_gets_nothing_by_default(
    tmp_path: Path, mongodb_uri: str, database_name: str, plain_smtp: TlsSmtp
):
    settings = settings_for(tmp_path, mongodb_uri, database_name, plain_smtp.port)
    before = delivery_failures("tls")
    await request_code(settings)
    assert plain_smtp.mailbox.deliveries == [], "no STARTTLS offered: nothing is sent in clear"
    assert delivery_failures("tls") == before + 1


async def test_plaintext_smtp_must_be_chosen_explicitly(
    tmp_path: Path, mongodb_uri: str, database_name: str, plain_smtp: TlsSmtp
):
    settings = settings_for(
        tmp_path, mongodb_uri, database_name, plain_smtp.port, SMTP_SECURITY="none"
    )
    await request_code(settings)
    ((content, encrypted),) = plain_smtp.mailbox.deliveries
    assert not encrypted
    assert "Your Minequest login code is" in content


async def test_implicit_tls_delivers_encrypted(
    tmp_path: Path, mongodb_uri: str, database_name: str
):
    with tls_controller(tmp_path, implicit=True) as server:
        settings = settings_for(
            tmp_path,
            mongodb_uri,
            database_name,
            server.port,
            SMTP_SECURITY="tls",
            SMTP_CA_FILE=str(server.ca_file),
        )
        await request_code(settings)
        ((_, encrypted),) = server.mailbox.deliveries
    assert encrypted
