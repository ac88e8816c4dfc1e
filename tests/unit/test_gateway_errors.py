"""The one gRPC -> HTTP table and the problem+json shape."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from grpc.aio import Metadata
from starlette.responses import Response

from gateway import errors
from runtime import context
from runtime.errors import (
    AlreadyExists,
    DomainError,
    InvalidArgument,
    ResourceExhausted,
    to_grpc_status,
)

GRPC_GATEWAY = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
}


@pytest.mark.parametrize(("code", "status"), GRPC_GATEWAY.items(), ids=str)
def test_status_table_matches_grpc_gateway(code: grpc.StatusCode, status: int) -> None:
    assert errors.http_status(code) == status


def rpc_error(error: DomainError) -> grpc.aio.AioRpcError:
    """The error a client sees when a service raised ``error`` (real status encoding)."""
    status = to_grpc_status(error)
    return grpc.aio.AioRpcError(
        status.code, Metadata(), Metadata(*status.trailing_metadata), status.details
    )


def body(response: Response) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(bytes(response.body))
    return data


def test_problem_shape_and_request_id() -> None:
    token = context.request_id.set("req-123")
    try:
        response = errors.problem(400, "invalid_field", "bad", field="walletAddress")
    finally:
        context.request_id.reset(token)
    assert response.status_code == 400
    assert response.media_type == "application/problem+json"
    assert body(response) == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "error": "invalid_field",
        "detail": "bad",
        "request_id": "req-123",
        "field": "walletAddress",
    }


def test_problem_omits_field_when_none_and_401_asks_for_bearer() -> None:
    response = errors.problem(401, "unauthenticated", "no token")
    assert "field" not in body(response)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_service_reason_and_field_reach_the_client() -> None:
    error = InvalidArgument("bad checksum", reason="invalid_wallet_address", field="wallet_address")
    response = errors.from_rpc_error(rpc_error(error))
    assert response.status_code == 400
    assert body(response)["error"] == "invalid_wallet_address"
    assert body(response)["field"] == "walletAddress"
    assert body(response)["detail"] == "bad checksum"


def test_retry_info_becomes_retry_after() -> None:
    error = ResourceExhausted("wait", reason="otp_cooldown", retry_after=41.2)
    response = errors.from_rpc_error(rpc_error(error))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "42"
    assert body(response)["error"] == "otp_cooldown"


def test_already_exists_is_conflict() -> None:
    response = errors.from_rpc_error(rpc_error(AlreadyExists("taken", reason="wallet_taken")))
    assert (response.status_code, body(response)["error"]) == (409, "wallet_taken")


def test_bare_unavailable_is_service_unavailable() -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, Metadata(), Metadata(), "connection refused to 10.0.0.1"
    )
    response = errors.from_rpc_error(error)
    assert response.status_code == 503
    assert body(response)["error"] == "service_unavailable"
    assert "10.0.0.1" not in body(response)["detail"]


def test_internal_details_are_not_leaked() -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL, Metadata(), Metadata(), "Traceback: KeyError in store.py"
    )
    response = errors.from_rpc_error(error)
    assert response.status_code == 500
    assert body(response)["error"] == "internal"
    assert "Traceback" not in body(response)["detail"]


def test_unexpected_exception_is_internal_without_details(caplog) -> None:
    response = errors.response_for(KeyError("secret-key-name"))
    assert response.status_code == 500
    assert body(response)["error"] == "internal"
    assert "secret" not in bytes(response.body).decode()
    assert any(record.exc_info for record in caplog.records)


def test_api_error_keeps_headers() -> None:
    error = errors.ApiError(
        401,
        "token_expired",
        "expired",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    response = errors.response_for(error)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert body(response)["error"] == "token_expired"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("wallet_address", "walletAddress"),
        ("walletAddress", "walletAddress"),
        ("tokens.refresh_token", "tokens.refreshToken"),
        ("code", "code"),
    ],
)
def test_json_name(given: str, expected: str) -> None:
    assert errors.json_name(given) == expected
