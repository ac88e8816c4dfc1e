from __future__ import annotations

import grpc
import pytest

from runtime.errors import (
    AlreadyExists,
    DomainError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    decode_rpc_error,
    required,
    status_code_of,
    to_grpc_status,
)


class WalletTaken(AlreadyExists):
    reason = "wallet_taken"


def test_categories_map_to_grpc_codes():
    assert status_code_of(WalletTaken("x")) == grpc.StatusCode.ALREADY_EXISTS
    assert status_code_of(NotFound("x")) == grpc.StatusCode.NOT_FOUND
    assert status_code_of(DomainError("x")) == grpc.StatusCode.INTERNAL


def test_rich_status_round_trips_through_trailers():
    error = ResourceExhausted(
        "slow down", reason="otp_cooldown", field="email", retry_after=41.2, metadata={"k": "v"}
    )
    status = to_grpc_status(error)
    rpc_error = grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )
    info = decode_rpc_error(rpc_error)
    assert info.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (info.reason, info.field, info.retry_after, info.metadata) == (
        "otp_cooldown",
        "email",
        42,
        {"k": "v"},
    )


def test_default_reason_comes_from_the_class():
    assert WalletTaken("taken").reason == "wallet_taken"
    assert NotFound("gone").reason == "not_found"


def test_required_names_the_empty_field() -> None:
    assert required("u-1", "user_id") == "u-1"
    with pytest.raises(InvalidArgument) as caught:
        required("", "admin_id")
    assert (str(caught.value), caught.value.field) == ("admin_id is required", "admin_id")
