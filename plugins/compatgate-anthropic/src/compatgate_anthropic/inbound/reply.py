"""A ``chat.completion`` (the pivot) -> an Anthropic ``Message``.

Content blocks, in Anthropic's order: one ``thinking`` block when the answer has reasoning or
opaque upstream state (its text: the reasoning, possibly empty; its ``signature``: made by the
gateway, carrying that state, see `signing`), one ``text`` block (``content``, then a
``refusal``), one ``tool_use`` block per tool call (``input`` parsed from ``arguments``, see
`pivot.tool_input`; ids made Anthropic-safe, see `ids`). Only the first choice is read (an
Anthropic request never asks for more). ``stop_reason`` per `pivot.stop_reason`; ``usage`` per
`pivot.anthropic_usage`. Every field the Messages API schema lists is present (``null`` when
the pivot has no value for it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from compatgate import Usage
from compatgate.pivot import thought_signature

from .ids import message_id, tool_id
from .pivot import (
    anthropic_usage,
    mapping_of,
    reasoning_of,
    stop_reason,
    text_of,
    thinking_entries,
    tool_input,
)
from .signing import Signer, ThinkingState, seal

__all__ = ["from_chat", "message_usage", "usage_object"]

Body = dict[str, Any]


def from_chat(
    chat: Mapping[str, Any],
    *,
    model: str,
    stop_sequences: Sequence[str] | None,
    signer: Signer,
    input_tokens: int = 0,
) -> Body:
    """The Anthropic Message for a chat completion; ``model`` is the name the client asked for
    (the thinking signature binds it); ``input_tokens`` is used only when the pivot has no usage."""
    choices: list[Any] = chat["choices"] if isinstance(chat.get("choices"), list) else []
    choice: Mapping[str, Any] = next((mapping_of(c) for c in choices if mapping_of(c).get("index", 0) == 0), {})
    message = mapping_of(choice.get("message"))
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, Mapping)]
    content: list[Body] = []
    reasoning = reasoning_of(message)
    state = ThinkingState(thinking_entries(message), message=thought_signature(message))
    for call in calls:
        signature = thought_signature(call)
        if signature and isinstance(call.get("id"), str):
            state.tools[call["id"]] = signature
    if reasoning or state:
        signature = seal(signer, model=model, thinking=reasoning, state=state)
        content.append({"type": "thinking", "thinking": reasoning, "signature": signature})
    refusal = message["refusal"] if isinstance(message.get("refusal"), str) else ""
    text = text_of(message.get("content")) + refusal
    if text:
        content.append({"type": "text", "text": text, "citations": None})
    for call in calls:
        function = mapping_of(call.get("function"))
        content.append({"type": "tool_use", "id": tool_id(call.get("id")), "name": str(function.get("name") or ""),
                        "input": tool_input(function.get("arguments")), "caller": {"type": "direct"}})
    reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"), stop_sequences,
                                   tool_use=bool(calls), refusal=bool(refusal))
    usage = Usage.from_openai(chat.get("usage"))
    return {
        "id": message_id(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "stop_details": _refusal_details() if reason == "refusal" else None,
        "container": None,
        "usage": usage_object(anthropic_usage(usage, input_estimate=input_tokens)),
    }


def usage_object(counts: Mapping[str, int]) -> Body:
    """A complete Anthropic ``usage`` object for these counts."""
    return {**counts, "cache_creation": None, "inference_geo": None, "server_tool_use": None, "service_tier": None}


def message_usage(message: Mapping[str, Any]) -> Usage | None:
    """The gateway's `Usage` of an Anthropic Message (or a ``message_start``/``message_delta``
    usage merged into one): every input token counted in ``prompt_tokens``, cache reads as
    ``cached_tokens``, cache writes as ``cache_write_tokens``; None without a usage."""
    usage = message.get("usage")
    if not isinstance(usage, Mapping):
        return None
    fresh, read, written, output = (_count(usage.get(k)) for k in (
        "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens"))
    details = usage.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, Mapping) else None
    prompt = fresh + read + written
    return Usage(prompt, output, prompt + output, read, thinking if isinstance(thinking, int) else None, written)


def _refusal_details() -> Body:
    return {"type": "refusal", "category": None, "explanation": None}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
