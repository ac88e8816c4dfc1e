"""The Ed25519 signing key, access tokens (JWT, EdDSA) and the JWK set.

The private key lives in a PEM file (``AUTH_JWT_PRIVATE_KEY_FILE``), never in
the repo. With ``AUTH_JWT_GENERATE_KEY=true`` a missing file is created once
(mode 0600) — what ``make dev`` and compose do; production provides its own.
The key id (``kid``) is the RFC 7638 thumbprint of the public key.
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.config import ConfigError

log = logging.getLogger(__name__)

KEY_VARIABLE = "AUTH_JWT_PRIVATE_KEY_FILE"


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


class SigningKey:
    """One Ed25519 key: signs access tokens and publishes its JWK."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = _b64url(raw)
        thumbprint = json.dumps(
            {"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True
        )
        self.jwk = PublicJwk(
            kty="OKP", crv="Ed25519", x=x, kid=_b64url(hashlib.sha256(thumbprint.encode()).digest())
        )

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
