"""The OpenAPI document follows the route table, with schemas from the descriptors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.openapi import build_openapi
from gateway.routes import ENDPOINTS
from gateway.routing import Access, Endpoint, build_routes
from minequest.auth.v1 import auth_pb2
from minequest.common.v1 import common_pb2


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(ENDPOINTS, version="1.2.3")


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_route_is_documented(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert operations == {(row.method, row.path) for row in ENDPOINTS}
    for route in (
        "/api/auth/register",
        "/api/auth/otp/request",
        "/api/auth/otp/verify",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/auth/jwks",
        "/api/health",
        "/api/openapi.json",
    ):
        assert route in doc["paths"]
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    json.dumps(doc)  # serialisable as is


def test_request_body_uses_lower_camel_case(doc: dict[str, Any]) -> None:
    register = doc["paths"]["/api/auth/register"]["post"]
    schema = resolve(doc, register["requestBody"]["content"]["application/json"]["schema"])
    assert set(schema["properties"]) == {
        "walletAddress",
        "email",
        "phone",
        "username",
        "referralCode",
    }
    assert "201" in register["responses"]
    bad = register["responses"]["400"]
    assert bad["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert {"invalid_field", "invalid_json", "invalid_wallet_address"} <= set(
        bad["x-problem-codes"]
    )
    problem = doc["components"]["responses"]["Problem"]["content"]
    assert "application/problem+json" in problem


def test_server_fields_are_hidden_and_auth_is_declared(doc: dict[str, Any]) -> None:
    logout = doc["paths"]["/api/auth/logout"]["post"]
    schema = resolve(doc, logout["requestBody"]["content"]["application/json"]["schema"])
    assert schema["properties"] == {}
    assert logout["security"] == [{"bearerAuth": []}]
    assert "204" in logout["responses"]
    assert "content" not in logout["responses"]["204"]
    me = doc["paths"]["/api/auth/me"]["get"]
    assert "parameters" not in me  # userId comes from the token, not the query
    assert "401" in me["responses"]
    assert "security" not in doc["paths"]["/api/auth/register"]["post"]


def test_types_follow_the_json_mapping(doc: dict[str, Any]) -> None:
    user = doc["components"]["schemas"]["minequest.auth.v1.User"]["properties"]
    assert user["createdAt"] == {"type": "string", "format": "date-time"}
    assert resolve(doc, user["role"])["enum"] == ["ROLE_UNSPECIFIED", "ROLE_USER", "ROLE_ADMIN"]
    tokens = doc["components"]["schemas"]["minequest.auth.v1.TokenPair"]["properties"]
    assert tokens["expiresIn"]["type"] == "integer"
    jwks = resolve(
        doc,
        doc["paths"]["/api/auth/jwks"]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ],
    )
    assert jwks["properties"]["keys"]["type"] == "array"


def test_health_documents_its_503_body(doc: dict[str, Any]) -> None:
    responses = doc["paths"]["/api/health"]["get"]["responses"]
    assert responses["503"]["content"] == responses["200"]["content"]


def test_int64_is_a_string_and_get_requests_become_query_parameters() -> None:
    async def handler(incoming: Any) -> Any:
        raise NotImplementedError

    rows = [
        Endpoint(
            "GET",
            "/api/things/{page_token}",
            operation_id="listThings",
            summary="things",
            handler=handler,
            tag="t",
            access=Access.ADMIN,
            request=common_pb2.PageRequest,
            response=common_pb2.Money,
        )
    ]
    doc = build_openapi(rows, version="0")
    operation = doc["paths"]["/api/things/{page_token}"]["get"]
    params = {(p["in"], p["name"]): p for p in operation["parameters"]}
    assert set(params) == {("path", "page_token"), ("query", "pageSize")}
    assert params[("query", "pageSize")]["schema"]["format"] == "int32"
    money = doc["components"]["schemas"]["minequest.common.v1.Money"]["properties"]
    assert money["units"]["type"] == "string"
    assert money["units"]["format"] == "int64"
    assert "403" in operation["responses"]


def test_table_builds_one_route_per_path() -> None:
    routes = build_routes(ENDPOINTS)
    paths = [route.path for route in routes]  # type: ignore[attr-defined]
    assert len(paths) == len(set(paths)) == len({row.path for row in ENDPOINTS})


def test_duplicate_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="two rows"):
        build_routes([*ENDPOINTS, ENDPOINTS[0]])


def test_server_fields_need_a_principal() -> None:
    from gateway.routing import rpc

    with pytest.raises(ValueError, match="needs a route that reads tokens"):
        rpc(
            "POST",
            "/x",
            call=lambda g, m: g.auth.Logout(m),
            request=auth_pb2.LogoutRequest,
            response=auth_pb2.LogoutResponse,
            operation_id="x",
            summary="x",
            tag="x",
            server_fields=("user_id",),
        )


def test_bodies_refuse_unknown_fields_and_optional_fields_admit_null(
    doc: dict[str, Any],
) -> None:
    """What the schema promises is what the parser does: unknown fields are a
    400, and `null` on a proto3 `optional` field means "leave unchanged"."""
    body = doc["paths"]["/api/auth/me"]["patch"]["requestBody"]["content"]["application/json"]
    schema = resolve(doc, body["schema"])
    assert schema["additionalProperties"] is False
    assert schema["properties"]["username"]["type"] == ["string", "null"]
    register = doc["paths"]["/api/auth/register"]["post"]["requestBody"]["content"]
    fields = resolve(doc, register["application/json"]["schema"])["properties"]
    assert fields["walletAddress"]["type"] == "string", "plain proto3 strings are not nullable"


def test_idempotency_key_and_protection_answers_are_documented(doc: dict[str, Any]) -> None:
    def key_parameter(operation: dict[str, Any]) -> dict[str, Any] | None:
        found = [p for p in operation.get("parameters", []) if p["name"] == "Idempotency-Key"]
        return found[0] if found else None

    withdrawal = doc["paths"]["/api/wallet/withdrawals"]["post"]
    required = key_parameter(withdrawal)
    assert required is not None
    assert (required["in"], required["required"]) == ("header", True)
    assert required["schema"]["pattern"] == "^[!-~]+$"
    assert {"400", "409", "422", "429"} <= set(withdrawal["responses"])
    optional = key_parameter(doc["paths"]["/api/auth/me"]["patch"])
    assert optional is not None
    assert optional["required"] is False
    assert key_parameter(doc["paths"]["/api/auth/me"]["get"]) is None
    assert "422" not in doc["paths"]["/api/auth/me"]["get"]["responses"]


def test_links_name_operations_and_parameters_that_exist(doc: dict[str, Any]) -> None:
    """A link a client (or schemathesis) follows must land on a real parameter."""
    operations = {op["operationId"]: op for item in doc["paths"].values() for op in item.values()}
    found = 0
    for operation in operations.values():
        for answer in operation["responses"].values():
            for link in answer.get("links", {}).values():
                target = operations[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= names, link
                found += 1
    assert found >= 8
