"""The HTTP API's breaking-change guard: each rule on a small document."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools import openapi_breaking
from tools.openapi_breaking import breaking_changes


def document() -> dict[str, Any]:
    """One GET with a query parameter, one POST with a body, a shared component."""
    user = {
        "type": "object",
        "required": ["id", "role"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "role": {"$ref": "#/components/schemas/Role"},
        },
    }
    return {
        "openapi": "3.1.0",
        "paths": {
            "/api/users": {
                "get": {
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/User"},
                                    }
                                }
                            },
                        },
                        "400": {"$ref": "#/components/responses/Problem"},
                    },
                },
                "post": {
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string"},
                                        "role": {"$ref": "#/components/schemas/Role"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "made",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/User"}
                                }
                            },
                        }
                    },
                },
            },
            "/api/health": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
        "components": {
            "schemas": {
                "User": user,
                "Role": {"type": "string", "enum": ["USER", "ADMIN"]},
            },
            "responses": {"Problem": {"description": "problem"}},
        },
    }


def changed(edit: Any) -> list[str]:
    old = document()
    new = copy.deepcopy(old)
    edit(new)
    return [str(change) for change in breaking_changes(old, new)]


def test_the_same_document_has_no_breaking_change() -> None:
    assert breaking_changes(document(), document()) == []


def test_additions_pass() -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["paths"]["/api/new"] = {"get": {"responses": {"200": {"description": "ok"}}}}
        doc["paths"]["/api/health"]["post"] = {"responses": {"204": {"description": "ok"}}}
        users = doc["paths"]["/api/users"]
        users["get"]["parameters"].append(
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}}
        )
        users["get"]["responses"]["404"] = {"description": "gone"}
        body = users["post"]["requestBody"]["content"]["application/json"]["schema"]
        body["properties"]["email"] = {"type": "string"}
        doc["components"]["schemas"]["User"]["properties"]["email"] = {"type": "string"}
        doc["components"]["schemas"]["Role"]["enum"].append("AUDITOR")
        # a request type that accepts more (null too) is not breaking
        body["properties"]["name"] = {"type": ["string", "null"]}

    assert changed(add) == []


def test_a_removed_path_or_operation_breaks() -> None:
    assert changed(lambda doc: doc["paths"].pop("/api/health")) == ["/api/health: path removed"]
    assert changed(lambda doc: doc["paths"]["/api/users"].pop("post")) == [
        "POST /api/users: operation removed"
    ]


def test_a_removed_success_status_breaks() -> None:
    def move(doc: dict[str, Any]) -> None:
        post = doc["paths"]["/api/users"]["post"]
        post["responses"]["200"] = post["responses"].pop("201")

    assert changed(move) == ["POST /api/users: response 201 removed"]


def test_a_removed_response_field_breaks_wherever_the_component_is_answered() -> None:
    found = changed(lambda doc: doc["components"]["schemas"]["User"]["properties"].pop("name"))
    assert found == [
        "GET /api/users response 200[].name: response field removed",
        "POST /api/users response 201.name: response field removed",
    ]


def test_a_response_field_no_longer_always_present_breaks() -> None:
    found = changed(lambda doc: doc["components"]["schemas"]["User"]["required"].remove("id"))
    assert "POST /api/users response 201.id: response field no longer always present" in found


def test_a_removed_enum_value_breaks() -> None:
    found = changed(lambda doc: doc["components"]["schemas"]["Role"]["enum"].remove("ADMIN"))
    assert "POST /api/users body.role: enum values removed: ['ADMIN']" in found
    assert "POST /api/users response 201.role: enum values removed: ['ADMIN']" in found


def test_a_new_required_request_field_or_parameter_breaks() -> None:
    def require(doc: dict[str, Any]) -> None:
        users = doc["paths"]["/api/users"]
        body = users["post"]["requestBody"]["content"]["application/json"]["schema"]
        body["required"] = ["name"]
        users["get"]["parameters"][0]["required"] = True
        users["get"]["parameters"].append(
            {"name": "X-Tenant", "in": "header", "required": True, "schema": {"type": "string"}}
        )
        users["post"]["requestBody"]["required"] = True

    assert sorted(changed(require)) == [
        "GET /api/users: header parameter 'X-Tenant' is now required",
        "GET /api/users: query parameter 'limit' is now required",
        "POST /api/users body.name: request field is now required",
        "POST /api/users: the request body is now required",
    ]


def test_a_removed_request_field_breaks() -> None:
    def drop(doc: dict[str, Any]) -> None:
        body = doc["paths"]["/api/users"]["post"]["requestBody"]["content"]["application/json"]
        body["schema"]["properties"].pop("name")

    assert changed(drop) == ["POST /api/users body.name: request field removed"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda doc: doc["components"]["schemas"]["User"]["properties"].update(
                id={"type": "integer"}
            ),
            "POST /api/users response 201.id: type changed from ['string'] to ['integer']",
        ),
        (
            lambda doc: doc["paths"]["/api/users"]["get"]["parameters"][0].update(
                schema={"type": "string"}
            ),
            "GET /api/users query limit: type changed from ['integer'] to ['string']",
        ),
        (
            # a response that may now be null breaks a client that reads a string
            lambda doc: doc["components"]["schemas"]["User"]["properties"].update(
                name={"type": ["string", "null"]}
            ),
            "POST /api/users response 201.name: type changed",
        ),
    ],
)
def test_a_changed_type_breaks(edit: Any, expected: str) -> None:
    assert any(change.startswith(expected) for change in changed(edit)), changed(edit)


def test_a_base_without_the_document_passes_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openapi_breaking, "document_at", lambda ref: None)
    assert openapi_breaking.main(["--against", "v0.0.0"]) == 0
    assert "v0.0.0 has no openapi.json" in capsys.readouterr().out


def test_the_command_fails_on_a_breaking_change_and_says_what(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    new = document()
    new["paths"].pop("/api/health")
    path = tmp_path / "openapi.json"
    path.write_text(__import__("json").dumps(new))
    monkeypatch.setattr(openapi_breaking, "document_at", lambda ref: document())
    assert openapi_breaking.main(["--against", "v1.0.0", "--path", str(path)]) == 1
    assert "/api/health: path removed" in capsys.readouterr().err


def test_the_base_is_the_last_release_tag_else_the_previous_commit(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    for message in ("one", "two"):
        git("commit", "-q", "--allow-empty", "-m", message)
    assert openapi_breaking.base_ref(tmp_path) == "HEAD~1"
    git("tag", "v0.1.0", "HEAD~1")
    git("commit", "-q", "--allow-empty", "-m", "three")
    assert openapi_breaking.base_ref(tmp_path) == "v0.1.0"
