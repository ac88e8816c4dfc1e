"""The internal PKI: one CA and a certificate per process identity, for mutual TLS.

``python -m tools.pki --dir DIR [--names NAME ...]`` (``make dev``, the e2e
stack and compose's one-shot ``pki`` service call :func:`ensure`) writes::

    DIR/ca/ca.pem, DIR/ca/ca-key.pem       the CA (its key never leaves DIR/ca)
    DIR/<name>/ca.pem                      the CA certificate, to trust peers
    DIR/<name>/cert.pem, DIR/<name>/key.pem   the identity's certificate and key

One directory per identity, so a deployment can hand each process its own
directory (compose: one volume each) and nothing else: no process can read
another's key or the CA key. An identity is the certificate's common name
and a DNS subject alternative name equal to it (``wallet``); the services
(``runtime.config.SERVICE_PORTS``) also get ``localhost`` and ``127.0.0.1``
and may serve, the others (``gateway``, ``mining-worker``) are clients only.

Keys are ECDSA P-256 (what BoringSSL, inside grpcio, handles best), files
0600. Idempotent: files that are valid, match the CA and are not about to
expire are kept; anything else is issued again (a new CA reissues every
identity). Leaves live one year, the CA five; both are renewed within
:data:`RENEW_BEFORE` of their end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runtime.config import SERVICE_PORTS
from runtime.tls import CA_FILE_VAR, CERT_FILE_VAR, KEY_FILE_VAR

#: Every identity Minequest runs: the gRPC services, the gateway and the click worker.
SERVERS: tuple[str, ...] = tuple(SERVICE_PORTS)
IDENTITIES: tuple[str, ...] = ("gateway", *SERVERS, "mining-worker")
CA_DIR = "ca"
LEAF_DAYS = 365
CA_DAYS = 5 * 365
RENEW_BEFORE = dt.timedelta(days=30)
_CA_NAME = "Minequest internal CA"


@dataclass(frozen=True, slots=True)
class IdentityFiles:
    """Where one identity's files are."""

    ca: Path
    cert: Path
    key: Path

    def env(self) -> dict[str, str]:
        """The ``GRPC_TLS_*`` variables that make a process this identity."""
        return {
            CA_FILE_VAR: str(self.ca),
            CERT_FILE_VAR: str(self.cert),
            KEY_FILE_VAR: str(self.key),
        }


def identity_files(directory: Path, name: str) -> IdentityFiles:
    folder = directory / name
    return IdentityFiles(ca=folder / "ca.pem", cert=folder / "cert.pem", key=folder / "key.pem")


def ensure(
    directory: Path, names: Iterable[str] = IDENTITIES, *, now: dt.datetime | None = None
) -> list[str]:
    """Create or reuse the CA and every identity under ``directory``; the names
    (``ca`` included) that were issued now."""
    now = now or dt.datetime.now(dt.UTC)
    issued: list[str] = []
    ca_cert, ca_key, fresh = _ca(directory / CA_DIR, now)
    if fresh:
        issued.append(CA_DIR)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    for name in names:
        _check_name(name)
        files = identity_files(directory, name)
        files.cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _read(files.ca) != ca_pem:
            _write(files.ca, ca_pem, 0o644)
        if _leaf_ok(files, name, ca_cert, now):
            files.key.chmod(0o600)
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(name, key, ca_cert, ca_key, now)
        _write(files.key, _key_pem(key), 0o600)
        _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        issued.append(name)
    return issued


def _check_name(name: str) -> None:
    if not name or name == CA_DIR or not all(c.isalnum() or c == "-" for c in name):
        raise ValueError(f"identity {name!r}: letters, digits and '-' only (and not {CA_DIR!r})")


def _ca(
    folder: Path, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    loaded = _load_pair(cert_path, key_path)
    if loaded is not None:
        cert, key = loaded
        if _fresh(cert, now) and _is_ca(cert):
            key_path.chmod(0o600)
            return cert, key, False
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key, True


def _leaf(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> x509.Certificate:
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if name in SERVERS:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(_sans(name)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _sans(name: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    if name in SERVERS:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    return names


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_ok(files: IdentityFiles, name: str, ca: x509.Certificate, now: dt.datetime) -> bool:
    loaded = _load_pair(files.cert, files.key)
    if loaded is None:
        return False
    cert, _ = loaded
    try:
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    common = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return common == [name] and list(sans) == _sans(name) and _fresh(cert, now)


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """A certificate and its own EC key, or None when either is missing or wrong."""
    cert_pem, key_pem = _read(cert_path), _read(key_path)
    if cert_pem is None or key_pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically; the file never exists with a looser mode."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)  # the umask may have narrowed 0644
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.pki", description="create or renew the internal mTLS certificates"
    )
    parser.add_argument("--dir", required=True, type=Path, help="where the CA and identities live")
    parser.add_argument(
        "--names", nargs="+", default=list(IDENTITIES), help="identities to issue (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        issued = ensure(args.dir, args.names)
    except (OSError, ValueError) as error:
        print(f"pki: {error}", file=sys.stderr)
        return 2
    kept = [name for name in args.names if name not in issued]
    print(
        f"pki: {args.dir}: issued {', '.join(issued) or 'nothing'}; "
        f"kept {', '.join(kept) or 'nothing'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
