"""JSON Schemas derived from protobuf descriptors, per the canonical JSON mapping.

Names are lowerCamelCase; 64-bit integers are strings; enums are their value
names; ``Timestamp`` is an RFC 3339 ``date-time`` string; other well-known
types follow the mapping too. Messages become named components
(``#/components/schemas/<full.name>``) collected in a :class:`SchemaSet`.
What the server checks beyond the types (lengths, patterns, ranges, required
fields) comes from one table, :mod:`gateway.constraints`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway import constraints

Schema = dict[str, Any]

_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64", "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": r"^\d+$"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": r"^\d+$"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

_WRAPPERS = {
    "DoubleValue": FieldDescriptor.TYPE_DOUBLE,
    "FloatValue": FieldDescriptor.TYPE_FLOAT,
    "Int64Value": FieldDescriptor.TYPE_INT64,
    "UInt64Value": FieldDescriptor.TYPE_UINT64,
    "Int32Value": FieldDescriptor.TYPE_INT32,
    "UInt32Value": FieldDescriptor.TYPE_UINT32,
    "BoolValue": FieldDescriptor.TYPE_BOOL,
    "StringValue": FieldDescriptor.TYPE_STRING,
    "BytesValue": FieldDescriptor.TYPE_BYTES,
}

_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    **{f"google.protobuf.{name}": dict(_SCALARS[kind]) for name, kind in _WRAPPERS.items()},
}


class SchemaSet:
    """Named component schemas, filled as messages and enums are referenced."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def message(self, descriptor: Descriptor, *, exclude: Iterable[str] = ()) -> Schema:
        """A schema for a message: a ``$ref`` to its component, or inline when
        ``exclude`` hides some of its fields (those set by the server)."""
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        hidden = set(exclude)
        if hidden:
            return self._object(descriptor, hidden)
        name = descriptor.full_name
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive messages refer to it
            self.components[name] = self._object(descriptor, set())
        return {"$ref": f"#/components/schemas/{name}"}

    def field(self, field: FieldDescriptor) -> Schema:
        """The schema of one field's JSON value (arrays and maps included)."""
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            value = message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value)}
        single = self._single(field)
        owner = field.containing_type
        rules = constraints.for_field(owner.full_name if owner else "", field.name)
        if field.is_repeated:
            single.update(rules.pop("items", {}))
            return {"type": "array", "items": single, **rules}
        single.update(rules)
        if field.has_presence and field.message_type is None and "type" in single:
            # proto3 `optional`: JSON null means "not set" (on PATCH: leave unchanged).
            return {**single, "type": [single["type"], "null"]}
        return single

    def visible_fields(
        self, descriptor: Descriptor, exclude: Iterable[str] = ()
    ) -> list[FieldDescriptor]:
        hidden = set(exclude)
        return [
            field
            for field in descriptor.fields
            if field.name not in hidden and field.json_name not in hidden
        ]

    def _object(self, descriptor: Descriptor, hidden: set[str]) -> Schema:
        properties = {
            field.json_name: self.field(field) for field in self.visible_fields(descriptor, hidden)
        }
        # The gateway refuses unknown fields (400 invalid_field): say so.
        schema: Schema = {
            "type": "object",
            "title": descriptor.name,
            "properties": properties,
            "additionalProperties": False,
        }
        rules = constraints.for_message(descriptor.full_name)
        if "required" in rules:
            rules["required"] = [name for name in rules["required"] if name in properties]
        schema.update({key: value for key, value in rules.items() if value})
        return schema

    def _single(self, field: FieldDescriptor) -> Schema:
        if field.enum_type is not None:
            return self._enum(field.enum_type)
        if field.message_type is not None:
            return self.message(field.message_type)
        return dict(_SCALARS[field.type])

    def _enum(self, descriptor: EnumDescriptor) -> Schema:
        name = descriptor.full_name
        if name == "google.protobuf.NullValue":
            return {"type": "null"}
        if name not in self.components:
            self.components[name] = {
                "type": "string",
                "title": descriptor.name,
                "enum": [value.name for value in descriptor.values],
            }
        return {"$ref": f"#/components/schemas/{name}"}
