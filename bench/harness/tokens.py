"""Access tokens for many users, signed as the auth service signs them."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Credentials:
    tokens: tuple[str, ...]
    user_ids: tuple[str, ...]
    #: One token per line, for the wrk scripts.
    tokens_file: Path
    public_key_file: Path


def mint_tokens(key_file: Path, users: int, work: Path, ttl_seconds: int = 3600) -> Credentials:
    """Access tokens signed with the key in ``key_file`` (generated when
    missing, as the auth service does)."""
    from cryptography.hazmat.primitives import serialization

    from services.auth.keys import load_signing_key

    logging.getLogger("services.auth.keys").setLevel(logging.ERROR)  # "generated a key"
    signing = load_signing_key(key_file, generate=True)
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_key_file = work / "jwt-public.pem"
    public_key_file.write_bytes(public_pem)
    now = datetime.now(UTC)
    user_ids = tuple(uuid.uuid4().hex[:24] for _ in range(users))
    tokens = tuple(
        signing.sign_access_token(
            user_id=user_id,
            role="user",
            session_id=uuid.uuid4().hex,
            issuer="minequest",
            audience="minequest-api",
            now=now,
            ttl_seconds=ttl_seconds,
        )
        for user_id in user_ids
    )
    tokens_file = work / "tokens.txt"
    tokens_file.write_text("\n".join(tokens) + "\n")
    return Credentials(tokens, user_ids, tokens_file, public_key_file)
