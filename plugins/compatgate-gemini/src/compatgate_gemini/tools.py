"""OpenAI ``tools``/``tool_choice`` -> Gemini ``tools``/``toolConfig``, and function names.

Gemini function names must match ``[A-Za-z_][A-Za-z0-9_.:-]*`` and be at most 64 characters.
A valid name is sent unchanged; any other becomes a cleaned name with a hash of the original
(``get weather`` -> ``get_weather_1b5e7c2a``), deterministic so that the same name in the
history and in ``tools`` agrees; `ToolNames` maps the answers back to the client's names.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

from compatgate import InvalidRequestError

from .schema import to_gemini_schema, to_json_schema

__all__ = ["ToolNames", "convert_tool_choice", "convert_tools", "gemini_name", "is_generated_id", "new_call_id"]

_VALID = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}")
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_.:\-]")
_GENERATED_ID = re.compile(r"call_[0-9a-f]{24}")


def new_call_id() -> str:
    """An id for a tool call Gemini gave none (Gemini 2.5); never sent back upstream."""
    return f"call_{secrets.token_hex(12)}"


def is_generated_id(call_id: str) -> bool:
    return _GENERATED_ID.fullmatch(call_id) is not None


def gemini_name(name: str) -> str:
    """``name`` as Gemini accepts it (unchanged when already valid)."""
    if _VALID.fullmatch(name):
        return name
    cleaned = _INVALID_CHAR.sub("_", name)
    if not cleaned or not (cleaned[0].isascii() and (cleaned[0].isalpha() or cleaned[0] == "_")):
        cleaned = "_" + cleaned
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned[:55]}_{digest}"


class ToolNames:
    """The names of one request: the client's name for each name Gemini sees."""

    def __init__(self) -> None:
        self.originals: dict[str, str] = {}

    def to_gemini(self, name: str) -> str:
        converted = gemini_name(name)
        self.originals.setdefault(converted, name)
        return converted

    def to_openai(self, name: str) -> str:
        return self.originals.get(name, name)


def convert_tools(
    tools: Any, choice: Any, names: ToolNames, *, json_schema: bool
) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    """Gemini's ``tools`` and ``toolConfig`` for the client's ``tools`` and ``tool_choice``."""
    if tools is None:
        if choice not in (None, "none", "auto"):
            raise InvalidRequestError("'tool_choice' is only allowed when 'tools' are given.", param="tool_choice")
        return None, None
    if not isinstance(tools, list):
        raise InvalidRequestError("'tools' must be an array.", param="tools")
    declarations: dict[str, dict[str, Any]] = {}
    for index, tool in enumerate(tools):
        declaration = _declaration(tool, index, names, json_schema)
        if declaration["name"] in declarations:
            raise InvalidRequestError(
                f"'tools' declares the function {names.to_openai(declaration['name'])!r} twice.",
                param=f"tools[{index}]",
            )
        declarations[declaration["name"]] = declaration
    config, allowed = convert_tool_choice(choice, names, set(declarations))
    kept = [d for name, d in declarations.items() if allowed is None or name in allowed]
    if not kept:
        return None, config
    return [{"functionDeclarations": kept}], config


def _declaration(tool: Any, index: int, names: ToolNames, json_schema: bool) -> dict[str, Any]:
    where = f"tools[{index}]"
    if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        raise InvalidRequestError(
            f"'{where}': only tools of type 'function' can be sent to Gemini (got {kind!r}).", param=where
        )
    function = tool.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function["name"]:
        raise InvalidRequestError(f"'{where}.function.name' is required.", param=f"{where}.function.name")
    declaration: dict[str, Any] = {"name": names.to_gemini(function["name"])}
    if isinstance(function.get("description"), str):
        declaration["description"] = function["description"]
    parameters = function.get("parameters")
    if parameters is not None:
        if json_schema:
            declaration["parametersJsonSchema"] = to_json_schema(parameters)
        else:
            schema = to_gemini_schema(parameters, where=f"{where}.function.parameters")
            if schema.get("properties"):  # Gemini refuses an OBJECT without properties
                declaration["parameters"] = schema
    return declaration


def convert_tool_choice(
    choice: Any, names: ToolNames, declared: set[str]
) -> tuple[dict[str, Any] | None, set[str] | None]:
    """``toolConfig`` for ``tool_choice``, and the declared functions it leaves available
    (None: all of them). ``allowed_tools`` in mode ``auto`` keeps only the listed functions."""
    if choice is None:
        return None, None
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}, None
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        chosen = _declared(name, names, declared, "tool_choice.function.name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [chosen]}}, None
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        if not isinstance(spec, Mapping) or spec.get("mode") not in ("auto", "required"):
            raise InvalidRequestError(
                "'tool_choice.allowed_tools' needs 'mode' ('auto' or 'required') and 'tools'.",
                param="tool_choice.allowed_tools",
            )
        allowed: list[str] = []
        for index, tool in enumerate(spec.get("tools") or []):
            function = tool.get("function") if isinstance(tool, Mapping) else None
            name = function.get("name") if isinstance(function, Mapping) else None
            allowed.append(_declared(name, names, declared, f"tool_choice.allowed_tools.tools[{index}]"))
        if spec["mode"] == "required":
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": allowed}}, None
        return {"functionCallingConfig": {"mode": "AUTO"}}, set(allowed)
    raise InvalidRequestError(
        "'tool_choice' must be 'none', 'auto', 'required', a function or allowed_tools.", param="tool_choice"
    )


def _declared(name: Any, names: ToolNames, declared: set[str], where: str) -> str:
    if not isinstance(name, str) or names.to_gemini(name) not in declared:
        raise InvalidRequestError(f"'{where}' names {name!r}, which is not one of the 'tools'.", param=where)
    return names.to_gemini(name)
