"""JSON bodies and query strings <-> protobuf messages (canonical JSON mapping).

Requests parse straight into the RPC's request message with
``json_format.ParseDict`` and unknown fields refused, so the ``.proto`` is
the only schema. Every mistake names the field to blame: malformed JSON (or
JSON nested deeper than :data:`MAX_DEPTH`, or not UTF-8) is ``invalid_json``;
a non-object body, a wrong type or an unknown field is ``invalid_field``.

Responses are rendered with lowerCamelCase names, every field present
(defaults included), int64 as strings and enums by name.

A body is parsed once per request (:class:`RequestBody`): the idempotency
fingerprint, body-keyed rate limits and the handler share the result.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from starlette.datastructures import QueryParams
from starlette.responses import Response

from gateway.errors import ApiError, invalid_field, invalid_json

M = TypeVar("M", bound=Message)

JSON = "application/json"
#: Deepest nesting of objects and arrays a request body may have. Our messages
#: need a handful of levels; a deeper body is a client mistake (400), never a
#: RecursionError further down.
MAX_DEPTH = 32


def descriptor_of(message_type: type[Message]) -> Descriptor:
    """A message class's descriptor (typed: the stubs leave it a union)."""
    return cast(Descriptor, message_type.DESCRIPTOR)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(body: bytes) -> Any:
    """The JSON value of a request body (``{}`` when blank); 400 ``invalid_json``
    when it is not JSON, not UTF-8, or nested deeper than :data:`MAX_DEPTH`.

    The depth is checked on the bytes *before* parsing: CPython's C parser
    recurses once per level, and a body of a few hundred thousand ``[`` can
    exhaust the C stack (a crash, not a RecursionError) when the request is
    already deep in the ASGI stack.
    """
    if not body.strip():
        return {}
    if _nested_too_deep(body):
        raise _too_deep()
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as error:  # UnicodeDecodeError included
        raise invalid_json(f"the request body is not valid JSON: {error}") from None


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def _nested_too_deep(body: bytes) -> bool:
    """Whether arrays and objects nest deeper than :data:`MAX_DEPTH` (brackets
    inside strings do not count). Most bodies have too few brackets to tell."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b"", body)):
        if bracket[0] in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _too_deep() -> ApiError:
    return invalid_json(f"the request body is nested deeper than {MAX_DEPTH} levels")


class RequestBody:
    """A request's raw body and, parsed on first use and kept, its JSON."""

    __slots__ = ("_error", "_json", "_parsed", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._parsed = False
        self._json: Any = None
        self._error: ApiError | None = None

    def json(self) -> Any:
        """The JSON value (see :func:`load_json`); raises the same 400 every call."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = load_json(self.raw)
            except ApiError as error:
                self._error = error
        if self._error is not None:
            raise self._error
        return self._json

    def json_or_none(self) -> Any:
        """The JSON value, or ``None`` when the body is not acceptable JSON."""
        try:
            return self.json()
        except ApiError:
            return None


def parse_body(
    body: bytes | RequestBody, message_type: type[M], *, extra: Mapping[str, Any] | None = None
) -> M:
    """Parse a JSON object into ``message_type``; an empty body is ``{}``.

    ``extra`` (path parameters) is merged over the body before parsing.
    """
    data = body.json() if isinstance(body, RequestBody) else load_json(body)
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
    null = _null_field(data, descriptor_of(message_type))
    if null is not None:
        raise invalid_field(f"{null} may not be null (leave it out instead)", null)
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


def _null_field(data: Mapping[str, Any], descriptor: Descriptor, prefix: str = "") -> str | None:
    """The first field set to JSON ``null`` that the OpenAPI document does not
    let be null (only proto3 ``optional`` scalars may: "not set")."""
    fields = _fields(descriptor)
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            continue
        nested = field.message_type
        if value is None:
            nullable = nested is None and field.has_presence and not field.is_repeated
            if not nullable and not (nested and nested.full_name == "google.protobuf.Value"):
                return f"{prefix}{key}"
        elif (
            isinstance(value, dict)
            and nested is not None
            and not field.is_repeated
            and not nested.GetOptions().map_entry
            and not nested.full_name.startswith("google.protobuf.")
        ):
            found = _null_field(value, nested, f"{prefix}{key}.")
            if found:
                return found
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
