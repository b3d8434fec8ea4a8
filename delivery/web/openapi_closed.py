"""The OpenAPI document says what msgspec enforces (R4.2), where Litestar 2.25 leaves it out:
- a Struct that forbids unknown fields is an object with `additionalProperties: false`
  (litestar#4575), so a client generator or a fuzzer does not believe extra fields are welcome;
- an integer's bounds survive `| None` and lists (`ge=0` was dropped as falsy, list items lost theirs).
Drop each part once Litestar does it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIType
from litestar.openapi.spec import Schema as SchemaSpec
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Schema


def _integers(schema: Schema) -> list[Schema]:
    """The integer schemas a field's schema holds: itself, a `oneOf` branch, or its list's items."""
    found = []
    for part in [schema, *(schema.one_of or [])]:
        if not isinstance(part, SchemaSpec):
            continue
        if part.type == OpenAPIType.INTEGER:
            found.append(part)
        if isinstance(part.items, SchemaSpec) and part.items.type == OpenAPIType.INTEGER:
            found.append(part.items)
    return found


def _int_type(kind: msgspec.inspect.Type) -> msgspec.inspect.IntType | None:
    """The bounded integer a field holds (alone, optional, or as its list's items)."""
    for _ in range(4):  # Metadata around a Union around a List around Metadata around the int
        if isinstance(kind, msgspec.inspect.Metadata):
            kind = kind.type
        elif isinstance(kind, msgspec.inspect.UnionType):
            kinds = [k for k in kind.types if not isinstance(k, msgspec.inspect.NoneType)]
            kind = kinds[0] if len(kinds) == 1 else kind
        elif isinstance(kind, msgspec.inspect.ListType):
            kind = kind.item_type
    return kind if isinstance(kind, msgspec.inspect.IntType) else None


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        for field in info.fields:
            bounds = _int_type(field.type)
            prop = (schema.properties or {}).get(field.encode_name)
            if bounds is None or not isinstance(prop, SchemaSpec):
                continue
            for integer in _integers(prop):
                low = bounds.ge if bounds.ge is not None else None if bounds.gt is None else bounds.gt + 1
                high = bounds.le if bounds.le is not None else None if bounds.lt is None else bounds.lt - 1
                integer.minimum = low if low is not None else integer.minimum
                integer.maximum = high if high is not None else integer.maximum
        return schema
