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
    """A chat ``usage`` object as a Responses one."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": prompt_details.get("cached_tokens") or 0,
                                 "cache_write_tokens": prompt_details.get("cache_write_tokens") or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": completion_details.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
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
    """``response`` (a `shell`) completed with the chat answer ``data``."""
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[Body] = []
    if message.get("reasoning_content"):
        output.append(reasoning_item(message["reasoning_content"]))
    if message.get("content"):
        output.append(message_item(message["content"]))
    elif message.get("refusal"):
        output.append({**message_item(""), "content": [{"type": "refusal", "refusal": message["refusal"]}]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(call_item(tools, call.get("id") or item_id("call"), function.get("name") or "",
                                function.get("arguments") or ""))
    response["output"] = output
    usage = response_usage(data.get("usage"))
    if usage is not None:
        response["usage"] = usage
    status_of(response, choice.get("finish_reason"))
    return response
