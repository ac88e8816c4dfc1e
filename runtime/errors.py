"""Domain errors and their one mapping to gRPC status.

Each service defines its own exceptions by subclassing one of the categories
below and giving a stable machine ``reason``; handlers simply raise them. The
server interceptor turns them into a rich gRPC status (``google.rpc.Status``
with ``ErrorInfo``, plus ``BadRequest`` naming a field or ``RetryInfo``), and
:func:`decode_rpc_error` reads that back on the client side.

    DomainError                 -> INTERNAL
    ├── InvalidArgument         -> INVALID_ARGUMENT
    ├── Unauthenticated         -> UNAUTHENTICATED
    ├── PermissionDenied        -> PERMISSION_DENIED
    ├── NotFound                -> NOT_FOUND
    ├── AlreadyExists           -> ALREADY_EXISTS
    ├── Aborted                 -> ABORTED
    ├── FailedPrecondition      -> FAILED_PRECONDITION
    ├── ResourceExhausted       -> RESOURCE_EXHAUSTED
    └── Unavailable             -> UNAVAILABLE
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "minequest"


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    reason = "internal"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.field = field
        self.retry_after = retry_after
        self.metadata = metadata or {}


class InvalidArgument(DomainError):
    reason = "invalid_argument"


def required(value: str, field: str) -> str:
    """``value``, or :class:`InvalidArgument` naming ``field`` when it is empty
    (a field the gateway fills in, such as ``user_id``, or a caller forgot)."""
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    return value


class Unauthenticated(DomainError):
    reason = "unauthenticated"


class PermissionDenied(DomainError):
    reason = "permission_denied"


class NotFound(DomainError):
    reason = "not_found"


class AlreadyExists(DomainError):
    reason = "already_exists"


class Aborted(DomainError):
    reason = "aborted"


class FailedPrecondition(DomainError):
    reason = "failed_precondition"


class ResourceExhausted(DomainError):
    reason = "resource_exhausted"


class Unavailable(DomainError):
    reason = "unavailable"


GRPC_STATUS: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Aborted: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DomainError: grpc.StatusCode.INTERNAL,
}


def status_code_of(error: DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in GRPC_STATUS:
            return GRPC_STATUS[cls]
    return grpc.StatusCode.INTERNAL


def to_grpc_status(error: DomainError) -> grpc.Status:
    """The rich status (code, message, details trailer) for a domain error."""
    info = error_info(error)
    status = status_pb2.Status(code=info.code.value[0], message=info.message)
    details = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    status.details.add().Pack(details)
    if info.field:
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field=info.field, description=info.message)
        status.details.add().Pack(bad)
    if info.retry_after is not None:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=info.retry_after)
        )
        status.details.add().Pack(retry)
    result: grpc.Status = rpc_status.to_status(status)
    return result


@dataclass(slots=True)
class RpcErrorInfo:
    """What a client learns from a failed call."""

    code: grpc.StatusCode
    message: str
    reason: str | None = None
    field: str | None = None
    retry_after: int | None = None
    metadata: dict[str, str] = dataclass_field(default_factory=dict)


def error_info(error: DomainError) -> RpcErrorInfo:
    """What a client learns from ``error`` (whole seconds to wait, rounded up)."""
    retry = None if error.retry_after is None else max(0, math.ceil(error.retry_after))
    return RpcErrorInfo(
        code=status_code_of(error),
        message=error.message,
        reason=error.reason,
        field=error.field,
        retry_after=retry,
        metadata=dict(error.metadata),
    )


def decode_rpc_error(error: grpc.aio.AioRpcError) -> RpcErrorInfo:
    """Read code, message and the rich details of a failed call."""
    code = error.code()
    info = RpcErrorInfo(code=code, message=error.details() or code.name.lower())
    trailers: Any = error.trailing_metadata()
    for key, value in trailers or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                err_info = error_details_pb2.ErrorInfo()
                detail.Unpack(err_info)
                info.reason = err_info.reason
                info.metadata = dict(err_info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    info.field = bad.field_violations[0].field
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                info.retry_after = retry.retry_delay.seconds
    return info


__all__ = [
    "Aborted",
    "AlreadyExists",
    "DomainError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RpcErrorInfo",
    "Unauthenticated",
    "Unavailable",
    "decode_rpc_error",
    "error_info",
    "status_code_of",
    "to_grpc_status",
]
