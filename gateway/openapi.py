"""The gateway's OpenAPI 3.1 document, generated from the route table.

Each :class:`gateway.routing.Endpoint` becomes one operation: its request
message becomes the JSON body (POST/PUT/PATCH) or query parameters (GET),
its response message the success schema, its access level the security
requirement; errors are RFC 9457 problem details. Nothing here is written by
hand per route, so a new row in the table is documented by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from gateway import constraints, refusals
from gateway.errors import PROBLEM_JSON
from gateway.protection.middleware import KeyMode
from gateway.protojson import descriptor_of
from gateway.routing import BODY_METHODS, MAX_PAGE_SIZE_PARAMETER, Access, Endpoint
from gateway.schema import Schema, SchemaSet
from runtime.pages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")

PROBLEM_SCHEMA: Schema = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "error", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "error": {"type": "string", "description": "Stable machine code, e.g. invalid_field."},
        "detail": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "field": {"type": "string", "description": "The request field to blame (JSON name)."},
    },
}

#: Where one operation's answer names what another takes (OpenAPI links): a
#: client generator and schemathesis' stateful phase follow them.
#: operation id -> (link name, target operation id, {parameter: expression}).
LINKS: Mapping[str, tuple[tuple[str, str, Mapping[str, str]], ...]] = {
    "createWithdrawal": (
        ("getWithdrawal", "getWithdrawal", {"withdrawalId": "$response.body#/withdrawal/id"}),
        (
            "approveWithdrawal",
            "approveWithdrawal",
            {"withdrawalId": "$response.body#/withdrawal/id"},
        ),
        ("rejectWithdrawal", "rejectWithdrawal", {"withdrawalId": "$response.body#/withdrawal/id"}),
    ),
    "createQuest": (
        ("updateQuest", "updateQuest", {"questId": "$response.body#/quest/id"}),
        ("archiveQuest", "archiveQuest", {"questId": "$response.body#/quest/id"}),
        ("completeQuest", "completeQuest", {"questId": "$response.body#/quest/id"}),
        ("checkQuestEligibility", "checkQuestEligibility", {"questId": "$response.body#/quest/id"}),
    ),
    "submitClick": (("getClickStatus", "getClickStatus", {"key": "$response.body#/key"}),),
}

#: A path parameter is one non-empty path segment.
_PATH_SEGMENT: Schema = {"minLength": 1, "pattern": "^[^/]+$"}

_PROBLEM_REF = {"$ref": "#/components/responses/Problem"}
_PROBLEM_REF_BODY = {
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def build_openapi(
    endpoints: Iterable[Endpoint], *, version: str, title: str = "Minequest API"
) -> dict[str, Any]:
    schemas = SchemaSet()
    paths: dict[str, dict[str, Any]] = {}
    for row in endpoints:
        path = _PATH_PARAM.sub(r"{\1}", row.path)
        paths.setdefault(path, {})[row.method.lower()] = _operation(row, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "JSON over HTTP in front of the Minequest gRPC services. "
            "Field names follow protobuf's canonical JSON mapping.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA, **dict(sorted(schemas.components.items()))},
            "responses": {
                "Problem": {
                    "description": "An error (RFC 9457 problem details).",
                    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(row: Endpoint, schemas: SchemaSet) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": row.operation_id,
        "summary": row.summary,
        "tags": [row.tag],
    }
    parameters = _parameters(row, schemas)
    if parameters:
        operation["parameters"] = parameters
    has_body = row.method in BODY_METHODS and row.request is not None
    if has_body and row.request is not None:
        body = schemas.message(
            descriptor_of(row.request), exclude=(*row.hidden_fields, *_path_names(row.path))
        )
        rules = constraints.for_message(descriptor_of(row.request).full_name)
        operation["requestBody"] = {
            # No body reads as {}: required when {} is not a valid request.
            "required": bool(rules.keys() & {"required", "oneOf", "anyOf", "not"}),
            "content": {"application/json": {"schema": body}},
        }
    if row.access is Access.OPTIONAL:
        operation["security"] = [{}, {"bearerAuth": []}]
    elif row.access is not Access.PUBLIC:
        operation["security"] = [{"bearerAuth": []}]
    responses: dict[str, Any] = {str(row.status): _success(row, schemas)}
    links = LINKS.get(row.operation_id, ())
    if links:
        responses[str(row.status)]["links"] = {
            name: {"operationId": target, "parameters": dict(parameters)}
            for name, target, parameters in links
        }
    for status, description in row.other_statuses.items():
        responses[str(status)] = {**_success(row, schemas), "description": description}
    gateway = refusals.gateway_codes(
        has_input=has_body or bool(parameters),
        has_body=has_body,
        signed_in=row.access is not Access.PUBLIC,
        admin=row.access is Access.ADMIN,
        key=row.key_mode is not KeyMode.IGNORED,
        key_required=row.key_mode in (KeyMode.REQUIRED, KeyMode.IN_SERVICE),
    )
    for status, codes in refusals.codes_for(row.operation_id, gateway).items():
        responses.setdefault(str(status), _problem(status, codes))
    responses.update({"4XX": _PROBLEM_REF, "5XX": _PROBLEM_REF})
    operation["responses"] = responses
    return operation


def _problem(status: int, codes: list[str]) -> dict[str, Any]:
    """A problem+json answer, with the codes (``error``) it may carry."""
    phrase = HTTPStatus(status).phrase
    return {
        **_PROBLEM_REF_BODY,
        "description": f"{phrase}: {', '.join(f'`{code}`' for code in codes)}",
        "x-problem-codes": codes,
    }


def _success(row: Endpoint, schemas: SchemaSet) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": row.summary}
    schema: Schema | None = None
    if row.response is not None:
        schema = schemas.message(descriptor_of(row.response))
    elif row.response_schema is not None:
        schema = dict(row.response_schema)
    if schema is not None:
        answer["content"] = {row.media_type: {"schema": schema}}
    if row.headers:
        answer["headers"] = {
            name: {"schema": {"type": "string", "const": value}}
            for name, value in row.headers.items()
        }
    return answer


def _path_names(path: str) -> list[str]:
    return _PATH_PARAM.findall(path)


def _parameters(row: Endpoint, schemas: SchemaSet) -> list[dict[str, Any]]:
    fields: dict[str, FieldDescriptor] = {}
    if row.request is not None:
        for field in schemas.visible_fields(descriptor_of(row.request), row.hidden_fields):
            fields[field.name] = field
            fields[field.json_name] = field
    parameters: list[dict[str, Any]] = []
    names = _path_names(row.path)
    required = (
        set(constraints.required_fields(descriptor_of(row.request).full_name))
        if row.request is not None
        else set()
    )
    for name in names:
        found = fields.get(name)
        schema = schemas.field(found) if found is not None else {"type": "string"}
        if "pattern" not in schema and "enum" not in schema:
            schema = {**schema, **_PATH_SEGMENT}  # what the route template matches
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    if row.key_mode is not KeyMode.IGNORED:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": row.key_mode in (KeyMode.REQUIRED, KeyMode.IN_SERVICE),
                "description": "A unique value per operation; a retry with the same key "
                "replays the first answer (X-Idempotency: HIT).",
                "schema": dict(constraints.IDEMPOTENCY_KEY),
            }
        )
    if row.method not in BODY_METHODS and row.request is not None:
        for field in schemas.visible_fields(descriptor_of(row.request), row.hidden_fields):
            if field.name in names or field.json_name in names:
                continue
            parameters.append(
                {
                    "name": field.json_name,
                    "in": "query",
                    "required": field.json_name in required,
                    "schema": schemas.field(field),
                }
            )
    if "page" in row.server_fields:
        parameters += _PAGE_PARAMETERS
    return parameters


#: A paged list's query parameters (:func:`gateway.routing.page_request`).
_PAGE_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "pageSize",
        "in": "query",
        "required": False,
        "description": f"Items per page (0 or absent: {DEFAULT_PAGE_SIZE}; at most "
        f"{MAX_PAGE_SIZE} are answered, a larger size is read as {MAX_PAGE_SIZE})",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE_SIZE_PARAMETER},
    },
    {
        "name": "pageToken",
        "in": "query",
        "required": False,
        "description": "The nextPageToken of the page before (absent: the first page)",
        "schema": {"type": "string", "maxLength": 1024},
    },
]
