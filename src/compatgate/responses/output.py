"""Responses API output: the Response object, its items and usage, built from a chat answer.

`shell` is a Response before any output (``in_progress``); `from_chat` completes it with a chat
answer: output items (``reasoning`` with a summary, ``message`` with ``output_text`` or
``refusal``, and one item per tool call: ``function_call``, with its ``namespace`` for a
namespaced function, or ``custom_tool_call``, see `compatgate.responses.tools`), ``status`` and
``usage``. `compatgate.responses.events` builds the same items as a stream.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..exceptions import UpstreamError
from ..usage import Usage
from .tools import ToolMap

__all__ = ["from_chat", "item_id", "message_item", "output_text", "reasoning_item", "response_usage", "shell",
           "status_of"]

Body = dict[str, Any]

# Finish reasons that leave a response incomplete, and why.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


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
        "tools": [{**tool, "strict": tool.get("strict") or False}
                  if isinstance(tool, dict) and tool.get("type") == "function" else tool
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


def call_item(tools: ToolMap, call_id: str, chat_name: str, arguments: str, status: str = "completed") -> Body:
    """The output item of a chat tool call (see `ToolMap.output_item`)."""
    prefix = "ctc" if tools.is_custom(chat_name) else "fc"
    return tools.output_item(chat_name, call_id, arguments, item_id(prefix), status)


def from_chat(data: Body, response: Body, tools: ToolMap) -> Body:
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
        call_id = call.get("id") if isinstance(call.get("id"), str) else item_id("call")
        output.append(call_item(tools, call_id, function.get("name") or "", function.get("arguments") or ""))
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
