"""A Gemini ``Schema`` (OpenAPI 3.0 subset) -> JSON Schema, for tools and structured output.

- ``type`` names are lower-cased (``STRING`` -> ``string``; ``TYPE_UNSPECIFIED`` is dropped);
- ``nullable: true`` -> ``type: [T, "null"]`` (``null`` added to an ``enum``, a
  ``{"type": "null"}`` member to an ``anyOf``);
- ``properties``, ``items``, ``anyOf`` are converted recursively; ``required``, ``enum``,
  ``format``, ``description``, ``title``, ``pattern``, ``default``, ``minimum``/``maximum``
  and the ``min*``/``max*`` counts (given as numbers or as the strings proto JSON allows) are
  kept; ``example`` -> ``examples: [example]``;
- ``propertyOrdering`` (a Gemini-only hint) is dropped.

It is the inverse of the plugin's own OpenAI -> Gemini conversion (`compatgate_gemini.schema`)
wherever both can express the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["to_json_schema"]

_KEPT = ("format", "description", "title", "pattern", "default", "minimum", "maximum")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema for a (validated) Gemini ``Schema``."""
    out: dict[str, Any] = {}
    kind = schema.get("type")
    name = kind.lower() if isinstance(kind, str) and kind.upper() != "TYPE_UNSPECIFIED" else None
    nullable = schema.get("nullable") is True
    if name is not None:
        out["type"] = [name, "null"] if nullable and name != "null" else name
    for key in _KEPT:
        if key in schema:
            out[key] = schema[key]
    for key in _COUNTS:
        value = schema.get(key)
        if value is not None:
            out[key] = int(value)
    if "example" in schema:
        out["examples"] = [schema["example"]]
    if isinstance(schema.get("enum"), list):
        out["enum"] = [*schema["enum"], None] if nullable else list(schema["enum"])
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {key: to_json_schema(value) for key, value in properties.items()}
    if isinstance(schema.get("required"), list):
        out["required"] = list(schema["required"])
    if isinstance(schema.get("items"), Mapping):
        out["items"] = to_json_schema(schema["items"])
    variants = schema.get("anyOf")
    if isinstance(variants, list):
        out["anyOf"] = [to_json_schema(variant) for variant in variants]
        if nullable and name is None:
            out["anyOf"].append({"type": "null"})
    return out
