"""Every error the gateway answers, as RFC 9457 ``application/problem+json``.

This is the one place that translates errors to HTTP:

    ApiError            the gateway's own refusals (bad JSON, missing token, ...)
    DomainError         a shared rule the gateway applies itself (runtime.idempotency)
    grpc.aio.AioRpcError  a service's status, through :data:`HTTP_STATUS`
                        (:data:`REASON_HTTP_STATUS` first, for a few reasons;
                        :data:`REASON_EXTENSIONS` adds members from ErrorInfo)
    HTTPException       Starlette's routing answers (404, 405)
    anything else       logged with its stack (throttled), answered 500 ``internal``

A body looks like ``{"type", "title", "status", "error", "detail",
"request_id"}`` plus ``"field"`` when one input is to blame. ``error`` is a
stable machine code: the service's ``ErrorInfo.reason`` or one of the gateway
codes below.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from runtime import context
from runtime.errors import DomainError, RpcErrorInfo, decode_rpc_error, status_code_of
from runtime.log import Throttle

log = logging.getLogger(__name__)
_LOG_THROTTLE = Throttle(5.0)

PROBLEM_JSON = "application/problem+json"

#: gRPC status -> HTTP status, as grpc-gateway maps them.
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

#: Reasons whose HTTP status is not their gRPC code's: a full click queue is
#: backpressure (503, retry), not the caller's quota (DESIGN.md); a key reused
#: with another body is 422, as the gateway's own idempotency answers it.
REASON_HTTP_STATUS: Mapping[str, int] = {
    "queue_full": 503,
    "idempotency_key_reused": 422,
}


def _completion(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The completion a quest already has, from quests' ``already_completed``."""
    return {
        "completion": {
            "id": metadata.get("completion_id", ""),
            "questId": metadata.get("quest_id", ""),
            "period": metadata.get("period", ""),
            "completedAt": metadata.get("completed_at", ""),
            "xpEarned": int(metadata.get("xp_earned", "0") or 0),
        }
    }


def daily_claim(metadata: Mapping[str, str]) -> dict[str, Any]:
    """Today's claim, from quests' ``already_claimed`` metadata, as the claim's
    own JSON renders it."""
    streak = metadata.get("streak", "0")
    return {
        "claim": {
            "id": metadata.get("claim_id", ""),
            "day": metadata.get("day", ""),
            "streak": int(streak) if streak.isascii() and streak.isdigit() else 0,
            "claimedAt": metadata.get("claimed_at", ""),
            "reward": {
                "currency": metadata.get("currency", ""),
                "units": metadata.get("units", "0"),
                "amount": metadata.get("amount", ""),
            },
        }
    }


def _attempts_left(metadata: Mapping[str, str]) -> dict[str, Any]:
    left = metadata.get("attempts_left", "")
    return {"attemptsLeft": int(left)} if left.isascii() and left.isdigit() else {}


#: Problem members built from a service's ErrorInfo metadata, per reason.
REASON_EXTENSIONS: Mapping[str, Callable[[Mapping[str, str]], dict[str, Any]]] = {
    "already_completed": _completion,
    "already_claimed": daily_claim,
    "invalid_code": _attempts_left,
}

#: Machine codes for statuses a service answered without an ``ErrorInfo``.
_DEFAULT_CODES: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "service_unavailable",
    grpc.StatusCode.UNKNOWN: "internal",
    grpc.StatusCode.INTERNAL: "internal",
    grpc.StatusCode.DATA_LOSS: "internal",
}

_HTTP_CODES: Mapping[int, str] = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC status code (500 when unlisted)."""
    return HTTP_STATUS.get(code, 500)


class ApiError(Exception):
    """A refusal decided by the gateway itself."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field
        self.headers = dict(headers or {})


def invalid_json(detail: str) -> ApiError:
    return ApiError(400, "invalid_json", detail)


def invalid_field(detail: str, field: str | None) -> ApiError:
    return ApiError(400, "invalid_field", detail, field=field)


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body exceeds {limit} bytes")


def json_name(field: str) -> str:
    """``wallet_address`` -> ``walletAddress`` (protobuf's JSON name), path by path."""
    return ".".join(
        re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part) for part in field.split(".")
    )


def problem(
    status: int,
    error: str,
    detail: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    """An ``application/problem+json`` response (``extensions``: more members)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "error": error,
        "detail": detail,
        "request_id": request_id or context.request_id.get(),
    }
    if field:
        body["field"] = field
    if extensions:
        body.update(extensions)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=all_headers,
        media_type=PROBLEM_JSON,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def from_api_error(error: ApiError) -> Response:
    return problem(
        error.status, error.error, error.detail, field=error.field, headers=error.headers
    )


def from_rpc_error(error: grpc.aio.AioRpcError) -> Response:
    """Translate a failed gRPC call through the one status table."""
    return from_error_info(decode_rpc_error(error))


def from_error_info(info: RpcErrorInfo) -> Response:
    """A service's refusal (a failed call, or one item of a batch call) as problem+json."""
    status = REASON_HTTP_STATUS.get(info.reason or "", 0) or http_status(info.code)
    code = info.reason or _DEFAULT_CODES.get(info.code, info.code.name.lower())
    detail = info.message
    if status >= 500:
        # One line per code and reason every few seconds: a full queue or a
        # service outage at launch-day traffic must not flood the logs.
        held = _LOG_THROTTLE.allow((info.code, info.reason))
        if held is not None:
            log.warning(
                "service answered %s",
                info.code.name,
                extra={
                    "grpc_code": info.code.name,
                    "grpc_message": info.message,
                    "reason": info.reason,
                    "held": held,
                },
            )
        if info.reason is None:
            detail = (
                "a backend service is unavailable; retry later"
                if status == 503
                else "the request could not be completed"
            )
    headers = {"Retry-After": str(info.retry_after)} if info.retry_after is not None else {}
    field = json_name(info.field) if info.field else None
    extend = REASON_EXTENSIONS.get(info.reason or "")
    extensions = extend(info.metadata) if extend is not None else None
    return problem(status, code, detail, field=field, headers=headers, extensions=extensions)


def api_error_of(error: DomainError) -> ApiError:
    """A domain error raised in the gateway itself, as the HTTP refusal it means."""
    retry = {"Retry-After": str(max(1, math.ceil(error.retry_after)))} if error.retry_after else {}
    return ApiError(
        http_status(status_code_of(error)),
        error.reason,
        error.message,
        field=json_name(error.field) if error.field else None,
        headers=retry,
    )


def from_http_exception(error: HTTPException) -> Response:
    status = error.status_code
    code = _HTTP_CODES.get(status, "bad_request" if status < 500 else "internal")
    detail = {404: "no such route", 405: "method not allowed on this route"}.get(
        status, str(error.detail)
    )
    return problem(status, code, detail, headers=error.headers)


def response_for(error: Exception) -> Response:
    """The problem response for any exception raised while handling a request."""
    if isinstance(error, ApiError):
        return from_api_error(error)
    if isinstance(error, DomainError):
        return from_api_error(api_error_of(error))
    if isinstance(error, grpc.aio.AioRpcError):
        return from_rpc_error(error)
    if isinstance(error, HTTPException):
        return from_http_exception(error)
    _log_unhandled("unhandled error", error)
    return internal_error()


def _log_unhandled(message: str, error: BaseException, **extra: Any) -> None:
    """Log a bug with its stack — once per kind of error every few seconds, so a
    request that finds one cannot flood the logs by repeating it."""
    held = _LOG_THROTTLE.allow(("unhandled", type(error).__name__))
    if held is not None:
        log.error(message, exc_info=error, extra={**extra, "held": held})


def internal_error(request_id: str | None = None) -> Response:
    return problem(500, "internal", "internal error", request_id=request_id)


async def handle_http_exception(request: Request, error: Exception) -> Response:
    """Starlette handler for routing errors (404 unknown route, 405)."""
    assert isinstance(error, HTTPException)
    return from_http_exception(error)


async def handle_unexpected(request: Request, error: Exception) -> Response:
    """Last resort (Starlette's outermost ``ServerErrorMiddleware``).

    Route handlers already turn their exceptions into problems; this only runs
    when a middleware fails. The request id context is gone by then, so it is
    read back from the request state.
    """
    request_id = getattr(request.state, "request_id", None)
    _log_unhandled("unhandled error outside a route", error, request_id=request_id)
    response = internal_error(request_id)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return response
