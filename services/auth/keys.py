"""The Ed25519 signing key, access tokens (JWT, EdDSA) and the JWK set.

The private key lives in a PEM file (``AUTH_JWT_PRIVATE_KEY_FILE``), never in
the repo. With ``AUTH_JWT_GENERATE_KEY=true`` a missing file is created once
(mode 0600) — what ``make dev`` and compose do; production provides its own.
The key id (``kid``) is the RFC 7638 thumbprint of the public key.

Rotation: ``AUTH_JWT_VERIFY_KEY_FILES`` lists more PEM files (private or
public Ed25519 keys) whose public keys are published in the JWK set beside
the signing key but never sign. Deploy the new signing key with the old one
listed there; once the access-token TTL has passed, remove it from the list.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from runtime.config import ConfigError

log = logging.getLogger(__name__)

KEY_VARIABLE = "AUTH_JWT_PRIVATE_KEY_FILE"
VERIFY_KEYS_VARIABLE = "AUTH_JWT_VERIFY_KEY_FILES"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class PublicJwk:
    kty: str
    crv: str
    x: str
    kid: str
    alg: str = "EdDSA"
    use: str = "sig"


def public_jwk(public_key: Ed25519PublicKey) -> PublicJwk:
    """The OKP JWK of ``public_key``, its kid the RFC 7638 thumbprint."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = _b64url(raw)
    thumbprint = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True
    )
    return PublicJwk(
        kty="OKP", crv="Ed25519", x=x, kid=_b64url(hashlib.sha256(thumbprint.encode()).digest())
    )


class SigningKey:
    """One Ed25519 key: signs access tokens and publishes its JWK."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.jwk = public_jwk(private_key.public_key())

    @property
    def kid(self) -> str:
        return self.jwk.kid

    def sign_access_token(
        self,
        *,
        user_id: str,
        role: str,
        session_id: str,
        issuer: str,
        audience: str,
        now: datetime,
        ttl_seconds: int,
    ) -> str:
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": user_id,
            "role": role,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self._private, algorithm="EdDSA", headers={"kid": self.kid, "typ": "JWT"}
        )


def load_signing_key(path: Path, *, generate: bool) -> SigningKey:
    """Read the PEM key; create it first when missing and ``generate`` is set."""
    if not path.exists():
        if not generate:
            raise ConfigError(
                KEY_VARIABLE,
                f"{path} does not exist (set AUTH_JWT_GENERATE_KEY=true to create one)",
            )
        _generate(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(
            KEY_VARIABLE, f"cannot read a PEM private key from {path}: {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(KEY_VARIABLE, f"{path} is not an Ed25519 key")
    return SigningKey(key)


def _generate(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another replica created it first
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    log.warning("generated a new JWT signing key", extra={"path": str(path)})


def load_verify_keys(paths: tuple[Path, ...]) -> tuple[PublicJwk, ...]:
    """The public JWKs of the verify-only key files (private or public PEM)."""
    found: list[PublicJwk] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ConfigError(
                VERIFY_KEYS_VARIABLE, f"cannot read {path}: {error.strerror}"
            ) from None
        public: object
        try:
            public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            try:
                private = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError) as error:
                raise ConfigError(
                    VERIFY_KEYS_VARIABLE, f"cannot read a PEM key from {path}: {error}"
                ) from None
            public = private.public_key()
        if not isinstance(public, Ed25519PublicKey):
            raise ConfigError(VERIFY_KEYS_VARIABLE, f"{path} is not an Ed25519 key")
        found.append(public_jwk(public))
    return tuple(found)


def jwk_set(signing: SigningKey, verify_only: tuple[PublicJwk, ...]) -> tuple[PublicJwk, ...]:
    """The published keys: the signing key first, then each verify-only key once."""
    keys = {signing.kid: signing.jwk}
    for jwk in verify_only:
        keys.setdefault(jwk.kid, jwk)
    return tuple(keys.values())
