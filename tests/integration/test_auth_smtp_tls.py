"""OTP mail over STARTTLS: when the SMTP server offers it, the code travels
encrypted, and the server's certificate is checked against SMTP_CA_FILE."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from minequest.auth.v1 import auth_pb2, auth_pb2_grpc
from runtime.embedded import free_port
from runtime.errors import decode_rpc_error
from services.auth.settings import AuthSettings
from tests.integration.conftest import auth_channel, auth_settings

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
        self.deliveries.append((envelope.content.decode(), session.ssl is not None))
        return "250 OK"


@dataclass
class TlsSmtp:
    port: int
    mailbox: TlsMailbox
    ca_file: Path


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[TlsSmtp]:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox, port = TlsMailbox(), free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        yield TlsSmtp(port, mailbox, ca)
    finally:
        controller.stop()


async def request_code(settings: AuthSettings) -> grpc.aio.AioRpcError | None:
    async with auth_channel(settings) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await stub.Register(
            auth_pb2.RegisterRequest(
                wallet_address="0x52908400098527886e0f7030069857d2e4169ee7",
                email="tls@example.com",
            )
        )
        try:
            await stub.RequestOtp(auth_pb2.RequestOtpRequest(email="tls@example.com"))
        except grpc.aio.AioRpcError as error:
            return error
        return None


def settings_for(
    tmp_path: Path, mongodb_uri: str, database: str, port: int, **extra: str
) -> AuthSettings:
    return auth_settings(tmp_path, mongodb_uri, database, port, SMTP_TIMEOUT_SECONDS="5", **extra)


async def test_code_is_sent_over_starttls_to_a_trusted_server(
    tmp_path: Path, mongodb_uri: str, database_name: str, tls_smtp: TlsSmtp
):
    settings = settings_for(
        tmp_path, mongodb_uri, database_name, tls_smtp.port, SMTP_CA_FILE=str(tls_smtp.ca_file)
    )
    assert await request_code(settings) is None
    ((content, encrypted),) = tls_smtp.mailbox.deliveries
    assert encrypted, "the server offered STARTTLS, so the mail must travel encrypted"
    assert "Your Minequest login code is" in content


async def test_an_untrusted_certificate_is_refused(
    tmp_path: Path, mongodb_uri: str, database_name: str, tls_smtp: TlsSmtp
):
    settings = settings_for(tmp_path, mongodb_uri, database_name, tls_smtp.port)
    error = await request_code(settings)
    assert error is not None
    assert decode_rpc_error(error).reason == "delivery_failed"
    assert tls_smtp.mailbox.deliveries == []
