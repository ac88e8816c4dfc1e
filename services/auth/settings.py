"""The auth service's configuration, read once from the environment.

:class:`AuthSettings` is what the service process needs (it requires the JWT
key file); :class:`AuthDatabaseSettings` is what the ``create-admin`` command
needs (only MongoDB). Safety rules checked here, so a dangerous combination
never starts: the dev OTP fallback is refused beside ``SMTP_HOST`` and with
``MINEQUEST_ENV=production``; in production the Sign-In with Ethereum domain
and URI must be given. The Telegram login (:class:`TelegramSettings`) is off
without ``TELEGRAM_BOT_TOKEN``: TelegramLogin then answers
``telegram_login_not_configured``; the token never appears in a repr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from runtime.config import ConfigError, Env, ServiceSettings, is_production
from services.auth.guard import GuardPolicy

SMTP_SECURITY = frozenset({"starttls", "tls", "none"})
#: An RFC 3986 authority (host, optional port), what EIP-4361 calls the domain.
_AUTHORITY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")
LINK_PLACEHOLDERS = ("{challengeId}", "{key}")


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
    #: ``starttls`` (required, not opportunistic), ``tls`` (implicit) or ``none``.
    security: str = "starttls"

    @classmethod
    def from_env(cls, env: Env) -> SmtpSettings | None:
        host = env.optional("SMTP_HOST")
        if host is None:
            return None
        port = env.integer("SMTP_PORT", 587, minimum=1, maximum=65535)
        return cls(
            host=host,
            port=port,
            user=env.optional("SMTP_USER"),
            password=env.optional("SMTP_PASS"),
            sender=env.string("SMTP_FROM", "no-reply@minequest.local"),
            timeout_seconds=env.number("SMTP_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            ca_file=_readable_file(env, "SMTP_CA_FILE"),
            security=env.choice(
                "SMTP_SECURITY", "tls" if port == 465 else "starttls", SMTP_SECURITY
            ),
        )


@dataclass(frozen=True, slots=True)
class SiweSettings:
    """What goes into the Sign-In with Ethereum (EIP-4361) messages."""

    domain: str
    uri: str
    chain_id: int
    statement: str
    challenge_ttl_seconds: int

    @classmethod
    def from_env(cls, env: Env, *, production: bool) -> SiweSettings:
        if production:
            domain = env.required("SIWE_DOMAIN", "the app's host, e.g. app.example.com")
            uri = env.required("SIWE_URI", "the app's URL, e.g. https://app.example.com")
        else:
            domain = env.string("SIWE_DOMAIN", "localhost:8080")
            uri = env.string("SIWE_URI", "http://localhost:8080")
        if not _AUTHORITY.match(domain):
            raise ConfigError(
                "SIWE_DOMAIN", f"must be a host[:port] without scheme, got {domain!r}"
            )
        if not _URI.match(uri):
            raise ConfigError("SIWE_URI", f"must be an absolute URI, got {uri!r}")
        statement = env.string(
            "SIWE_STATEMENT", "Sign in to Minequest to prove that you own this wallet."
        )
        if "\n" in statement or "\r" in statement:
            raise ConfigError("SIWE_STATEMENT", "must be one line")
        return cls(
            domain=domain,
            uri=uri,
            chain_id=env.integer("SIWE_CHAIN_ID", 1, minimum=1),
            statement=statement,
            challenge_ttl_seconds=env.integer(
                "SIWE_CHALLENGE_TTL_SECONDS", 600, minimum=30, maximum=86400
            ),
        )


#: A bot token as BotFather gives it: the bot id, a colon, the secret.
_BOT_TOKEN = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    """The Telegram Mini App login (:mod:`services.auth.telegram`)."""

    #: None: TelegramLogin answers ``telegram_login_not_configured``.
    bot_token: str | None = field(default=None, repr=False)
    #: initData whose ``auth_date`` is older than this is refused.
    max_age_seconds: int = 86400

    @classmethod
    def from_env(cls, env: Env) -> TelegramSettings:
        token = env.optional("TELEGRAM_BOT_TOKEN")
        if token is not None and not _BOT_TOKEN.match(token):
            raise ConfigError("TELEGRAM_BOT_TOKEN", "must look like BotFather's <bot id>:<secret>")
        return cls(
            bot_token=token,
            max_age_seconds=env.integer(
                "TELEGRAM_AUTH_MAX_AGE_SECONDS", 86400, minimum=10, maximum=30 * 86400
            ),
        )


def _guard_policy(env: Env) -> GuardPolicy:
    policy = GuardPolicy(
        free_failures=env.integer("AUTH_OTP_FREE_FAILURES", 3, minimum=0, maximum=100),
        backoff_base_seconds=env.integer(
            "AUTH_OTP_BACKOFF_BASE_SECONDS", 30, minimum=1, maximum=3600
        ),
        backoff_max_seconds=env.integer(
            "AUTH_OTP_BACKOFF_MAX_SECONDS", 900, minimum=1, maximum=86400
        ),
        daily_budget=env.integer("AUTH_OTP_DAILY_FAILURE_BUDGET", 30, minimum=1, maximum=1000),
        window_seconds=env.integer(
            "AUTH_OTP_FAILURE_WINDOW_SECONDS", 86400, minimum=60, maximum=7 * 86400
        ),
    )
    if policy.backoff_max_seconds < policy.backoff_base_seconds:
        raise ConfigError(
            "AUTH_OTP_BACKOFF_MAX_SECONDS", "must be at least AUTH_OTP_BACKOFF_BASE_SECONDS"
        )
    return policy


def _login_link(env: Env) -> str | None:
    template = env.optional("AUTH_LOGIN_LINK_URL")
    if template is None:
        return None
    if not _URI.match(template) or not all(p in template for p in LINK_PLACEHOLDERS):
        raise ConfigError(
            "AUTH_LOGIN_LINK_URL",
            "must be an absolute URL containing {challengeId} and {key}, e.g. "
            "https://app.example.com/login#challenge={challengeId}&key={key}",
        )
    return template


def _dev_fallback(env: Env, smtp: SmtpSettings | None) -> bool:
    enabled = env.boolean("ENABLE_DEV_OTP_FALLBACK", False)
    if enabled and smtp is not None:
        raise ConfigError(
            "ENABLE_DEV_OTP_FALLBACK",
            "must not be true when SMTP_HOST is set (codes would be returned to anyone)",
        )
    if enabled and is_production(env):
        raise ConfigError(
            "ENABLE_DEV_OTP_FALLBACK", "must not be true with MINEQUEST_ENV=production"
        )
    return enabled


@dataclass(frozen=True, slots=True)
class AuthDatabaseSettings:
    """What the ``create-admin`` command needs: the database, nothing else."""

    mongodb_uri: str
    mongodb_database: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> AuthDatabaseSettings:
        env = env or Env()
        return cls(
            mongodb_uri=env.required("MONGODB_URI", "the auth service's MongoDB"),
            mongodb_database=env.string("AUTH_MONGODB_DATABASE", "minequest_auth"),
        )


@dataclass(frozen=True, slots=True)
class AuthSettings:
    service: ServiceSettings
    jwt_private_key_file: Path
    jwt_generate_key: bool
    #: Keys published in the JWK set beside the signing key, never used to sign.
    jwt_verify_key_files: tuple[Path, ...]
    jwt_issuer: str
    jwt_audience: str
    access_token_ttl_seconds: int
    refresh_token_ttl_seconds: int
    #: No refresh extends a session past ``created_at`` + this.
    session_max_lifetime_seconds: int
    otp_ttl_seconds: int
    otp_max_attempts: int
    otp_resend_cooldown_seconds: int
    #: Most code mails per contact per hour (0: no cap).
    otp_mails_per_hour: int
    otp_guard: GuardPolicy
    #: Template of the login link in code mails (``{challengeId}``, ``{key}``).
    login_link_url: str | None
    dev_otp_fallback: bool
    smtp: SmtpSettings | None
    mail_concurrency: int
    mail_queue_size: int
    siwe: SiweSettings
    telegram: TelegramSettings = field(default_factory=TelegramSettings)

    @classmethod
    def from_env(cls, env: Env | None = None) -> AuthSettings:
        env = env or Env()
        smtp = SmtpSettings.from_env(env)
        # the auth-only safety rules first, so their line is the one printed
        dev_fallback = _dev_fallback(env, smtp)
        siwe = SiweSettings.from_env(env, production=is_production(env))
        return cls(
            service=ServiceSettings.from_env("auth", env, needs_redis=False),
            jwt_private_key_file=Path(
                env.required("AUTH_JWT_PRIVATE_KEY_FILE", "path to an Ed25519 private key in PEM")
            ),
            jwt_generate_key=env.boolean("AUTH_JWT_GENERATE_KEY", False),
            jwt_verify_key_files=tuple(Path(p) for p in env.csv("AUTH_JWT_VERIFY_KEY_FILES", [])),
            jwt_issuer=env.string("JWT_ISSUER", "minequest"),
            jwt_audience=env.string("JWT_AUDIENCE", "minequest-api"),
            access_token_ttl_seconds=env.integer(
                "AUTH_ACCESS_TOKEN_TTL_SECONDS", 900, minimum=30, maximum=86400
            ),
            refresh_token_ttl_seconds=env.integer(
                "AUTH_REFRESH_TOKEN_TTL_SECONDS", 2_592_000, minimum=300
            ),
            session_max_lifetime_seconds=env.integer(
                "AUTH_SESSION_MAX_LIFETIME_SECONDS", 7_776_000, minimum=300
            ),
            otp_ttl_seconds=env.integer("AUTH_OTP_TTL_SECONDS", 300, minimum=1, maximum=3600),
            otp_max_attempts=env.integer("AUTH_OTP_MAX_ATTEMPTS", 5, minimum=1, maximum=20),
            otp_resend_cooldown_seconds=env.integer(
                "AUTH_OTP_RESEND_COOLDOWN_SECONDS", 60, minimum=0, maximum=3600
            ),
            otp_mails_per_hour=env.integer("AUTH_OTP_MAILS_PER_HOUR", 10, minimum=0, maximum=1000),
            otp_guard=_guard_policy(env),
            login_link_url=_login_link(env),
            dev_otp_fallback=dev_fallback,
            smtp=smtp,
            mail_concurrency=env.integer("AUTH_MAIL_CONCURRENCY", 4, minimum=1, maximum=100),
            mail_queue_size=env.integer("AUTH_MAIL_QUEUE_SIZE", 1000, minimum=1),
            siwe=siwe,
            telegram=TelegramSettings.from_env(env),
        )
