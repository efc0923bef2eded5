"""An Anthropic Messages request -> a chat completions request (the gateway's pivot).

============================  =====================================================================
Anthropic                     chat completions
============================  =====================================================================
``model``                     ``model`` (the core replaces it with the upstream's)
``max_tokens``                ``max_completion_tokens``
``stream``                    ``stream`` (+ ``stream_options.include_usage``)
``system``, system messages   system messages (see `messages`)
``stop_sequences``            ``stop``
``temperature``, ``top_p``    the same
``metadata.user_id``          ``user``
``thinking``                  ``reasoning_effort`` (table below); ``disabled``: none
``output_config.effort``      ``reasoning_effort`` (low, medium, high; xhigh and max -> high)
``output_config.format``      ``response_format`` ``json_schema`` (name ``response``)
(or beta ``output_format``)
``tools`` (custom)            function tools (``input_schema`` -> ``parameters``, ``strict`` kept)
``tools`` (server, e.g.       dropped and named in `Conversion.dropped_tools`: no chat upstream
``web_search_20250305``)      runs them
``tool_choice``               auto -> ``"auto"``, any -> ``"required"``, tool -> the function,
                              none -> ``"none"``; ``disable_parallel_tool_use`` ->
                              ``parallel_tool_calls: false``
``top_k``, ``cache_control``, no chat equivalent: ignored, named in `Conversion.ignored`
``service_tier``, ``container``,
``inference_geo``, ``speed``,
``context_management``,
``mcp_servers``, ``user_profile_id``
============================  =====================================================================

``thinking.budget_tokens`` -> ``reasoning_effort``: below 8,192 ``low``, below 16,384
``medium``, from 16,384 ``high`` (the inverse of the anthropic provider's default budgets, so
2,048 / 8,192 / 16,384 round-trip). ``adaptive`` takes ``output_config.effort`` when given, and
otherwise leaves the effort to the upstream's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .checks import invalid
from .messages import Notes, convert_messages, system_message
from .signing import Signer

__all__ = ["Conversion", "budget_effort", "to_chat"]

Body = dict[str, Any]

_IGNORED = ("top_k", "cache_control", "service_tier", "container", "inference_geo", "speed",
            "context_management", "mcp_servers", "user_profile_id")
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


@dataclass(frozen=True, slots=True)
class Conversion:
    """The chat request, and what it could not carry.

    ``dropped_tools``: names of the server tools left out (``web_search``...);
    ``ignored``: request fields and message blocks without a chat form, by path
    (``top_k``, ``messages.3.content.0 (web_search_tool_result)``); ``dropped_thinking``: the
    thinking blocks not restored (not signed by this gateway for this model, or redacted).
    """

    body: Body
    dropped_tools: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    dropped_thinking: int = 0


def budget_effort(budget: int) -> str:
    """The ``reasoning_effort`` for a thinking budget (see the module's table)."""
    if budget < 8192:
        return "low"
    return "medium" if budget < 16384 else "high"


def to_chat(body: Mapping[str, Any], signer: Signer) -> Conversion:
    """The chat request for a validated (see `validate`) Anthropic Messages request. Thinking
    blocks are restored when ``signer`` verifies them for ``body["model"]``."""
    notes = Notes()
    model = body["model"]
    messages: list[Body] = []
    system = system_message(body.get("system"))
    if system is not None:
        messages.append(system)
    messages += convert_messages(body["messages"], signer, model, notes)
    chat: Body = {"model": model, "messages": messages}
    if "max_tokens" in body:  # count_tokens bodies have none
        chat["max_completion_tokens"] = body["max_tokens"]
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if body.get("stop_sequences"):
        chat["stop"] = list(body["stop_sequences"])
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("user_id"):
        chat["user"] = metadata["user_id"]
    effort = _effort(body)
    if effort is not None:
        chat["reasoning_effort"] = effort
    output_format = _output_format(body)
    if output_format is not None:
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "response", "schema": output_format}}
    dropped = _tools(body, chat)
    notes.ignored[:0] = [name for name in _IGNORED if body.get(name) not in (None, [], {})]
    return Conversion(chat, tuple(dropped), tuple(notes.ignored), notes.dropped_thinking)


def _effort(body: Mapping[str, Any]) -> str | None:
    thinking = body.get("thinking")
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, Mapping) else None
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind == "disabled":
        return None
    if kind == "enabled" and isinstance(thinking, Mapping):
        return budget_effort(thinking["budget_tokens"])
    return _EFFORTS[effort] if effort is not None else None


def _output_format(body: Mapping[str, Any]) -> Any:
    config = body.get("output_config")
    found = config.get("format") if isinstance(config, Mapping) else None
    found = found or body.get("output_format")
    return found["schema"] if found else None


def _tools(body: Mapping[str, Any], chat: Body) -> list[str]:
    """Set ``tools``, ``tool_choice`` and ``parallel_tool_calls``; the server tools dropped."""
    functions: list[Body] = []
    dropped: list[str] = []
    for tool in body.get("tools") or ():
        if tool.get("type") not in (None, "custom"):
            dropped.append(tool["name"])
            continue
        function: Body = {"name": tool["name"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool["input_schema"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        functions.append({"type": "function", "function": function})
    if functions:
        chat["tools"] = functions
    choice = body.get("tool_choice")
    if choice is None:
        return dropped
    kind = choice["type"]
    if kind in ("any", "tool") and not functions:
        raise invalid("tool_choice", f"tool_choice {kind!r} needs a tool this model can call; the server "
                                     f"tools ({', '.join(dropped)}) are not available with it.")
    if kind == "tool":
        if choice["name"] in dropped:
            raise invalid("tool_choice.name", f"{choice['name']!r} is a server tool, which is not available "
                                              "with this model.")
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif functions:
        chat["tool_choice"] = _CHOICES[kind]
    if functions and choice.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False
    return dropped
