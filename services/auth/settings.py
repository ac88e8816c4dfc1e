"""The auth service's configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.config import ConfigError, Env, ServiceSettings


def _readable_file(env: Env, name: str) -> str | None:
    value = env.optional(name)
    if value is not None and not Path(value).is_file():
        raise ConfigError(name, f"{value} is not a readable file")
    return value


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: str | None
    sender: str
    timeout_seconds: float
    #: A CA bundle to trust for the server's TLS certificate (a private relay).
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    service: ServiceSettings
    jwt_private_key_file: Path
    jwt_generate_key: bool
    jwt_issuer: str
    jwt_audience: str
    access_token_ttl_seconds: int
    refresh_token_ttl_seconds: int
    otp_ttl_seconds: int
    otp_max_attempts: int
    otp_resend_cooldown_seconds: int
    dev_otp_fallback: bool
    smtp: SmtpSettings | None

    @classmethod
    def from_env(cls, env: Env | None = None) -> AuthSettings:
        env = env or Env()
        smtp_host = env.optional("SMTP_HOST")
        smtp = None
        if smtp_host:
            smtp = SmtpSettings(
                host=smtp_host,
                port=env.integer("SMTP_PORT", 587, minimum=1, maximum=65535),
                user=env.optional("SMTP_USER"),
                password=env.optional("SMTP_PASS"),
                sender=env.string("SMTP_FROM", "no-reply@minequest.local"),
                timeout_seconds=env.number("SMTP_TIMEOUT_SECONDS", 10.0, minimum=0.1),
                ca_file=_readable_file(env, "SMTP_CA_FILE"),
            )
        return cls(
            service=ServiceSettings.from_env("auth", env, needs_redis=False),
            jwt_private_key_file=Path(
                env.required("AUTH_JWT_PRIVATE_KEY_FILE", "path to an Ed25519 private key in PEM")
            ),
            jwt_generate_key=env.boolean("AUTH_JWT_GENERATE_KEY", False),
            jwt_issuer=env.string("JWT_ISSUER", "minequest"),
            jwt_audience=env.string("JWT_AUDIENCE", "minequest-api"),
            access_token_ttl_seconds=env.integer(
                "AUTH_ACCESS_TOKEN_TTL_SECONDS", 900, minimum=30, maximum=86400
            ),
            refresh_token_ttl_seconds=env.integer(
                "AUTH_REFRESH_TOKEN_TTL_SECONDS", 2_592_000, minimum=300
            ),
            otp_ttl_seconds=env.integer("AUTH_OTP_TTL_SECONDS", 300, minimum=1, maximum=3600),
            otp_max_attempts=env.integer("AUTH_OTP_MAX_ATTEMPTS", 5, minimum=1, maximum=20),
            otp_resend_cooldown_seconds=env.integer(
                "AUTH_OTP_RESEND_COOLDOWN_SECONDS", 60, minimum=0, maximum=3600
            ),
            dev_otp_fallback=env.boolean("ENABLE_DEV_OTP_FALLBACK", False),
            smtp=smtp,
        )
