"""Checks of Gemini request bodies before anything reads them: a clear 400, never a 500.

`validate` checks a ``GenerateContentRequest`` (``generateContent`` and
``streamGenerateContent``): the type of every field the conversion reads, numbers within the
ranges Gemini documents (an absurd ``maxOutputTokens`` is a 400 here, not an overflow later),
one data field per part. Fields it does not know are left alone (a native Gemini upstream may
know them; `to_chat` refuses what it cannot convert). `validate_count_tokens`,
`validate_embed_content` and `validate_batch_embed_contents` do the same for the other
methods. Field names may be in camelCase or snake_case (see `names`); messages name fields in
camelCase, the way ``param`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from compatgate import InvalidRequestError

from .names import camel_case

__all__ = ["validate", "validate_batch_embed_contents", "validate_count_tokens", "validate_embed_content"]

INT32 = 2**31 - 1
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
               "codeExecutionResult")
THINKING_LEVELS = ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH")
MODES = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")
SCHEMA_TYPES = ("TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")
_MAX_SCHEMA_DEPTH = 64
# generationConfig: name -> (kind, minimum, maximum)
_NUMBERS: dict[str, tuple[str, float, float]] = {
    "temperature": ("number", 0.0, 2.0),
    "topP": ("number", 0.0, 1.0),
    "topK": ("integer", 1, INT32),
    "maxOutputTokens": ("integer", 1, INT32),
    "candidateCount": ("integer", 1, 8),
    "seed": ("integer", -INT32 - 1, INT32),
    "presencePenalty": ("number", -2.0, 2.0),
    "frequencyPenalty": ("number", -2.0, 2.0),
    "logprobs": ("integer", 0, 20),
}


def fail(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid value at '{where}': {message}", param=where)


def validate(body: Any) -> None:
    """Check a ``GenerateContentRequest``; raise `InvalidRequestError` naming the field."""
    request = _request(body)
    _contents(request.get("contents"), "contents", required=True)
    _generate_fields(request, "")


def validate_count_tokens(body: Any) -> None:
    """Check a ``countTokens`` body: ``contents``, or a whole ``generateContentRequest``."""
    request = _request(body)
    inner = request.get("generateContentRequest")
    if inner is not None:
        if "contents" in request:
            raise fail("contents", "give either 'contents' or 'generateContentRequest', not both.")
        _object(inner, "generateContentRequest")
        _contents(inner.get("contents"), "generateContentRequest.contents", required=True)
        _generate_fields(inner, "generateContentRequest.")
    else:
        _contents(request.get("contents"), "contents", required=True)


def validate_embed_content(body: Any) -> None:
    """Check an ``embedContent`` body (``content``, ``outputDimensionality``...)."""
    _embed_request(_request(body, "embed"), "")


def validate_batch_embed_contents(body: Any) -> None:
    """Check a ``batchEmbedContents`` body: a non-empty array of ``requests``."""
    requests = _request(body, "embed").get("requests")
    _array(requests, "requests", required=True)
    for index, item in enumerate(requests):
        _object(item, f"requests[{index}]")
        _embed_request(item, f"requests[{index}].")


def _request(body: Any, kind: str = "request") -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequestError("The request body must be a JSON object.")
    return camel_case(body, kind)


def _generate_fields(request: Mapping[str, Any], prefix: str) -> None:
    if request.get("systemInstruction") is not None:
        _content(request["systemInstruction"], f"{prefix}systemInstruction")
    _tools(request.get("tools"), f"{prefix}tools")
    _tool_config(request.get("toolConfig"), f"{prefix}toolConfig")
    _generation_config(request.get("generationConfig"), f"{prefix}generationConfig")
    settings = request.get("safetySettings")
    if settings is not None:
        _array(settings, f"{prefix}safetySettings")
        for index, setting in enumerate(settings):
            where = f"{prefix}safetySettings[{index}]"
            _object(setting, where)
            _string(setting.get("category"), f"{where}.category", required=True)
            _string(setting.get("threshold"), f"{where}.threshold", required=True)
    _string(request.get("cachedContent"), f"{prefix}cachedContent")


def _embed_request(request: Mapping[str, Any], prefix: str) -> None:
    _content(request.get("content"), f"{prefix}content", required=True)
    for index, part in enumerate(request["content"]["parts"]):
        if not isinstance(part.get("text"), str):
            raise fail(f"{prefix}content.parts[{index}]", "embedding models take text parts only.")
    _integer(request.get("outputDimensionality"), f"{prefix}outputDimensionality", 1, INT32)
    _string(request.get("taskType"), f"{prefix}taskType")
    _string(request.get("title"), f"{prefix}title")
    _string(request.get("model"), f"{prefix}model")


# -- contents -------------------------------------------------------------------------------


def _contents(value: Any, where: str, *, required: bool) -> None:
    _array(value, where, required=required)
    for index, content in enumerate(value or ()):
        _content(content, f"{where}[{index}]")
        role = content.get("role")
        if role is not None and role not in ("user", "model", "function"):
            raise fail(f"{where}[{index}].role", f"must be 'user' or 'model', got {_show(role)}.")


def _content(value: Any, where: str, *, required: bool = True) -> None:
    _object(value, where, required=required)
    _string(value.get("role"), f"{where}.role")
    parts = value.get("parts")
    _array(parts, f"{where}.parts", required=True)
    for index, part in enumerate(parts):
        _part(part, f"{where}.parts[{index}]")


def _part(part: Any, where: str) -> None:
    _object(part, where)
    data = [name for name in DATA_FIELDS if part.get(name) is not None]
    if len(data) != 1:
        found = f"got {', '.join(data)}" if data else "got none"
        raise fail(where, f"a part holds exactly one of {', '.join(DATA_FIELDS)} ({found}).")
    _string(part.get("text"), f"{where}.text")
    _boolean(part.get("thought"), f"{where}.thought")
    _string(part.get("thoughtSignature"), f"{where}.thoughtSignature")
    kind = data[0]
    value = part[kind]
    if kind == "inlineData":
        _object(value, f"{where}.inlineData")
        _string(value.get("mimeType"), f"{where}.inlineData.mimeType", required=True)
        _string(value.get("data"), f"{where}.inlineData.data", required=True)
    elif kind == "fileData":
        _object(value, f"{where}.fileData")
        _string(value.get("fileUri"), f"{where}.fileData.fileUri", required=True)
        _string(value.get("mimeType"), f"{where}.fileData.mimeType")
    elif kind == "functionCall":
        _object(value, f"{where}.functionCall")
        _string(value.get("name"), f"{where}.functionCall.name", required=True)
        _object(value.get("args"), f"{where}.functionCall.args", required=False)
        _string(value.get("id"), f"{where}.functionCall.id")
    elif kind == "functionResponse":
        _object(value, f"{where}.functionResponse")
        _string(value.get("name"), f"{where}.functionResponse.name", required=True)
        _object(value.get("response"), f"{where}.functionResponse.response", required=False)
        _string(value.get("id"), f"{where}.functionResponse.id")
        if value.get("parts") is not None:
            _array(value["parts"], f"{where}.functionResponse.parts")
    elif kind in ("executableCode", "codeExecutionResult"):
        _object(value, f"{where}.{kind}")
        key = "code" if kind == "executableCode" else "output"
        _string(value.get(key), f"{where}.{kind}.{key}")


# -- tools ----------------------------------------------------------------------------------


def _tools(tools: Any, where: str) -> None:
    _array(tools, where)
    for index, tool in enumerate(tools or ()):
        place = f"{where}[{index}]"
        _object(tool, place)
        declarations = tool.get("functionDeclarations")
        _array(declarations, f"{place}.functionDeclarations")
        for number, declaration in enumerate(declarations or ()):
            spot = f"{place}.functionDeclarations[{number}]"
            _object(declaration, spot)
            _string(declaration.get("name"), f"{spot}.name", required=True)
            if not declaration["name"]:
                raise fail(f"{spot}.name", "a function needs a name.")
            _string(declaration.get("description"), f"{spot}.description")
            if declaration.get("parameters") is not None and declaration.get("parametersJsonSchema") is not None:
                raise fail(spot, "'parameters' and 'parametersJsonSchema' cannot both be set.")
            _schema(declaration.get("parameters"), f"{spot}.parameters", 0)
            _schema(declaration.get("response"), f"{spot}.response", 0)
            _object(declaration.get("parametersJsonSchema"), f"{spot}.parametersJsonSchema", required=False)
            _object(declaration.get("responseJsonSchema"), f"{spot}.responseJsonSchema", required=False)


def _tool_config(config: Any, where: str) -> None:
    _object(config, where, required=False)
    calling = (config or {}).get("functionCallingConfig")
    _object(calling, f"{where}.functionCallingConfig", required=False)
    if calling:
        _choice(calling.get("mode"), f"{where}.functionCallingConfig.mode", MODES)
        names = calling.get("allowedFunctionNames")
        _array(names, f"{where}.functionCallingConfig.allowedFunctionNames")
        for index, name in enumerate(names or ()):
            _string(name, f"{where}.functionCallingConfig.allowedFunctionNames[{index}]", required=True)


def _schema(schema: Any, where: str, depth: int) -> None:
    if schema is None:
        return
    _object(schema, where)
    if depth > _MAX_SCHEMA_DEPTH:
        raise fail(where, f"schemas may be nested {_MAX_SCHEMA_DEPTH} levels deep at most.")
    _choice(schema.get("type"), f"{where}.type", SCHEMA_TYPES)
    for key in ("format", "description", "title", "pattern"):
        _string(schema.get(key), f"{where}.{key}")
    _boolean(schema.get("nullable"), f"{where}.nullable")
    for key in ("enum", "required", "propertyOrdering"):
        items = schema.get(key)
        _array(items, f"{where}.{key}")
        for index, item in enumerate(items or ()):
            _string(item, f"{where}.{key}[{index}]", required=True)
    for key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
        _integer(schema.get(key), f"{where}.{key}", 0, 2**63 - 1, strings=True)
    for key in ("minimum", "maximum"):
        _number(schema.get(key), f"{where}.{key}", -math.inf, math.inf)
    properties = schema.get("properties")
    _object(properties, f"{where}.properties", required=False)
    for name, value in (properties or {}).items():
        _schema(value, f"{where}.properties.{name}", depth + 1)
    _schema(schema.get("items"), f"{where}.items", depth + 1)
    variants = schema.get("anyOf")
    _array(variants, f"{where}.anyOf")
    for index, variant in enumerate(variants or ()):
        _schema(variant, f"{where}.anyOf[{index}]", depth + 1)


# -- generationConfig -----------------------------------------------------------------------


def _generation_config(config: Any, where: str) -> None:
    _object(config, where, required=False)
    if not config:
        return
    for name, (kind, low, high) in _NUMBERS.items():
        if kind == "integer":
            _integer(config.get(name), f"{where}.{name}", int(low), int(high))
        else:
            _number(config.get(name), f"{where}.{name}", low, high)
    stops = config.get("stopSequences")
    _array(stops, f"{where}.stopSequences")
    if stops is not None and len(stops) > 5:
        raise fail(f"{where}.stopSequences", "at most 5 stop sequences.")
    for index, stop in enumerate(stops or ()):
        _string(stop, f"{where}.stopSequences[{index}]", required=True)
    _string(config.get("responseMimeType"), f"{where}.responseMimeType")
    modalities = config.get("responseModalities")
    _array(modalities, f"{where}.responseModalities")
    for index, modality in enumerate(modalities or ()):
        _string(modality, f"{where}.responseModalities[{index}]", required=True)
    _schema(config.get("responseSchema"), f"{where}.responseSchema", 0)
    _object(config.get("responseJsonSchema"), f"{where}.responseJsonSchema", required=False)
    _boolean(config.get("responseLogprobs"), f"{where}.responseLogprobs")
    thinking = config.get("thinkingConfig")
    _object(thinking, f"{where}.thinkingConfig", required=False)
    if thinking:
        _boolean(thinking.get("includeThoughts"), f"{where}.thinkingConfig.includeThoughts")
        _integer(thinking.get("thinkingBudget"), f"{where}.thinkingConfig.thinkingBudget", -1, INT32)
        _choice(thinking.get("thinkingLevel"), f"{where}.thinkingConfig.thinkingLevel", THINKING_LEVELS)
        if thinking.get("thinkingBudget") is not None and thinking.get("thinkingLevel") is not None:
            raise fail(f"{where}.thinkingConfig", "'thinkingBudget' and 'thinkingLevel' cannot both be set.")


# -- primitives -----------------------------------------------------------------------------


def _object(value: Any, where: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, Mapping):
        raise fail(where, f"expected an object, got {_show(value)}.")


def _array(value: Any, where: str, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, list):
        raise fail(where, f"expected an array, got {_show(value)}.")
    if required and not value:
        raise fail(where, "must not be empty.")


def _string(value: Any, where: str, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise fail(where, f"expected a string, got {_show(value)}.")


def _boolean(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise fail(where, f"expected true or false, got {_show(value)}.")


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or value.upper() not in allowed:
        raise fail(where, f"expected one of {', '.join(allowed)}, got {_show(value)}.")


def _integer(value: Any, where: str, low: int, high: int, *, strings: bool = False) -> None:
    if value is None:
        return
    if strings and isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 24:
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail(where, f"expected an integer, got {_show(value)}.")
    if not low <= value <= high:
        raise fail(where, f"must be between {low} and {high}, got {_show(value)}.")


def _number(value: Any, where: str, low: float, high: float) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise fail(where, f"expected a number, got {_show(value)}.")
    if not low <= value <= high:
        raise fail(where, f"must be between {low:g} and {high:g}, got {_show(value)}.")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return {dict: "an object", list: "an array"}.get(type(value), type(value).__name__)
