"""The gateway's OpenAPI 3.1 document, generated from the route table.

Each :class:`gateway.routing.Endpoint` becomes one operation: its request
message becomes the JSON body (POST/PUT/PATCH) or query parameters (GET),
its response message the success schema, its access level the security
requirement; errors are RFC 9457 problem details. Nothing here is written by
hand per route, so a new row in the table is documented by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from gateway.errors import PROBLEM_JSON
from gateway.protection.middleware import KeyMode
from gateway.protojson import descriptor_of
from gateway.routing import BODY_METHODS, Access, Endpoint
from gateway.schema import Schema, SchemaSet
from runtime.idempotency import MAX_KEY_LENGTH, PATTERN

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
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    if row.access is Access.OPTIONAL:
        operation["security"] = [{}, {"bearerAuth": []}]
    elif row.access is not Access.PUBLIC:
        operation["security"] = [{"bearerAuth": []}]
    responses: dict[str, Any] = {str(row.status): _success(row, schemas)}
    for status, description in row.other_statuses.items():
        responses[str(status)] = {**_success(row, schemas), "description": description}
    if has_body or parameters:
        responses["400"] = _PROBLEM_REF
    if row.access is not Access.PUBLIC:
        responses["401"] = _PROBLEM_REF
    if row.access is Access.ADMIN:
        responses["403"] = _PROBLEM_REF
    if has_body:
        responses["413"] = _PROBLEM_REF
    if row.key_mode is not KeyMode.IGNORED:
        responses["409"] = {**_PROBLEM_REF_BODY, "description": "Idempotency-Key in flight"}
        responses["422"] = {**_PROBLEM_REF_BODY, "description": "Idempotency-Key reused"}
    responses["429"] = {**_PROBLEM_REF_BODY, "description": "Rate limited (see Retry-After)"}
    responses.update({"4XX": _PROBLEM_REF, "5XX": _PROBLEM_REF})
    operation["responses"] = responses
    return operation


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
    for name in names:
        found = fields.get(name)
        schema = schemas.field(found) if found is not None else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    if row.key_mode is not KeyMode.IGNORED:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": row.key_mode in (KeyMode.REQUIRED, KeyMode.IN_SERVICE),
                "description": "A unique value per operation; a retry with the same key "
                "replays the first answer (X-Idempotency: HIT).",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_LENGTH,
                    "pattern": PATTERN,
                },
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
                    "required": False,
                    "schema": schemas.field(field),
                }
            )
    return parameters
