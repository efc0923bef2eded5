"""An OpenAI ``chat.completion`` (the pivot) -> a Gemini ``GenerateContentResponse``.

Each choice is a candidate whose parts are, in order: the reasoning as a ``thought: true``
text part (only when the client asked for thoughts), the text (``content``, or ``refusal``),
then one ``functionCall`` part per tool call (``args`` parsed, the pivot's call ``id`` kept).
The opaque state the upstream needs on the next turn is sealed into ``thoughtSignature``
(see `envelope`): on the first ``functionCall`` part (where Gemini puts its own signatures,
and the only part the Gemini CLI guarantees to keep), with each call's own Gemini signature on
its part; without calls, on the text part (an empty text part when there is none).

``finish_reason``: ``stop`` and ``tool_calls`` -> ``STOP``, ``length`` -> ``MAX_TOKENS``,
``content_filter`` -> ``SAFETY``, other -> ``OTHER``; a Gemini reason the upstream reported
in ``native_finish_reason`` is kept as it is. Arguments that are not a JSON object make the
candidate ``MALFORMED_FUNCTION_CALL`` (the call is left out), as Gemini itself reports it.
``usage`` -> ``usageMetadata``: ``promptTokenCount``, ``candidatesTokenCount`` (completion
minus reasoning), ``thoughtsTokenCount``, ``cachedContentTokenCount``, ``totalTokenCount``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from compatgate.pivot import thought_signature

from .envelope import Signer, State, seal

__all__ = ["FINISH_REASONS", "finish_reason", "from_chat", "parse_arguments", "response_id", "usage_metadata"]

Body = dict[str, Any]
FINISH_REASONS = frozenset({
    "STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "LANGUAGE", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT",
    "SPII", "MALFORMED_FUNCTION_CALL", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER",
    "NO_IMAGE", "IMAGE_RECITATION", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS",
})
_FINISH = {"stop": "STOP", "tool_calls": "STOP", "function_call": "STOP", "length": "MAX_TOKENS",
           "content_filter": "SAFETY"}


def finish_reason(reason: Any, native: Any = None) -> str:
    """The Gemini ``finishReason`` for an OpenAI ``finish_reason``."""
    if isinstance(native, str) and native in FINISH_REASONS:
        return native
    return _FINISH.get(reason, "OTHER") if isinstance(reason, str) else "STOP"


def usage_metadata(usage: Any) -> Body | None:
    """Gemini's ``usageMetadata`` for an OpenAI ``usage`` object."""
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details")
    thoughts = _count(details.get("reasoning_tokens")) if isinstance(details, Mapping) else 0
    cached_details = usage.get("prompt_tokens_details")
    cached = _count(cached_details.get("cached_tokens")) if isinstance(cached_details, Mapping) else 0
    meta: Body = {"promptTokenCount": prompt, "candidatesTokenCount": max(0, completion - thoughts),
                  "totalTokenCount": _count(usage.get("total_tokens")) or prompt + completion}
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def parse_arguments(arguments: Any) -> dict[str, Any] | None:
    """A tool call's arguments as an object (None when they are not a JSON object)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments is None or arguments == "":
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str | bytes) else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def response_id(value: Any) -> str | None:
    """Gemini's ``responseId`` for an OpenAI ``id`` (``chatcmpl-`` removed)."""
    return value.removeprefix("chatcmpl-") or None if isinstance(value, str) else None


def from_chat(chat: Mapping[str, Any], *, model: str, signer: Signer, thoughts: bool = True) -> Body:
    """The ``GenerateContentResponse`` for a ``chat.completion``; ``thoughts``: whether the
    client asked for thought parts (see `wants_thoughts`)."""
    candidates = []
    for position, choice in enumerate(chat.get("choices") or ()):
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message") if isinstance(choice.get("message"), Mapping) else {}
        parts, malformed = message_parts(message, model=model, signer=signer, thoughts=thoughts)
        reason = "MALFORMED_FUNCTION_CALL" if malformed else finish_reason(
            choice.get("finish_reason"), choice.get("native_finish_reason"))
        index = choice.get("index") if isinstance(choice.get("index"), int) else position
        candidate: Body = {"content": {"parts": parts, "role": "model"}, "finishReason": reason, "index": index}
        if not parts:
            del candidate["content"]
        candidates.append(candidate)
    response: Body = {"candidates": sorted(candidates, key=lambda c: c["index"])}
    meta = usage_metadata(chat.get("usage"))
    if meta is not None:
        response["usageMetadata"] = meta
    response["modelVersion"] = chat["model"] if isinstance(chat.get("model"), str) and chat["model"] else model
    rid = response_id(chat.get("id"))
    if rid:
        response["responseId"] = rid
    return response


def message_parts(message: Mapping[str, Any], *, model: str, signer: Signer, thoughts: bool) -> tuple[list[Body], bool]:
    """The parts of one assistant message, and whether a tool call had to be left out."""
    parts: list[Body] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if thoughts and isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    text = "".join(v for v in (message.get("content"), message.get("refusal")) if isinstance(v, str))
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, Mapping)]
    blocks = [dict(b) for b in message.get("thinking_blocks") or () if isinstance(b, Mapping)]
    state = State(model=model, thinking_blocks=[{k: v for k, v in b.items() if k != "index"} for b in blocks])
    if text or not calls:
        part: Body = {"text": text}
        google = thought_signature(message)
        if not calls or google is not None:
            with_google = State(model=model, signature=google)
            if not calls:
                with_google.thinking_blocks = state.thinking_blocks
            if not with_google.empty:
                part["thoughtSignature"] = seal(with_google, signer)
        if text or "thoughtSignature" in part or not parts:
            parts.append(part)
    malformed = False
    first = True
    for call in calls:
        function = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        args = parse_arguments(function.get("arguments"))
        if args is None:
            malformed = True
            continue
        payload: Body = {"name": str(function.get("name") or ""), "args": args}
        if isinstance(call.get("id"), str) and call["id"]:
            payload["id"] = call["id"]
        call_state = State(model=model, signature=thought_signature(call))
        if first:
            call_state.thinking_blocks = state.thinking_blocks
            if isinstance(reasoning, str) and reasoning and not blocks:
                call_state.reasoning = reasoning
            first = False
        part = {"functionCall": payload}
        if not call_state.empty:
            part["thoughtSignature"] = seal(call_state, signer)
        parts.append(part)
    return parts, malformed


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
