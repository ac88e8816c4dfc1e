"""Mutual TLS between Minequest processes: settings, credentials, peer identity.

Every process has its own certificate, and that certificate's common name
is its identity (``gateway``, ``wallet``, ``mining-worker``, ...; see
``tools/pki.py``). Three variables, read once at start, configure it::

    GRPC_TLS_CA_FILE     the CA that issued every internal certificate (PEM)
    GRPC_TLS_CERT_FILE   this process's certificate (PEM)
    GRPC_TLS_KEY_FILE    its private key (PEM, unencrypted, keep it 0600)

All three, or none. None: internal gRPC is plaintext and nobody is
authenticated, so servers let every caller call everything; the process
says so in one warning line, and refuses to start when ``MINEQUEST_ENV=production``.
Any mistake (a file missing, not PEM, a key of another certificate, a
certificate another CA issued or that has expired) stops the process at
start with :class:`~runtime.config.ConfigError` naming the variable.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from runtime.config import ENVIRONMENT_VAR, ConfigError, Env, is_production

__all__ = [
    "CA_FILE_VAR",
    "CERT_FILE_VAR",
    "KEY_FILE_VAR",
    "TlsSettings",
    "announce",
    "channel_credentials",
    "load_tls",
    "peer_identity",
    "require_identity",
    "server_credentials",
    "target_options",
]

log = logging.getLogger(__name__)

CA_FILE_VAR = "GRPC_TLS_CA_FILE"
CERT_FILE_VAR = "GRPC_TLS_CERT_FILE"
KEY_FILE_VAR = "GRPC_TLS_KEY_FILE"
_VARIABLES = (CA_FILE_VAR, CERT_FILE_VAR, KEY_FILE_VAR)
#: A certificate this close to its end gets a warning at start.
_EXPIRY_WARNING = dt.timedelta(days=14)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """This process's identity and the CA it trusts, read and checked at start."""

    #: The certificate's common name: who this process is to its peers.
    identity: str
    ca_pem: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    cert_file: str
    not_after: dt.datetime


def load_tls(env: Env, *, now: dt.datetime | None = None) -> TlsSettings | None:
    """The ``GRPC_TLS_*`` settings; None when all three are unset (plaintext),
    which production refuses."""
    paths = {name: env.optional(name) for name in _VARIABLES}
    given = [name for name, value in paths.items() if value is not None]
    if not given:
        if is_production(env):
            raise ConfigError(
                CA_FILE_VAR,
                f"{', '.join(_VARIABLES)} are required when {ENVIRONMENT_VAR}=production "
                "(internal gRPC must be mutual TLS)",
            )
        return None
    for name in _VARIABLES:
        if paths[name] is None:
            raise ConfigError(
                name, f"is required with {', '.join(given)} (set all three GRPC_TLS_* or none)"
            )
    data = {name: _read(name, str(paths[name])) for name in _VARIABLES}
    ca = _certificate(CA_FILE_VAR, data[CA_FILE_VAR])
    cert = _certificate(CERT_FILE_VAR, data[CERT_FILE_VAR])
    try:
        key = serialization.load_pem_private_key(data[KEY_FILE_VAR], password=None)
    except (ValueError, TypeError):
        raise ConfigError(KEY_FILE_VAR, "is not an unencrypted PEM private key") from None
    if key.public_key() != cert.public_key():
        raise ConfigError(KEY_FILE_VAR, f"is not the key of the certificate in {CERT_FILE_VAR}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ConfigError(
            CERT_FILE_VAR, f"was not issued by the CA in {CA_FILE_VAR} (regenerate both together)"
        ) from None
    now = now or dt.datetime.now(dt.UTC)
    for name, checked in ((CA_FILE_VAR, ca), (CERT_FILE_VAR, cert)):
        if not checked.not_valid_before_utc <= now <= checked.not_valid_after_utc:
            raise ConfigError(
                name,
                f"is valid from {checked.not_valid_before_utc:%Y-%m-%d} to "
                f"{checked.not_valid_after_utc:%Y-%m-%d}, not now (renew it: python -m tools.pki)",
            )
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str) or not names[0].value:
        raise ConfigError(CERT_FILE_VAR, "needs exactly one common name: the process's identity")
    return TlsSettings(
        identity=names[0].value,
        ca_pem=data[CA_FILE_VAR],
        cert_pem=data[CERT_FILE_VAR],
        key_pem=data[KEY_FILE_VAR],
        cert_file=str(paths[CERT_FILE_VAR]),
        not_after=min(cert.not_valid_after_utc, ca.not_valid_after_utc),
    )


def _read(name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(name, f"cannot read {path}: {error.strerror}") from None


def _certificate(name: str, data: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ConfigError(name, "is not a PEM certificate") from None


def require_identity(tls: TlsSettings | None, expected: str) -> None:
    """Refuse (ConfigError) a certificate made for another process."""
    if tls is not None and tls.identity != expected:
        raise ConfigError(
            CERT_FILE_VAR,
            f"{tls.cert_file} is {tls.identity!r}'s certificate; this process is {expected!r}",
        )


@functools.cache
def announce(tls: TlsSettings | None) -> None:
    """Say once per process how internal gRPC is secured (a warning when it is not)."""
    if tls is None:
        log.warning(
            "internal gRPC is not authenticated: GRPC_TLS_* are unset, so calls are "
            "plaintext and servers allow every caller every method (development only)"
        )
        return
    remaining = tls.not_after - dt.datetime.now(dt.UTC)
    level = logging.WARNING if remaining < _EXPIRY_WARNING else logging.INFO
    log.log(
        level,
        "internal gRPC is mutual TLS",
        extra={"identity": tls.identity, "certificate_valid_until": tls.not_after.isoformat()},
    )


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """Serve with our certificate; only clients with a certificate from our CA connect."""
    return grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
    )


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials:
    """Present our certificate; trust only servers our CA issued."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
    )


def target_options(server_identity: str) -> list[tuple[str, Any]]:
    """Channel options that make the server's certificate have to name
    ``server_identity``, whatever address is dialled (``dns:///wallet:50053``,
    ``127.0.0.1:…``, a Kubernetes name)."""
    return [("grpc.ssl_target_name_override", server_identity)]


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The verified caller's identity (its certificate's common name), from
    ``ServicerContext.auth_context()``; None on a plaintext connection."""
    names = list(auth_context.get("x509_common_name") or ())
    if len(names) != 1:
        return None
    value = names[0]
    return value.decode() if isinstance(value, bytes) else str(value)
