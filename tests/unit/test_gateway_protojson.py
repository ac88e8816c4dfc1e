"""JSON <-> protobuf: canonical names, and every mistake names its field."""

from __future__ import annotations

import pytest
from google.protobuf import timestamp_pb2
from starlette.datastructures import QueryParams

from gateway import protojson
from gateway.errors import ApiError
from minequest.auth.v1 import auth_pb2


def refusal(body: bytes, message_type=auth_pb2.RegisterRequest) -> ApiError:
    with pytest.raises(ApiError) as caught:
        protojson.parse_body(body, message_type)
    assert caught.value.status == 400
    return caught.value


def test_parses_lower_camel_case_and_proto_names() -> None:
    message = protojson.parse_body(
        b'{"walletAddress": "0xab", "email": "a@b.c", "referral_code": "XY"}',
        auth_pb2.RegisterRequest,
    )
    assert message.wallet_address == "0xab"
    assert message.referral_code == "XY"


def test_empty_body_is_an_empty_message() -> None:
    assert protojson.parse_body(b"", auth_pb2.LogoutRequest) == auth_pb2.LogoutRequest()


@pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b"\xff\xfe", b'{"a": NaN}', b"[" * 100_000])
def test_malformed_json(body: bytes) -> None:
    error = refusal(body)
    assert error.error == "invalid_json"


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"3", b"null"])
def test_body_must_be_an_object(body: bytes) -> None:
    error = refusal(body)
    assert (error.error, error.field) == ("invalid_field", None)


def test_unknown_field_is_named() -> None:
    error = refusal(b'{"walletAddress": "0xab", "isAdmin": true}')
    assert (error.error, error.field) == ("invalid_field", "isAdmin")


def test_wrong_type_is_named() -> None:
    error = refusal(b'{"walletAddress": 12}')
    assert (error.error, error.field) == ("invalid_field", "walletAddress")


def test_nested_wrong_type_names_the_path() -> None:
    error = refusal(b'{"tokens": {"expiresIn": "soon"}}', auth_pb2.VerifyOtpResponse)
    assert error.field == "tokens.expiresIn"


def test_bad_enum_and_timestamp_are_named() -> None:
    assert (
        refusal(b'{"user": {"role": "ROLE_GOD"}}', auth_pb2.VerifyOtpResponse).field == "user.role"
    )
    assert (
        refusal(b'{"user": {"createdAt": "yesterday"}}', auth_pb2.VerifyOtpResponse).field
        == "user.createdAt"
    )


def test_query_parameters_parse_and_ignore_strangers() -> None:
    message = protojson.parse_query(QueryParams("email=a@b.c&_=123"), auth_pb2.RequestOtpRequest)
    assert message.email == "a@b.c"


def test_query_parameter_of_wrong_type_is_named() -> None:
    with pytest.raises(ApiError) as caught:
        protojson.parse_query(QueryParams("expiresIn=soon"), auth_pb2.TokenPair)
    assert caught.value.field == "expiresIn"


def test_rendering_is_canonical_json() -> None:
    user = auth_pb2.User(
        id="u1",
        wallet_address="0xAb",
        role=auth_pb2.ROLE_ADMIN,
        created_at=timestamp_pb2.Timestamp(seconds=0),
    )
    data = protojson.to_dict(auth_pb2.GetProfileResponse(user=user))["user"]
    assert data["walletAddress"] == "0xAb"
    assert data["role"] == "ROLE_ADMIN"
    assert data["createdAt"] == "1970-01-01T00:00:00Z"
    assert data["phone"] == ""  # defaults are present, so clients see a stable shape


def test_no_body_for_204() -> None:
    response = protojson.json_response(auth_pb2.LogoutResponse(), status=204)
    assert response.body == b""
    assert response.status_code == 204
