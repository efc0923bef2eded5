"""Responses API <-> Chat Completions: the request, the answer and the usage.

A Responses request becomes a chat request (``instructions`` -> system message, ``input`` items
-> messages, function ``tools``, ``tool_choice``, ``text.format``, ``max_output_tokens``,
``reasoning.effort``); a chat answer becomes output items (reasoning, message with
``output_text``, ``function_call``) in a Response object.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ..exceptions import InvalidRequestError, UpstreamError
from ..usage import Usage

__all__ = ["chat_request", "from_chat", "input_items", "item_id", "response_usage", "shell", "status_of"]

Body = dict[str, Any]

# Responses fields copied as they are into the chat request.
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "top_logprobs")
# Finish reasons that leave a response incomplete, and why.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


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
    return InvalidRequestError(f"Invalid type for '{param}': expected {what}, but got {_kind(value)}.",
                               param=param, code="invalid_type")


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check_item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise _invalid(where, "an object", item)
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


def chat_request(body: Body, items: list[Body]) -> Body:
    """The chat request for Responses ``body`` whose conversation so far is ``items``."""
    messages: list[Body] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += _messages(items)
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
    if body.get("tools"):
        chat["tools"] = [_tool(tool) for tool in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        chat["tool_choice"] = choice
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
    return chat


def _tool(tool: Any) -> Body:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else tool
        raise InvalidRequestError(
            f"Tools of type {kind!r} are not supported for this model; only function tools are.",
            param="tools", code="unsupported_tool",
        )
    function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if tool.get(key) is not None}
    return {"type": "function", "function": function}


def _messages(items: list[Body]) -> list[Body]:
    messages: list[Body] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequestError(f"Invalid type for 'input[{index}]': expected an object.",
                                      param=f"input[{index}]", code="invalid_type")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item))
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else orjson.dumps(output).decode()
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": content})
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


def shell(body: Body, model: str, response_id: str, *, store: bool) -> Body:
    """A Response object for ``body`` before any output (status ``in_progress``)."""
    reasoning: Body = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    text: Body = body["text"] if isinstance(body.get("text"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": store,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [{**tool, "strict": tool.get("strict") or False} if isinstance(tool, dict) else tool
                  for tool in body.get("tools") or ()],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "metadata": body.get("metadata") or {},
        **({"user": body["user"]} if isinstance(body.get("user"), str) else {}),
    }


def status_of(response: Body, finish_reason: str | None) -> None:
    """Set ``status`` and ``incomplete_details`` from the chat finish reason."""
    reason = _INCOMPLETE.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None


def response_usage(usage: Any) -> Body | None:
    """A chat ``usage`` object as a Responses one (numbers that are not counts read as 0)."""
    read = Usage.from_openai(usage) if isinstance(usage, dict) else None
    if read is None:
        return None
    return {
        "input_tokens": read.prompt_tokens,
        "input_tokens_details": {"cached_tokens": read.cached_tokens or 0,
                                 "cache_write_tokens": read.cache_write_tokens or 0},
        "output_tokens": read.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": read.reasoning_tokens or 0},
        "total_tokens": read.total_tokens,
    }


def reasoning_item(text: str, id_: str | None = None) -> Body:
    return {"type": "reasoning", "id": id_ or item_id("rs"), "summary": [{"type": "summary_text", "text": text}]}


def message_item(text: str, id_: str | None = None, status: str = "completed") -> Body:
    return {"type": "message", "id": id_ or item_id("msg"), "status": status, "role": "assistant",
            "content": [output_text(text)]}


def output_text(text: str) -> Body:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(call_id: str, name: str, arguments: str, id_: str | None = None, status: str = "completed") -> Body:
    return {"type": "function_call", "id": id_ or item_id("fc"), "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def from_chat(data: Body, response: Body) -> Body:
    """``response`` (a `shell`) completed with the chat answer ``data``; an `UpstreamError`
    (502) when ``data`` is not a chat answer."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _nonsense("'choices' is not a list of choice objects")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _nonsense("'choices[0].message' is not an object")
    for name in ("content", "reasoning_content", "refusal"):
        if message.get(name) is not None and not isinstance(message[name], str):
            raise _nonsense(f"'choices[0].message.{name}' is not a string")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list) or not all(_is_call(call) for call in calls):
        raise _nonsense("'choices[0].message.tool_calls' is not a list of function calls")
    output: list[Body] = []
    if message.get("reasoning_content"):
        output.append(reasoning_item(message["reasoning_content"]))
    if message.get("content"):
        output.append(message_item(message["content"]))
    elif message.get("refusal"):
        output.append({**message_item(""), "content": [{"type": "refusal", "refusal": message["refusal"]}]})
    for call in calls:
        function = call.get("function") or {}
        output.append(call_item(call.get("id") if isinstance(call.get("id"), str) else item_id("call"),
                                function.get("name") or "", function.get("arguments") or ""))
    response["output"] = output
    usage = response_usage(data.get("usage"))
    if usage is not None:
        response["usage"] = usage
    reason = choice.get("finish_reason")
    status_of(response, reason if isinstance(reason, str) else None)
    return response


def _is_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return isinstance(function, dict) and all(
        function.get(name) is None or isinstance(function[name], str) for name in ("name", "arguments"))


def _nonsense(what: str) -> UpstreamError:
    return UpstreamError(f"The upstream's chat answer cannot be read as a response: {what}.")
