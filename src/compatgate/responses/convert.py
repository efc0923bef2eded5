"""A Responses API request -> a Chat Completions request (the pivot).

``instructions`` and ``system``/``developer`` messages -> system messages; ``input`` items ->
messages (``message`` with its text, image and file parts; ``function_call`` and
``custom_tool_call`` -> assistant tool calls, their outputs -> tool messages; ``reasoning``
items and the items of hosted tools, which a chat upstream cannot take, are left out);
``tools`` and ``tool_choice`` through a `ToolMap` (`compatgate.responses.tools`: functions,
namespaces flattened, custom tools as one-string functions, hosted tools left out);
``text.format`` -> ``response_format``; ``max_output_tokens`` -> ``max_completion_tokens``;
``reasoning.effort`` -> ``reasoning_effort``; ``temperature``, ``top_p``,
``parallel_tool_calls``, ``user``, ``service_tier``, ``top_logprobs``. What only changes how the
answer is kept or shown (``store``, ``include``, ``prompt_cache_key``, ``text.verbosity``,
``reasoning.summary``, ``client_metadata``, ``metadata``) has no chat form and is not sent.
The answer's side is `compatgate.responses.output`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidRequestError
from ..validation import kind_of
from .tools import ToolMap, call_arguments, output_text_of, tool_map

__all__ = ["HOSTED_ITEMS", "Converted", "chat_request", "input_items"]

Body = dict[str, Any]

# Responses fields copied as they are into the chat request.
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "top_logprobs")
#: Input items of hosted tools (and other server-side items) that a chat upstream cannot take:
#: left out of the conversation, and named in `Converted.ignored`.
HOSTED_ITEMS = frozenset({
    "file_search_call", "computer_call", "computer_call_output", "web_search_call", "tool_search_call",
    "tool_search_output", "additional_tools", "compaction", "image_generation_call", "code_interpreter_call",
    "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call",
    "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "mcp_call",
})


def input_items(value: Any) -> list[Body]:
    """``input`` as a list of items (a string is one user message), each checked as far as the
    conversion reads it (`InvalidRequestError` naming the parameter)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    items = list(value)
    for index, item in enumerate(items):
        _check_item(item, f"input[{index}]")
    return items


def _invalid(param: str, what: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid type for '{param}': expected {what}, but got {kind_of(value)}.",
                               param=param, code="invalid_type")


def _check_item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise _invalid(where, "an object", item)
    if not isinstance(item.get("type", "message"), str):
        raise _invalid(f"{where}.type", "a string", item.get("type"))
    if item.get("type", "message") != "message":
        return
    if not isinstance(item.get("role"), str):
        raise _invalid(f"{where}.role", "a string", item.get("role"))
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(f"{where}.content", "a string or an array", content)
    for index, part in enumerate(content):
        if not isinstance(part, dict):
            raise _invalid(f"{where}.content[{index}]", "an object", part)
        kind = part.get("type")
        field = "refusal" if kind == "refusal" else "text" if kind in ("input_text", "output_text", "text") else None
        if field is not None and not isinstance(part.get(field, ""), str):
            raise _invalid(f"{where}.content[{index}].{field}", "a string", part.get(field))


@dataclass(frozen=True, slots=True)
class Converted:
    """The chat request of a Responses request; ``tools``: how its tools map back (their
    ``dropped`` ones included); ``ignored``: the input items left out, by type."""

    body: Body
    tools: ToolMap
    ignored: tuple[str, ...] = ()


def chat_request(body: Body, items: list[Body]) -> Converted:
    """The chat request for Responses ``body`` whose conversation so far is ``items``."""
    messages: list[Body] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    ignored: list[str] = []
    messages += _messages(items, ignored)
    if not messages:
        raise InvalidRequestError("Missing required parameter: 'input'.", param="input",
                                  code="missing_required_parameter")
    chat: Body = {"model": body["model"], "messages": messages}
    chat.update((key, body[key]) for key in _SAME if body.get(key) is not None)
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]
    tools = tool_map(body.get("tools"))
    if tools.chat:
        chat["tools"] = tools.chat
        choice = tools.tool_choice(body.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
    else:
        chat.pop("parallel_tool_calls", None)  # an upstream refuses it without tools
    text = body.get("text")
    format_ = text.get("format") if isinstance(text, dict) else None
    if isinstance(format_, dict) and format_.get("type") == "json_schema":
        schema = {key: format_[key] for key in ("name", "schema", "strict", "description") if key in format_}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(format_, dict) and format_.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return Converted(chat, tools, tuple(ignored))


def _messages(items: list[Body], ignored: list[str]) -> list[Body]:
    messages: list[Body] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequestError(f"Invalid type for 'input[{index}]': expected an object.",
                                      param=f"input[{index}]", code="invalid_type")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item))
        elif kind in ("function_call", "custom_tool_call"):
            name, arguments = call_arguments(item)
            call = {"id": item.get("call_id"), "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str):
                last["tool_calls"] = [call]  # the text the model said before calling
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            content = output_text_of(item.get("output"))
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": content})
        elif kind in HOSTED_ITEMS:
            ignored.append(f"input[{index}] ({kind})")
        elif kind != "reasoning":
            raise InvalidRequestError(f"Input items of type {kind!r} are not supported for this model.",
                                      param=f"input[{index}]", code="unsupported_input")
    return messages


def _message(item: Body) -> Body:
    role = item.get("role")
    role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, list):
        parts = [_part(part) for part in content if isinstance(part, dict)]
        if role != "user" or all(part["type"] == "text" for part in parts):
            content = "".join(part.get("text", "") for part in parts)
        else:
            content = parts
    return {"role": role, "content": content}


def _part(part: Body) -> Body:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal", "")}
    if kind == "input_image":
        image = {"url": part.get("image_url")}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {key: part[key] for key in ("file_data", "file_id", "filename") if part.get(key)}
        return {"type": "file", "file": file}
    raise InvalidRequestError(f"Content parts of type {kind!r} are not supported.", param="input",
                              code="unsupported_input")


