"""Typed configuration from environment variables, failing fast.

Every setting is read once at start. A bad value raises :class:`ConfigError`
naming the variable; :func:`load_or_exit` turns that into one clear line on
stderr and exit status 2, so a misconfigured process never half-starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from runtime.heap import YOUNG_THRESHOLD

if TYPE_CHECKING:
    from runtime.tls import TlsSettings

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(Exception):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class Env:
    """Typed reads from an environment mapping (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def names(self) -> list[str]:
        """Every variable set to a non-blank value."""
        return [name for name in self._env if self.raw(name) is not None]

    def raw(self, name: str) -> str | None:
        value: str | None = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def optional(self, name: str) -> str | None:
        return self.raw(name)

    def required(self, name: str, hint: str = "") -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(name, "is required" + (f" ({hint})" if hint else ""))
        return value

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"must be an integer, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, f"must be true or false, got {value!r}")

    def csv(self, name: str, default: list[str]) -> list[str]:
        value = self.raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def service_addr(self, name: str, service: str) -> str:
        """A gRPC target, ``host:port`` or ``dns:///host:port`` (every address the
        name resolves to, balanced round-robin); the default is where
        ``service`` listens by default (:data:`SERVICE_PORTS`)."""
        value = self.string(name, default_service_addr(service))
        host, sep, port = value.rpartition(":")
        if not (sep and host and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(name, f"must be host:port, got {value!r}")
        return value

    def choice(self, name: str, default: str, choices: AbstractSet[str]) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise ConfigError(name, f"must be one of {sorted(choices)}, got {value!r}")
        return value


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {number}")


LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR"})

#: ``MINEQUEST_ENV``: the production marker. In ``production`` every process
#: refuses settings that are only safe on a developer's machine (the dev OTP
#: fallback, plaintext internal gRPC, ...).
ENVIRONMENT_VAR = "MINEQUEST_ENV"
ENVIRONMENTS = frozenset({"development", "production"})


def is_production(env: Env) -> bool:
    """Whether ``MINEQUEST_ENV=production`` marks this process as production."""
    return env.choice(ENVIRONMENT_VAR, "development", ENVIRONMENTS) == "production"


@dataclass(frozen=True, slots=True)
class ServicePorts:
    grpc: int
    metrics: int


#: Default ports of every gRPC service. The services, the gateway's default
#: ``<NAME>_SERVICE_ADDR`` and ``make dev`` all read this one table.
SERVICE_PORTS: dict[str, ServicePorts] = {
    "auth": ServicePorts(grpc=50051, metrics=9101),
    "mining": ServicePorts(grpc=50052, metrics=9102),
    "wallet": ServicePorts(grpc=50053, metrics=9103),
    "quests": ServicePorts(grpc=50054, metrics=9104),
}


def default_service_addr(service: str) -> str:
    """Where a service listens by default, as a gRPC target."""
    return f"127.0.0.1:{SERVICE_PORTS[service].grpc}"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What every gRPC service process needs, read from ``<PREFIX>_*`` and shared names.

    ``MONGODB_URI`` and (for services that use it) ``REDIS_URL`` are required
    here: ``make dev`` and the tests start embedded servers and pass their URLs in.
    """

    service: str
    grpc_host: str
    grpc_port: int
    metrics_port: int | None
    mongodb_uri: str
    mongodb_database: str
    redis_url: str | None
    log_level: str
    otlp_endpoint: str | None
    shutdown_grace_seconds: float
    #: ``PYTHON_GC_THRESHOLD``: allocations between young collections (:mod:`runtime.heap`).
    gc_threshold: int
    #: This process's mTLS identity (``GRPC_TLS_*``); None: plaintext, every caller allowed.
    tls: TlsSettings | None = None
    #: ``GRPC_REFLECTION=true`` serves gRPC server reflection (off by default).
    reflection: bool = False

    @classmethod
    def from_env(
        cls,
        service: str,
        env: Env,
        *,
        needs_redis: bool = True,
    ) -> ServiceSettings:
        from runtime.tls import load_tls  # runtime.tls imports this module

        prefix = service.upper()
        ports = SERVICE_PORTS[service]
        metrics_port = env.integer(
            f"{prefix}_METRICS_PORT", ports.metrics, minimum=0, maximum=65535
        )
        return cls(
            service=service,
            grpc_host=env.string(f"{prefix}_GRPC_HOST", "127.0.0.1"),
            grpc_port=env.integer(f"{prefix}_GRPC_PORT", ports.grpc, minimum=0, maximum=65535),
            metrics_port=metrics_port or None,
            mongodb_uri=env.required(
                "MONGODB_URI", "make dev starts an embedded server and sets it for you"
            ),
            mongodb_database=env.string(f"{prefix}_MONGODB_DATABASE", f"minequest_{service}"),
            redis_url=env.required(
                "REDIS_URL", "make dev starts an embedded server and sets it for you"
            )
            if needs_redis
            else env.optional("REDIS_URL"),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            otlp_endpoint=env.optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0),
            gc_threshold=gc_threshold(env),
            tls=load_tls(env),
            reflection=env.boolean("GRPC_REFLECTION", False),
        )


def gc_threshold(env: Env) -> int:
    """``PYTHON_GC_THRESHOLD``, as every process reads it (:mod:`runtime.heap`)."""
    return env.integer("PYTHON_GC_THRESHOLD", YOUNG_THRESHOLD, minimum=1, maximum=10_000_000)


def load_or_exit(loader: Callable[[], T]) -> T:
    """Run a settings loader; on :class:`ConfigError` print one line and exit 2."""
    try:
        return loader()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
