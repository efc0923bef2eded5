"""Reading the pivot (a ``chat.completion`` or its chunks), for the reply and the stream.

- reasoning: ``reasoning_content`` (vLLM, DeepSeek, this repository's providers) or
  ``reasoning`` (Ollama, OpenRouter, newer vLLM);
- opaque state: ``thinking_blocks`` entries (the anthropic provider) and
  ``extra_content.google.thought_signature`` on a tool call or the message (the gemini provider);
- stop reasons and usage in Anthropic's terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from compatgate import Usage

__all__ = [
    "INVALID_ARGUMENTS",
    "anthropic_usage",
    "mapping_of",
    "reasoning_of",
    "stop_reason",
    "text_of",
    "thinking_entries",
    "tool_input",
]

#: The ``input`` key that keeps a tool call's arguments when they are not a JSON object.
INVALID_ARGUMENTS = "_raw_arguments"


def mapping_of(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def reasoning_of(source: Mapping[str, Any]) -> str:
    for key in ("reasoning_content", "reasoning"):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def text_of(content: Any) -> str:
    """The text of a chat ``content`` (a string, or text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def thinking_entries(source: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``thinking_blocks`` entries of a message or delta, without their stream ``index``."""
    entries = source.get("thinking_blocks")
    if not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("type") in ("thinking", "redacted_thinking"):
            found.append({key: value for key, value in entry.items() if key != "index"})
    return found


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's ``arguments`` as Anthropic's ``input`` object: ``""`` -> ``{}``; anything
    that is not a JSON object is kept whole under `INVALID_ARGUMENTS` (never lost)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments is None or isinstance(arguments, str) and not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    return {INVALID_ARGUMENTS: arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()}


def stop_reason(
    finish: Any, matched: Any, stop_sequences: Sequence[str] | None, *, tool_use: bool, refusal: bool
) -> tuple[str, str | None]:
    """Anthropic's ``(stop_reason, stop_sequence)`` for a chat ``finish_reason``.

    ``content_filter`` or a refusal -> ``refusal``; ``length`` -> ``max_tokens``; a turn with
    tool calls that stopped (``tool_calls``, ``stop``, none) -> ``tool_use``; ``stop`` where
    ``matched`` (vLLM's ``choices[].stop_reason``) is one of ``stop_sequences`` ->
    ``stop_sequence`` with it; anything else -> ``end_turn`` (OpenAI does not say which stop
    sequence matched, so its stops are ``end_turn``).
    """
    if refusal or finish == "content_filter":
        return "refusal", None
    if finish == "length":
        return "max_tokens", None
    if tool_use and finish in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None
    if finish in (None, "stop") and isinstance(matched, str) and stop_sequences and matched in stop_sequences:
        return "stop_sequence", matched
    return "end_turn", None


def anthropic_usage(usage: Usage | None, *, input_estimate: int = 0, output_estimate: int = 0) -> dict[str, int]:
    """Anthropic's counts for a pivot usage: ``input_tokens`` excludes the cache reads
    (``cache_read_input_tokens``) and writes (``cache_creation_input_tokens``) that the pivot's
    ``prompt_tokens`` include. Without a usage, the estimates."""
    if usage is None:
        return {"input_tokens": input_estimate, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": output_estimate}
    read = usage.cached_tokens or 0
    written = usage.cache_write_tokens or 0
    return {
        "input_tokens": max(usage.prompt_tokens - read - written, 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": usage.completion_tokens,
    }
