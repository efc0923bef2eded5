"""An OpenAI Chat Completions body -> an Anthropic Messages body.

Every OpenAI parameter is either converted, accepted as a hint that changes nothing in the
answer (``prompt_cache_key``, ``metadata``...), or refused with a 400 naming it when Claude
cannot honour it (``n > 1``, ``logprobs``, ``seed``...): never silently dropped. Fields that are
not OpenAI parameters are refused too, or copied into the Anthropic body as they are when the
provider sets ``passthrough_unknown_fields = true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatgate import InvalidRequestError

from .messages import convert_messages
from .settings import ADAPTIVE_EFFORT, Settings

__all__ = ["JSON_TOOL", "Conversion", "build_request"]

Body = dict[str, Any]

#: The tool that carries the answer when ``response_format`` is sent as a forced tool.
JSON_TOOL = "json_response"

# Parameters Claude cannot honour: refused unless null or one of these neutral values.
_UNSUPPORTED: Mapping[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "seed": (),
    "store": (False,),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "web_search_options": (),
    "verbosity": (),
    "moderation": (),
    "functions": (),
    "function_call": (),
}
_HINTS = {
    "n": "; send one request per choice",
    "functions": "; use 'tools'",
    "function_call": "; use 'tool_choice'",
}
# Accepted and ignored: they only steer OpenAI's own caching and storage, never the answer.
_IGNORED = (
    "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "metadata", "stream_options",
)
_CONVERTED = (
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
    "stream", "tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort",
    "user", "safety_identifier", "service_tier",
)
_KNOWN = frozenset((*_UNSUPPORTED, *_IGNORED, *_CONVERTED))
_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}
_EFFORTS = ("none", *ADAPTIVE_EFFORT)
_FORCED = ("any", "tool")


@dataclass(frozen=True, slots=True)
class Conversion:
    """The Anthropic body, and what reading the answer needs to know about it.

    ``json_tool`` names the forced tool whose input is the answer (``response_format`` in
    tool mode); its calls come back as ``message.content``, not as tool calls.
    """

    body: Body
    stream: bool
    json_tool: str | None = None


def build_request(body: Mapping[str, Any], settings: Settings) -> Conversion:
    """The Anthropic Messages body for an OpenAI chat body (``model`` already upstream's)."""
    extra = _check_parameters(body, settings)
    system, messages = convert_messages(body["messages"])
    out: Body = {"model": body["model"], "messages": messages}
    if system:
        out["system"] = system
    _sampling(body, out)
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), tools)
    json_tool, choice = _response_format(body.get("response_format"), settings, tools, choice, out)
    choice = _parallel(body.get("parallel_tool_calls"), choice, bool(tools))
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    budget = _reasoning(body, settings, json_tool, out)
    out["max_tokens"] = _max_tokens(body, settings, budget)
    _identity(body, out)
    stream = body.get("stream") is True
    if stream:
        out["stream"] = True
    for name, value in extra.items():
        if name in out:
            raise _invalid(f"'{name}' conflicts with what the gateway converts from the OpenAI "
                           "parameters; send one or the other.", name)
        out[name] = value
    return Conversion(out, stream, json_tool)


def _check_parameters(body: Mapping[str, Any], settings: Settings) -> Body:
    """Refuse what Claude cannot honour; the unknown fields to pass through."""
    extra: Body = {}
    for name, value in body.items():
        if name not in _KNOWN:
            if not settings.passthrough_unknown_fields:
                raise _invalid(f"Unrecognized request argument supplied: {name}. Claude models "
                               "accept only the OpenAI parameters this gateway converts (or, when the "
                               "provider sets passthrough_unknown_fields, Anthropic fields).", name)
            extra[name] = value
        elif name in _UNSUPPORTED and value is not None and value not in _UNSUPPORTED[name]:
            raise _invalid(f"'{name}' is not supported by Claude models{_HINTS.get(name, '')}.", name)
    return extra


def _sampling(body: Mapping[str, Any], out: Body) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not _number(value) or not 0 <= value <= 1:
            raise _invalid(f"'{name}' must be a number from 0 to 1 for Claude models (got {value!r}).", name)
        out[name] = value
    stop = body.get("stop")
    if stop is not None:
        sequences = [stop] if isinstance(stop, str) else stop
        if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
            raise _invalid("'stop' must be a string or an array of strings.", "stop")
        if sequences:
            out["stop_sequences"] = sequences


def _tools(tools: Any) -> list[Body]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _invalid("'tools' must be an array.", "tools")
    converted = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _invalid(f"'{where}' has type {kind!r}; Claude models take function tools.",
                           f"{where}.type")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid(f"'{where}.function.name' is required.", f"{where}.function.name")
        schema = function.get("parameters")
        schema = dict(schema) if isinstance(schema, dict) else {"type": "object", "properties": {}}
        if schema.setdefault("type", "object") != "object":
            raise _invalid(f"'{where}.function.parameters' must describe an object for Claude models.",
                           f"{where}.function.parameters")
        entry: Body = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            entry["description"] = function["description"]
        entry["input_schema"] = schema
        if isinstance(function.get("strict"), bool):
            entry["strict"] = function["strict"]
        if isinstance(tool.get("cache_control"), dict):
            entry["cache_control"] = dict(tool["cache_control"])
        converted.append(entry)
    return converted


def _tool_choice(choice: Any, tools: list[Body]) -> Body | None:
    """Anthropic's tool_choice; ``allowed_tools`` narrows ``tools`` in place."""
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice} if tools else None
    names = [tool["name"] for tool in tools]
    if choice == "required":
        converted: Body = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise _invalid(f"'tool_choice' names the function {name!r}, which is not in 'tools'.",
                           "tool_choice")
        converted = {"type": "tool", "name": name}
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        listed = [t for t in allowed.get("tools") or () if isinstance(t, dict)]
        wanted = {(t.get("function") or {}).get("name") for t in listed}
        if allowed.get("mode") not in ("auto", "required") or not wanted <= set(names):
            raise _invalid("'tool_choice.allowed_tools' needs mode auto or required and tools from "
                           "'tools'.", "tool_choice")
        tools[:] = [tool for tool in tools if tool["name"] in wanted]
        converted = {"type": "auto" if allowed["mode"] == "auto" else "any"}
    else:
        raise _invalid(f"'tool_choice' {choice!r} is not supported by Claude models.", "tool_choice")
    if not tools:
        raise _invalid("'tool_choice' requires 'tools'.", "tool_choice")
    return converted


def _response_format(
    response_format: Any, settings: Settings, tools: list[Body], choice: Body | None, out: Body
) -> tuple[str | None, Body | None]:
    """Convert ``response_format``: the answer tool's name (None unless it takes a forced
    tool) and the tool_choice that results."""
    kind = response_format.get("type") if isinstance(response_format, dict) else response_format
    if response_format is None or kind == "text":
        return None, choice
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _invalid("'response_format.json_schema.schema' must be a JSON schema object.",
                           "response_format")
        if settings.structured_output == "native":
            out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            return None, choice
        description, strict = spec.get("description"), spec.get("strict") is True
    elif kind == "json_object":
        schema, description, strict = {"type": "object"}, None, False
    else:
        raise _invalid(f"'response_format' of type {kind!r} is not supported.", "response_format")
    # Tool mode: the answer is the input of a tool the model must call.
    if choice is not None and choice["type"] in _FORCED:
        return None, choice  # the client forces one of its own tools: no final answer this turn
    if schema.get("type") != "object":
        raise _invalid('With structured_output = "tool", the response_format schema must describe an '
                       "object.", "response_format")
    if any(tool["name"] == JSON_TOOL for tool in tools):
        raise _invalid(f"A tool named {JSON_TOOL!r} conflicts with response_format.", "response_format")
    answer: Body = {
        "name": JSON_TOOL,
        "description": "Give the final answer by calling this tool with it as input"
        + (f": {description}" if isinstance(description, str) and description else "."),
        "input_schema": schema,
    }
    if strict:
        answer["strict"] = True
    # The client's tools stay callable unless it chose "none"; either way a tool must be called.
    callable_tools = bool(tools) and (choice is None or choice["type"] == "auto")
    tools.append(answer)
    return JSON_TOOL, {"type": "any"} if callable_tools else {"type": "tool", "name": JSON_TOOL}


def _parallel(parallel: Any, choice: Body | None, has_tools: bool) -> Body | None:
    """``parallel_tool_calls: false`` -> ``disable_parallel_tool_use`` on the tool_choice."""
    if parallel is not None and not isinstance(parallel, bool):
        raise _invalid("'parallel_tool_calls' must be a boolean.", "parallel_tool_calls")
    if parallel is False and has_tools and (choice is None or choice["type"] != "none"):
        return {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    return choice


def _reasoning(body: Mapping[str, Any], settings: Settings, json_tool: str | None, out: Body) -> int:
    """Turn ``reasoning_effort`` into thinking; the thinking budget (0 without one)."""
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return 0
    if effort not in _EFFORTS:
        raise _invalid(f"'reasoning_effort' must be one of {', '.join(_EFFORTS)}.", "reasoning_effort")
    choice = out.get("tool_choice")
    if choice is not None and choice["type"] in _FORCED:
        param = "response_format" if json_tool is not None else "tool_choice"
        raise _invalid(f"Claude cannot think ('reasoning_effort') while '{param}' forces a tool call"
                       + (" (set structured_output = \"native\")" if param == "response_format" else "")
                       + ".", param)
    if body.get("temperature") not in (None, 1):
        raise _invalid("Claude accepts no 'temperature' but 1 together with 'reasoning_effort'.",
                       "temperature")
    if body.get("top_p") is not None and body["top_p"] < 0.95:
        raise _invalid("Claude accepts 'top_p' from 0.95 to 1 together with 'reasoning_effort'.", "top_p")
    if settings.thinking == "adaptive":
        out["thinking"] = {"type": "adaptive"}
        out.setdefault("output_config", {})["effort"] = ADAPTIVE_EFFORT[effort]
        return 0
    budget = settings.thinking_budgets[effort]
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return budget


def _max_tokens(body: Mapping[str, Any], settings: Settings, budget: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _invalid(f"'{name}' must be a positive integer.", name)
        if value <= budget:
            raise _invalid(f"'{name}' ({value}) must exceed the thinking budget of {budget} tokens "
                           f"that reasoning_effort={body['reasoning_effort']!r} gives Claude.", name)
        return value
    return settings.default_max_tokens + budget


def _identity(body: Mapping[str, Any], out: Body) -> None:
    for name in ("user", "safety_identifier"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > 512:
            raise _invalid(f"'{name}' must be a string of at most 512 characters for Claude models.", name)
        out.setdefault("metadata", {"user_id": value})
    tier = body.get("service_tier")
    if tier is not None:
        if tier not in _SERVICE_TIERS:
            raise _invalid(f"'service_tier' {tier!r} is not available with Claude models "
                           f"(use {' or '.join(_SERVICE_TIERS)}).", "service_tier")
        out["service_tier"] = _SERVICE_TIERS[tier]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)
