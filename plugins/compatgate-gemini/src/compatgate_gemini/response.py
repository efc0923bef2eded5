"""Gemini ``GenerateContentResponse`` -> OpenAI chat completion (whole, or chunk by chunk).

- text parts -> ``content``; ``thought: true`` parts -> ``reasoning_content``, never content;
- ``functionCall`` parts (they arrive whole) -> ``tool_calls`` with Gemini's id or a generated
  one, indexed 0..n-1 per choice, the function name mapped back to the client's;
- ``thoughtSignature`` -> ``extra_content.google.thought_signature`` (see `signatures`);
- ``finishReason`` -> ``finish_reason`` (``tool_calls`` when the candidate called a tool), the
  original always kept in ``native_finish_reason``;
- ``usageMetadata`` (cumulative, repeated in every event: the last one counts) -> ``usage``,
  ``completion_tokens`` including ``thoughtsTokenCount``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from compatgate import UpstreamError, UpstreamStreamError
from compatgate.pivot import with_thought_signature

from .errors import stream_error
from .tools import ToolNames, new_call_id

__all__ = ["StreamConverter", "chat_completion", "finish_reason", "openai_usage"]

Body = dict[str, Any]

_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT"}


def finish_reason(reason: str, called_tools: bool) -> str:
    """The OpenAI ``finish_reason`` for a Gemini ``finishReason``."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called_tools else "stop"


def openai_usage(meta: Any) -> Body:
    """The OpenAI ``usage`` for a Gemini ``usageMetadata``."""
    meta = meta if isinstance(meta, Mapping) else {}
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _count(meta, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


@dataclass(slots=True)
class _Parts:
    """What the parts of one candidate (or of one streamed piece of it) say."""

    text: str = ""
    reasoning: str = ""
    has_text: bool = False
    calls: list[Body] = field(default_factory=list)
    signature: str | None = None


def _read_parts(candidate: Mapping[str, Any], names: ToolNames) -> _Parts:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    result = _Parts()
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, Mapping):
            continue
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            tool_call: Body = {
                "id": call["id"] if isinstance(call.get("id"), str) and call["id"] else new_call_id(),
                "type": "function",
                "function": {
                    "name": names.to_openai(str(call.get("name", ""))),
                    "arguments": orjson.dumps(call.get("args") or {}).decode(),
                },
            }
            if isinstance(signature, str) and signature:
                with_thought_signature(tool_call, signature)
            result.calls.append(tool_call)
            continue
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is True:
                result.reasoning += text
            else:
                result.text += text
                result.has_text = True
        if isinstance(signature, str) and signature:
            result.signature = signature
    return result


def chat_completion(data: Mapping[str, Any], model: str, names: ToolNames, n: int) -> Body:
    """The OpenAI ``chat.completion`` for a whole Gemini response."""
    candidates = [c for c in data.get("candidates") or () if isinstance(c, Mapping)]
    choices: list[Body] = []
    if not candidates:
        blocked = _blocked(data)
        if blocked is None:
            raise UpstreamError("The Gemini API answered without any candidate.", status_code=502)
        empty = {"role": "assistant", "content": None, "refusal": None}
        choices = [_choice({"index": i, "message": dict(empty)}, "content_filter", blocked) for i in range(n)]
    for position, candidate in enumerate(candidates):
        parts = _read_parts(candidate, names)
        # No text part, or only an empty one beside tool calls: null content, as OpenAI gives.
        content = parts.text if parts.has_text and (parts.text or not parts.calls) else None
        message: Body = {"role": "assistant", "content": content, "refusal": None}
        if parts.reasoning:
            message["reasoning_content"] = parts.reasoning
        if parts.calls:
            message["tool_calls"] = parts.calls
        if parts.signature:
            with_thought_signature(message, parts.signature)
        native = candidate.get("finishReason") if isinstance(candidate.get("finishReason"), str) else None
        reason = finish_reason(native or "STOP", bool(parts.calls))
        choices.append(_choice({"index": _index(candidate, position), "message": message}, reason, native))
    return {
        "id": _completion_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(data, model),
        "choices": sorted(choices, key=lambda choice: choice["index"]),
        "usage": openai_usage(data.get("usageMetadata")),
    }


class StreamConverter:
    """Turns the events of ``streamGenerateContent?alt=sse`` into OpenAI chunks."""

    def __init__(self, model: str, names: ToolNames, n: int, secrets: Iterable[str | None]) -> None:
        self.model = model
        self.names = names
        self.n = n
        self.secrets = tuple(secrets)
        self.id: str | None = None
        self.created = int(time.time())
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.call_counts: dict[int, int] = {}
        self.usage: Any = None

    def feed(self, data: Mapping[str, Any]) -> list[Body]:
        """The chunks for one Gemini event (an error object raises `UpstreamStreamError`)."""
        if "error" in data:
            raise stream_error(data["error"], self.secrets)
        if self.id is None:
            self.id = _completion_id(data)
        self.model = _model(data, self.model)
        if isinstance(data.get("usageMetadata"), Mapping):
            self.usage = data["usageMetadata"]
        candidates = [c for c in data.get("candidates") or () if isinstance(c, Mapping)]
        chunks = []
        blocked = _blocked(data) if not candidates else None
        if blocked is not None:
            for index in range(self.n):
                if index not in self.finished:
                    self.finished.add(index)
                    chunks.append(self._chunk([_choice({"index": index, "delta": {}}, "content_filter", blocked)]))
        for position, candidate in enumerate(candidates):
            choice = self._choice(candidate, _index(candidate, position))
            if choice is not None:
                chunks.append(self._chunk([choice]))
        return chunks

    def end(self) -> list[Body]:
        """The final chunks once the upstream stream ended (raises if it ended too early)."""
        missing = sorted(set(range(self.n)) - self.finished)
        if missing:
            raise UpstreamStreamError(
                "The Gemini stream ended without a finishReason"
                + (f" for choice {missing[0]}" if self.n > 1 else "")
                + "; the answer is truncated."
            )
        if self.usage is None:
            return []
        return [self._chunk([], usage=openai_usage(self.usage))]

    def _choice(self, candidate: Mapping[str, Any], index: int) -> Body | None:
        parts = _read_parts(candidate, self.names)
        delta: Body = {}
        if index not in self.started:
            self.started.add(index)
            delta["role"] = "assistant"
        if parts.reasoning:
            delta["reasoning_content"] = parts.reasoning
        if parts.text:
            delta["content"] = parts.text
        if parts.calls:
            first = self.call_counts.get(index, 0)
            delta["tool_calls"] = [{"index": first + k, **call} for k, call in enumerate(parts.calls)]
            self.call_counts[index] = first + len(parts.calls)
        if parts.signature:
            with_thought_signature(delta, parts.signature)
        native = candidate.get("finishReason") if isinstance(candidate.get("finishReason"), str) else None
        if native is None:
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None} if delta else None
        self.finished.add(index)
        return _choice({"index": index, "delta": delta}, finish_reason(native, index in self.call_counts), native)

    def _chunk(self, choices: list[Body], usage: Body | None = None) -> Body:
        chunk: Body = {"id": self.id or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                       "created": self.created, "model": self.model, "choices": choices}
        if usage is not None:
            chunk["usage"] = usage
        return chunk


def _choice(choice: Body, reason: str, native: str | None) -> Body:
    choice["logprobs"] = None
    choice["finish_reason"] = reason
    if native is not None:
        choice["native_finish_reason"] = native
    return choice


def _blocked(data: Mapping[str, Any]) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    return reason if isinstance(reason, str) else None


def _index(candidate: Mapping[str, Any], position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _completion_id(data: Mapping[str, Any]) -> str:
    response_id = data.get("responseId")
    return f"chatcmpl-{response_id}" if isinstance(response_id, str) and response_id else f"chatcmpl-{uuid.uuid4().hex}"


def _model(data: Mapping[str, Any], default: str) -> str:
    version = data.get("modelVersion")
    return version if isinstance(version, str) and version else default


def _count(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
