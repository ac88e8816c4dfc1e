"""JSON bodies and query strings <-> protobuf messages (canonical JSON mapping).

Requests parse straight into the RPC's request message with
``json_format.ParseDict`` and unknown fields refused, so the ``.proto`` is
the only schema. Every mistake names the field to blame: malformed JSON is
``invalid_json``; a non-object body, a wrong type or an unknown field is
``invalid_field``. Responses are rendered with lowerCamelCase names, every
field present (defaults included), int64 as strings and enums by name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from starlette.datastructures import QueryParams
from starlette.responses import Response

from gateway.errors import invalid_field, invalid_json

M = TypeVar("M", bound=Message)

JSON = "application/json"


def descriptor_of(message_type: type[Message]) -> Descriptor:
    """A message class's descriptor (typed: the stubs leave it a union)."""
    return cast(Descriptor, message_type.DESCRIPTOR)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes, message_type: type[M], *, extra: Mapping[str, Any] | None = None) -> M:
    """Parse a JSON object into ``message_type``; an empty body is ``{}``.

    ``extra`` (path parameters) is merged over the body before parsing.
    """
    data: Any = {}
    if body.strip():
        try:
            data = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:
            raise invalid_json(f"the request body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise invalid_field("the request body must be a JSON object", None)
    if extra:
        data = {**data, **extra}
    return parse_dict(data, message_type)


def parse_query(
    query: QueryParams, message_type: type[M], *, extra: Mapping[str, Any] | None = None
) -> M:
    """Build ``message_type`` from query parameters (repeated keys for lists).

    Parameters the message does not know are ignored, as caches and
    cache-busters add them; known ones must have the right type.
    """
    fields = _fields(descriptor_of(message_type))
    data: dict[str, Any] = {}
    for key in query:
        field = fields.get(key)
        if field is None:
            continue
        values = query.getlist(key)
        data[key] = values if field.is_repeated else values[-1]
    if extra:
        data.update(extra)
    return parse_dict(data, message_type)


def parse_dict(data: dict[str, Any], message_type: type[M]) -> M:
    message = message_type()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        found = locate_error(data, descriptor_of(message_type))
        field, detail = found if found else (None, str(error))
        raise invalid_field(detail, field) from None
    return message


def locate_error(
    data: Mapping[str, Any], descriptor: Descriptor, prefix: str = ""
) -> tuple[str, str] | None:
    """``(path, problem)`` of the first field in ``data`` that ``descriptor`` refuses."""
    fields = _fields(descriptor)
    probe = message_factory.GetMessageClass(descriptor)
    for key, value in data.items():
        path = f"{prefix}{key}"
        field = fields.get(key)
        if field is None:
            return path, f"unknown field {path!r}"
        try:
            json_format.ParseDict({key: value}, probe(), ignore_unknown_fields=False)
        except json_format.ParseError as error:
            nested = field.message_type
            if (
                nested is not None
                and not field.is_repeated
                and isinstance(value, dict)
                and not nested.full_name.startswith("google.protobuf.")
            ):
                return locate_error(value, nested, f"{path}.") or (path, str(error))
            return path, f"{path} has the wrong type or value: {error}"
    return None


@functools.cache
def _fields(descriptor: Descriptor) -> Mapping[str, FieldDescriptor]:
    """Fields by every name the JSON mapping accepts (json name and proto name);
    built once per message type, not on every request."""
    names: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        names[field.name] = field
        names[field.json_name] = field
    return names


def to_dict(message: Message) -> dict[str, Any]:
    """A message as canonical JSON (lowerCamelCase, defaults included)."""
    result: dict[str, Any] = json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True
    )
    return result


def json_response(
    message: Message | None, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response for a message; ``None`` (or 204) answers no body."""
    if message is None or status == 204:
        return Response(status_code=status, headers=dict(headers or {}))
    body = json.dumps(to_dict(message), separators=(",", ":"), ensure_ascii=False)
    return Response(body.encode(), status_code=status, headers=dict(headers or {}), media_type=JSON)
