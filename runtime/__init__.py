"""The small runtime every Minequest process shares.

Configuration, JSON logging, the gRPC server bootstrap and channels (mutual
TLS between named identities, and who may call what: ``runtime.access``),
Prometheus metrics, OpenTelemetry tracing, store clients, domain errors, and
the embedded stores used by ``make dev`` and the tests. Services never import
each other; they share only this package and the generated contracts.
"""

from runtime.config import ConfigError, Env, ServiceSettings, load_or_exit
from runtime.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RpcErrorInfo,
    Unauthenticated,
    Unavailable,
    decode_rpc_error,
)
from runtime.grpc_client import channel
from runtime.grpc_server import Registrar, RunningServer, create_server, serve
from runtime.log import configure_logging
from runtime.stores import mongo_client, redis_client
from runtime.timestamps import aware, to_timestamp
from runtime.tls import TlsSettings, load_tls

__all__ = [
    "Aborted",
    "AlreadyExists",
    "ConfigError",
    "DomainError",
    "Env",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Registrar",
    "ResourceExhausted",
    "RpcErrorInfo",
    "RunningServer",
    "ServiceSettings",
    "TlsSettings",
    "Unauthenticated",
    "Unavailable",
    "aware",
    "channel",
    "configure_logging",
    "create_server",
    "decode_rpc_error",
    "load_or_exit",
    "load_tls",
    "mongo_client",
    "redis_client",
    "serve",
    "to_timestamp",
]
