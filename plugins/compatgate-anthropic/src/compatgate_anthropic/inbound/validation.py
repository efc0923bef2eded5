"""Validation of ``POST /messages`` and ``POST /messages/count_tokens`` bodies, before any
conversion: every field the conversion reads is checked (type, range, allowed values), unknown
fields are refused as Anthropic refuses them, and contradictions (two tools of one name, a
``tool_choice`` naming no tool, ``output_format`` beside ``output_config.format``) get a 400.

Errors are `InvalidRequestError` with Anthropic-style messages (``max_tokens: Field required.``)
and ``param`` naming the field; `error_body` renders them as Anthropic errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from compatgate import InvalidRequestError

from .checks import MAX_INT, boolean, integer, invalid, known_keys, mapping, number, string
from .content import check_messages, check_system

__all__ = ["EFFORTS", "validate", "validate_count_tokens", "validate_native"]

#: ``output_config.effort`` values.
EFFORTS = ("low", "medium", "high", "xhigh", "max")
_FIELDS = (
    "model", "messages", "cache_control", "container", "context_management", "inference_geo",
    "max_tokens", "mcp_servers", "metadata", "output_config", "output_format", "service_tier", "speed",
    "stop_sequences", "stream", "system", "temperature", "thinking", "tool_choice", "tools", "top_k",
    "top_p", "user_profile_id",
)
_COUNT_FIELDS = (
    "model", "messages", "cache_control", "context_management", "mcp_servers", "output_config",
    "output_format", "speed", "system", "thinking", "tool_choice", "tools",
)
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_CUSTOM_TOOL_FIELDS = (
    "type", "name", "description", "input_schema", "cache_control", "strict", "eager_input_streaming",
    "allowed_callers", "defer_loading", "input_examples",
)
_CHOICE_FIELDS = {
    "auto": ("type", "disable_parallel_tool_use"),
    "any": ("type", "disable_parallel_tool_use"),
    "tool": ("type", "name", "disable_parallel_tool_use"),
    "none": ("type",),
}
_THINKING_FIELDS = {"enabled": ("type", "budget_tokens", "display"), "disabled": ("type",),
                    "adaptive": ("type", "display")}
_DISPLAYS = ("summarized", "omitted")
_MAX_STOP_SEQUENCES = 1024
_MAX_TOOLS = 10_000


def validate(body: Any) -> None:
    """Check a ``POST /messages`` body (raises `InvalidRequestError`)."""
    body = _object(body)
    known_keys(body, _FIELDS, "")
    _model(body)
    _max_tokens(body)
    _common(body)
    stream = body.get("stream")
    if stream is not None:
        boolean(stream, "stream")
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            number(body[name], name, minimum=0.0, maximum=1.0)
    if body.get("top_k") is not None:
        integer(body["top_k"], "top_k")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list):
            raise invalid("stop_sequences", "Input should be a valid list.")
        if len(stops) > _MAX_STOP_SEQUENCES:
            raise invalid("stop_sequences", f"At most {_MAX_STOP_SEQUENCES} stop sequences are accepted.")
        for index, stop in enumerate(stops):
            string(stop, f"stop_sequences.{index}", empty=False)
    metadata = body.get("metadata")
    if metadata is not None:
        known_keys(mapping(metadata, "metadata"), ("user_id",), "metadata")
        if metadata.get("user_id") is not None:
            string(metadata["user_id"], "metadata.user_id", limit=512)
    if body.get("service_tier") is not None and body["service_tier"] not in ("auto", "standard_only"):
        raise invalid("service_tier", "Input should be 'auto' or 'standard_only'.")


def validate_count_tokens(body: Any) -> None:
    """Check a ``POST /messages/count_tokens`` body (raises `InvalidRequestError`)."""
    body = _object(body)
    known_keys(body, _COUNT_FIELDS, "")
    _model(body)
    _common(body)


def validate_native(body: Any) -> None:
    """The checks the gateway itself needs before relaying a body to an Anthropic upstream
    (routing and metering): ``model``, ``messages`` a list, ``max_tokens``, ``stream``. The
    upstream validates everything else and answers in the same error format."""
    body = _object(body)
    _model(body)
    if not isinstance(body.get("messages"), list):
        raise invalid("messages", "Field required." if "messages" not in body else "Input should be a valid list.")
    if "max_tokens" in body:  # count_tokens bodies have none
        _max_tokens(body)
    if body.get("stream") is not None:
        boolean(body["stream"], "stream")


# -- shared by both endpoints ---------------------------------------------------------------


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


def _model(body: Mapping[str, Any]) -> None:
    if "model" not in body:
        raise invalid("model", "Field required.")
    string(body["model"], "model", empty=False, limit=256)


def _max_tokens(body: Mapping[str, Any]) -> None:
    if "max_tokens" not in body:
        raise invalid("max_tokens", "Field required.")
    integer(body["max_tokens"], "max_tokens", minimum=1)


def _common(body: Mapping[str, Any]) -> None:
    if "messages" not in body:
        raise invalid("messages", "Field required.")
    check_messages(body["messages"])
    if body.get("system") is not None:
        check_system(body["system"], "system")
    names = _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"), names)
    _thinking(body.get("thinking"))
    _output(body)
    if body.get("cache_control") is not None:
        control = mapping(body["cache_control"], "cache_control")
        if control.get("type") != "ephemeral":
            raise invalid("cache_control.type", "Input should be 'ephemeral'.")
    if body.get("mcp_servers") is not None and not isinstance(body["mcp_servers"], list):
        raise invalid("mcp_servers", "Input should be a valid list.")
    for name in ("inference_geo", "speed", "user_profile_id"):
        if body.get(name) is not None:
            string(body[name], name)
    if body.get("context_management") is not None:
        mapping(body["context_management"], "context_management")


def _tools(tools: Any) -> list[str]:
    """Check ``tools``; the names of every tool, in order."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid("tools", "Input should be a valid list.")
    if len(tools) > _MAX_TOOLS:
        raise invalid("tools", f"At most {_MAX_TOOLS} tools are accepted.")
    names: list[str] = []
    for index, tool in enumerate(tools):
        path = f"tools.{index}"
        tool = mapping(tool, path)
        kind = tool.get("type")
        if kind in (None, "custom"):
            known_keys(tool, _CUSTOM_TOOL_FIELDS, path)
            name = string(tool.get("name"), f"{path}.name")
            if not _TOOL_NAME.fullmatch(name):
                raise invalid(f"{path}.name", "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'.")
            if tool.get("description") is not None:
                string(tool["description"], f"{path}.description")
            schema = mapping(tool.get("input_schema"), f"{path}.input_schema")
            if schema.get("type") != "object":
                raise invalid(f"{path}.input_schema.type", "Input should be 'object'.")
            if tool.get("strict") is not None:
                boolean(tool["strict"], f"{path}.strict")
        else:
            string(kind, f"{path}.type", empty=False)
            name = string(tool.get("name"), f"{path}.name", empty=False)
        if name in names:
            raise invalid("tools", f"Tool names must be unique: {name!r} appears twice.")
        names.append(name)
    return names


def _tool_choice(choice: Any, names: list[str]) -> None:
    if choice is None:
        return
    choice = mapping(choice, "tool_choice")
    kind = choice.get("type")
    if kind not in _CHOICE_FIELDS:
        raise invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'.")
    known_keys(choice, _CHOICE_FIELDS[kind], "tool_choice")
    if choice.get("disable_parallel_tool_use") is not None:
        boolean(choice["disable_parallel_tool_use"], "tool_choice.disable_parallel_tool_use")
    if kind == "tool":
        name = string(choice.get("name"), "tool_choice.name", empty=False)
        if name not in names:
            raise invalid("tool_choice.name", f"Tool {name!r} not found in 'tools'.")
    elif kind == "any" and not names:
        raise invalid("tool_choice", "tool_choice 'any' requires 'tools'.")


def _thinking(thinking: Any) -> None:
    if thinking is None:
        return
    thinking = mapping(thinking, "thinking")
    kind = thinking.get("type")
    if kind not in _THINKING_FIELDS:
        raise invalid("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'.")
    known_keys(thinking, _THINKING_FIELDS[kind], "thinking")
    if kind == "enabled":
        if "budget_tokens" not in thinking:
            raise invalid("thinking.budget_tokens", "Field required.")
        integer(thinking["budget_tokens"], "thinking.budget_tokens", minimum=1024, maximum=MAX_INT)
    if thinking.get("display") is not None and thinking["display"] not in _DISPLAYS:
        raise invalid("thinking.display", "Input should be 'summarized' or 'omitted'.")


def _output(body: Mapping[str, Any]) -> None:
    config = body.get("output_config")
    formats = 0
    if config is not None:
        config = mapping(config, "output_config")
        known_keys(config, ("effort", "format", "task_budget"), "output_config")
        if config.get("effort") is not None and config["effort"] not in EFFORTS:
            raise invalid("output_config.effort", f"Input should be one of {', '.join(EFFORTS)}.")
        if config.get("format") is not None:
            _format(config["format"], "output_config.format")
            formats += 1
    if body.get("output_format") is not None:
        _format(body["output_format"], "output_format")
        formats += 1
    if formats > 1:
        raise invalid("output_format", "Give the output format in 'output_config.format' or in "
                                       "'output_format', not both.")


def _format(value: Any, path: str) -> None:
    value = mapping(value, path)
    known_keys(value, ("type", "schema"), path)
    if value.get("type") != "json_schema":
        raise invalid(f"{path}.type", "Input should be 'json_schema'.")
    mapping(value.get("schema"), f"{path}.schema")
