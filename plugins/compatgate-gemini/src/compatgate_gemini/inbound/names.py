"""Field names of Gemini request bodies: ``snake_case`` and ``camelCase`` alike.

The Gemini REST API accepts both spellings of every field (proto JSON): the SDKs send
``inlineData``, Google's own curl examples ``inline_data``. `camel_case` returns a copy of a
request in which every *field* name is in camelCase, walking the known message types, while
client data keeps its keys untouched: function ``args`` and ``response``, JSON Schemas given as
``parametersJsonSchema``/``responseJsonSchema``, the property names of a ``Schema``, ``labels``.
A field given in both spellings is a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compatgate import InvalidRequestError

__all__ = ["camel", "camel_case"]

Kind = str | list[str] | None  # a message type, an array of one, or None: the value is data

_REQUEST: dict[str, Kind] = {
    "contents": ["content"], "systemInstruction": "content", "tools": ["tool"],
    "toolConfig": "toolConfig", "generationConfig": "generationConfig",
    "safetySettings": ["fields"], "generateContentRequest": "request",
}
_MESSAGES: dict[str, dict[str, Kind]] = {
    "request": _REQUEST,
    "content": {"parts": ["part"]},
    "part": {"inlineData": "fields", "fileData": "fields", "functionCall": "functionCall",
             "functionResponse": "functionResponse", "executableCode": "fields",
             "codeExecutionResult": "fields", "videoMetadata": "fields"},
    "functionCall": {"args": None},
    "functionResponse": {"response": None, "parts": ["part"]},
    "tool": {"functionDeclarations": ["declaration"], "googleSearch": "fields",
             "googleSearchRetrieval": "fields", "codeExecution": "fields", "urlContext": "fields"},
    "declaration": {"parameters": "schema", "response": "schema", "parametersJsonSchema": None,
                    "responseJsonSchema": None},
    "schema": {"properties": "properties", "items": "schema", "anyOf": ["schema"], "default": None,
               "example": None, "enum": None},
    "toolConfig": {"functionCallingConfig": "fields", "retrievalConfig": "fields"},
    "generationConfig": {"thinkingConfig": "fields", "responseSchema": "schema",
                         "responseJsonSchema": None, "speechConfig": None, "imageConfig": "fields"},
    "embed": {"content": "content", "requests": ["embed"]},
    "fields": {},  # a message whose fields hold plain values
}
_MAX_DEPTH = 200  # the validator refuses schemas nested deeper than 64 first


def camel(name: str) -> str:
    """``inline_data`` -> ``inlineData`` (names without ``_`` are returned as they are)."""
    if "_" not in name.strip("_"):
        return name
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_case(body: Mapping[str, Any], kind: str = "request") -> dict[str, Any]:
    """A copy of ``body`` (a message of type ``kind``: ``request``, ``embed``...) with its field
    names in camelCase."""
    return _message(body, kind, "", 0)


def _message(value: Mapping[str, Any], kind: str, where: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise InvalidRequestError(f"Invalid value at '{where}': nested more than {_MAX_DEPTH} levels deep.",
                                  param=where)
    fields = _MESSAGES[kind]
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = camel(key) if isinstance(key, str) else key
        if name in out:
            raise InvalidRequestError(f"Invalid value at '{where}{name}': given twice (as {key!r} too).",
                                      param=where + name)
        out[name] = _value(item, fields.get(name), f"{where}{name}", depth)
    return out


def _value(value: Any, kind: Kind, where: str, depth: int) -> Any:
    if kind is None:
        return value
    if isinstance(kind, list):
        if not isinstance(value, list):
            return value  # the validator names the wrong type
        return [_value(item, kind[0], f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
    if not isinstance(value, Mapping):
        return value
    if kind == "properties":
        return {name: _value(schema, "schema", f"{where}.{name}", depth + 1) for name, schema in value.items()}
    return _message(value, kind, where + ".", depth + 1)
