"""JSON Schema (as OpenAI tools and ``response_format`` carry it) made acceptable to Gemini.

Gemini's ``Schema`` object (``parameters``, ``responseSchema``) is a subset of OpenAPI 3.0:
`to_gemini_schema` translates what has an equivalent and drops what Gemini would reject:

- ``$ref`` into ``$defs``/``definitions`` is inlined (a recursive schema is a 400: it cannot
  be expressed without references);
- ``type: [T, "null"]`` and ``anyOf``/``oneOf`` with a ``null`` member become ``nullable``;
  several types become ``anyOf``; ``oneOf`` becomes ``anyOf``; ``allOf`` is merged;
- ``const`` becomes a one-value ``enum``; an enum of non-strings is moved into the description
  (Gemini enums are strings); ``examples`` becomes ``example``;
- ``exclusiveMinimum``/``exclusiveMaximum`` on integers become ``minimum``/``maximum``;
- a ``format`` Gemini does not know is moved into the description;
- ``required`` keeps only declared properties; an object without properties loses the empty
  ``properties``; type names are upper-cased (``STRING``, ``OBJECT``...);
- every other keyword (``additionalProperties``, ``$schema``, ``title``, ``patternProperties``,
  ``not``, ``if``...) is dropped.

`to_json_schema` is the light cleaning used with ``tool_schema = "json_schema"``, which sends
``parametersJsonSchema``/``responseJsonSchema`` (full JSON Schema, newer models) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compatgate import InvalidRequestError

__all__ = ["to_gemini_schema", "to_json_schema"]

Schema = dict[str, Any]

_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}
_KEPT = ("description", "default", "example", "minItems", "maxItems", "minLength", "maxLength",
         "pattern", "minimum", "maximum", "minProperties", "maxProperties", "propertyOrdering")
_MAX_DEPTH = 64


def to_json_schema(schema: Any) -> Schema:
    """``schema`` for ``parametersJsonSchema``: only the ``$schema`` marker is removed."""
    if not isinstance(schema, Mapping):
        return {"type": "object"}
    return {key: value for key, value in schema.items() if key != "$schema"}


def to_gemini_schema(schema: Any, *, where: str) -> Schema:
    """``schema`` as a Gemini ``Schema``; ``where`` names the request field for errors."""
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"'{where}' must be a JSON Schema object.", param=where)
    root = dict(schema)
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        if isinstance(root.get(key), Mapping):
            defs.update({f"#/{key}/{name}": value for name, value in root[key].items()})
    return _Converter(defs, where).convert(root, (), 0)


class _Converter:
    def __init__(self, defs: dict[str, Any], where: str) -> None:
        self.defs = defs
        self.where = where

    def fail(self, message: str) -> InvalidRequestError:
        return InvalidRequestError(f"'{self.where}': {message}", param=self.where)

    def convert(self, node: Any, refs: tuple[str, ...], depth: int) -> Schema:
        if depth > _MAX_DEPTH:
            raise self.fail(f"the schema is nested deeper than {_MAX_DEPTH} levels.")
        if node is True or node is None:
            return {}
        if not isinstance(node, Mapping):
            raise self.fail("every schema must be a JSON object.")
        node = dict(node)
        ref = node.pop("$ref", None)
        if isinstance(ref, str):
            if ref in refs:
                raise self.fail(
                    f"the schema is recursive ({ref}), which Gemini's schema cannot express; "
                    'configure tool_schema = "json_schema" for models that accept JSON Schema.'
                )
            target = self.defs.get(ref)
            if target is None:
                raise self.fail(f"the reference {ref!r} does not point into $defs or definitions.")
            return self.convert({**_as_dict(target), **node}, (*refs, ref), depth + 1)
        if isinstance(node.get("allOf"), list):
            return self.convert(_merge_all_of(node), refs, depth + 1)
        out: Schema = {}
        nullable = node.get("nullable") is True
        variants = node.get("anyOf") if isinstance(node.get("anyOf"), list) else node.get("oneOf")
        if isinstance(variants, list):
            members = [v for v in variants if not _is_null(v)]
            nullable = nullable or len(members) < len(variants)
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            if len(members) == 1:
                merged = self.convert({**_as_dict(members[0]), **rest}, refs, depth + 1)
                return _with_nullable(merged, nullable)
            out["anyOf"] = [self.convert(member, refs, depth + 1) for member in members]
        type_ = node.get("type")
        if isinstance(type_, list):
            names = [t for t in type_ if t != "null"]
            nullable = nullable or len(names) < len(type_)
            if len(names) > 1:
                rest = {k: v for k, v in node.items() if k != "type"}
                out["anyOf"] = [self.convert({**rest, "type": name}, refs, depth + 1) for name in names]
                if isinstance(node.get("description"), str):
                    out["description"] = node["description"]
                return _with_nullable(out, nullable)
            type_ = names[0] if names else "null"
        self.fill(out, node, type_, refs, depth)
        return _with_nullable(out, nullable)

    def fill(self, out: Schema, node: dict[str, Any], type_: Any, refs: tuple[str, ...], depth: int) -> None:
        notes: list[str] = []
        if "const" in node:
            node.setdefault("enum", [node["const"]])
        enum = node.get("enum")
        if isinstance(enum, list):
            values = [v for v in enum if v is not None]
            if len(values) < len(enum):
                out["nullable"] = True
            if values and all(isinstance(v, str) for v in values):
                out["enum"] = values
                type_ = type_ or "string"
            elif values:
                notes.append("Allowed values: " + ", ".join(_show(v) for v in values))
        if type_ is None:
            type_ = "object" if "properties" in node else "array" if "items" in node else None
        if isinstance(type_, str):
            if type_ not in _TYPES:
                raise self.fail(f"unknown type {type_!r}.")
            out["type"] = type_.upper()
        for key in _KEPT:
            if key in node:
                out[key] = node[key]
        if "example" not in out and isinstance(node.get("examples"), list) and node["examples"]:
            out["example"] = node["examples"][0]
        if out.get("type") == "INTEGER":
            for key, bound, step in (("exclusiveMinimum", "minimum", 1), ("exclusiveMaximum", "maximum", -1)):
                value = node.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    out[bound] = value + step
        fmt = node.get("format")
        if isinstance(fmt, str):
            if fmt in _FORMATS.get(out.get("type", ""), ()):
                out["format"] = fmt
            else:
                notes.append(f"Format: {fmt}")
        properties = node.get("properties")
        if isinstance(properties, Mapping) and properties:
            out["properties"] = {
                str(name): self.convert(value, refs, depth + 1) for name, value in properties.items()
            }
            required = node.get("required")
            if isinstance(required, list):
                kept = [name for name in required if name in out["properties"]]
                if kept:
                    out["required"] = kept
        items = node.get("items")
        if isinstance(items, list):
            items = {"anyOf": items} if len(items) != 1 else items[0]
        if isinstance(items, Mapping) or items is True:
            out["items"] = self.convert(items, refs, depth + 1)
        elif out.get("type") == "ARRAY" and isinstance(node.get("prefixItems"), list):
            out["items"] = self.convert({"anyOf": node["prefixItems"]}, refs, depth + 1)
        if notes:
            description = out.get("description")
            text = "; ".join(notes)
            out["description"] = f"{description} ({text})" if isinstance(description, str) and description else text


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    """``allOf`` folded into one schema: properties and required lists united, the rest of the
    later members overriding the earlier ones."""
    merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[str] = list(merged.get("required") or [])
    for member in node["allOf"]:
        member = _as_dict(member)
        if "$ref" in member or "allOf" in member:
            raise InvalidRequestError(
                "'allOf' members with $ref or nested allOf cannot be converted for Gemini; inline them."
            )
        properties.update(member.get("properties") or {})
        required += [name for name in member.get("required") or [] if name not in required]
        merged.update({k: v for k, v in member.items() if k not in ("properties", "required")})
    if properties:
        merged["properties"] = properties
        merged.setdefault("type", "object")
    if required:
        merged["required"] = required
    return merged


def _with_nullable(schema: Schema, nullable: bool) -> Schema:
    if nullable:
        schema["nullable"] = True
    return schema


def _is_null(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "null" and len(schema) == 1


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
