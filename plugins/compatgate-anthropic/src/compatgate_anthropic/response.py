"""An Anthropic Message -> an OpenAI ``chat.completion``, and what streams share with it.

- ``text`` blocks -> ``message.content`` (joined; None when there is no text at all).
- ``tool_use`` -> ``message.tool_calls`` (ids kept, ``input`` as JSON ``arguments``); the
  ``response_format`` answer tool -> ``message.content``.
- ``thinking`` -> ``message.reasoning_content``, and every thinking block, signature included
  (``redacted_thinking`` too), in ``message.thinking_blocks`` so the next turn can send them
  back unchanged.
- Server-side blocks (``server_tool_use``, ``web_search_tool_result``, ``compaction``...) have
  no OpenAI form and are left out; so are citations.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["finish_reason", "openai_response", "openai_usage", "thinking_entry"]

Body = dict[str, Any]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, has_tool_calls: bool) -> str:
    """The OpenAI ``finish_reason`` for an Anthropic ``stop_reason`` (unknown ones: ``"stop"``).
    ``tool_calls`` only when the client got tool calls: a ``tool_use`` stop for the
    ``response_format`` answer tool alone is a ``"stop"``."""
    reason = _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"
    return reason


def openai_usage(usage: Mapping[str, Any]) -> Body:
    """The OpenAI ``usage`` for an Anthropic one. ``prompt_tokens`` counts every input token:
    ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``; the cache reads
    are ``cached_tokens`` and the cache writes ``cache_write_tokens`` (``prompt_tokens_details``),
    and Anthropic's thinking tokens, when it says, ``reasoning_tokens``."""
    fresh = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    output = _count(usage.get("output_tokens"))
    prompt = fresh + read + written
    converted: Body = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }
    details = usage.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, Mapping) else None
    if isinstance(thinking, int) and not isinstance(thinking, bool):
        converted["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return converted


def thinking_entry(block: Mapping[str, Any]) -> Body | None:
    """The ``thinking_blocks`` entry for a thinking or redacted_thinking block."""
    if block.get("type") == "thinking":
        thinking, signature = _text(block.get("thinking")), _text(block.get("signature"))
        return {"type": "thinking", "thinking": thinking, "signature": signature}
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": _text(block.get("data"))}
    return None


def openai_response(message: Mapping[str, Any], json_tool: str | None, model: str) -> Body:
    """The ``chat.completion`` for an Anthropic Message (``model``: when it names none)."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking: list[Body] = []
    calls: list[Body] = []
    for block in message.get("content") or ():
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(_text(block.get("text")))
        elif kind == "tool_use" and block.get("name") == json_tool:
            texts.append(_json(block.get("input")))
        elif kind == "tool_use":
            function = {"name": _text(block.get("name")), "arguments": _json(block.get("input"))}
            calls.append({"id": _text(block.get("id")), "type": "function", "function": function})
        elif (entry := thinking_entry(block)) is not None:
            thinking.append(entry)
            if kind == "thinking":
                reasoning.append(entry["thinking"])
    content = "".join(texts) or None
    answer: Body = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        answer["tool_calls"] = calls
    if thinking:
        answer["reasoning_content"] = "".join(reasoning)
        answer["thinking_blocks"] = thinking
    choice = {
        "index": 0,
        "message": answer,
        "logprobs": None,
        "finish_reason": finish_reason(message.get("stop_reason"), bool(calls)),
    }
    usage = message.get("usage")
    return {
        "id": _text(message.get("id")) or "chatcmpl-anthropic",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _text(message.get("model")) or model,
        "choices": [choice],
        "usage": openai_usage(usage if isinstance(usage, Mapping) else {}),
    }


def _json(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
