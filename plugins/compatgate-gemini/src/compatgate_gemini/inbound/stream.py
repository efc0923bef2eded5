"""Pivot ``chat.completion.chunk`` dicts -> Gemini's ``streamGenerateContent`` output.

`ContentStream` is synchronous: the core feeds it each chunk and writes the bytes it returns.

- ``sse=True`` (``?alt=sse``): each ``GenerateContentResponse`` as ``data: {json}\\r\\n\\r\\n``,
  Google's own framing; ``sse=False``: the JSON array form, ``[{...},\\r\\n{...}]``.
- Text and reasoning are sent as they come (reasoning as ``thought: true`` parts, only when
  the client asked for thoughts). A ``functionCall`` travels whole in one part, as Gemini
  sends it: the argument fragments of each tool call are buffered, and the call is sent once
  complete (when the next call starts, or at the end).
- The upstream's opaque state (``thinking_blocks``, a tool loop's reasoning, Gemini
  signatures) is sealed into the ``thoughtSignature`` of the next ``functionCall`` or text part
  sent after it arrived (see `envelope`), else of an empty text part at the end.
- `finish` (only after a clean end of the pivot stream) sends the last response: the calls
  still buffered, each candidate's ``finishReason``, ``usageMetadata``; every candidate has at
  least one part (an empty text part, as Gemini 3 sends it), since the google-genai SDK
  discards a chat turn with a chunk that has none. In array mode it closes the array.
- `error` ends the stream as Google does: ``{"error": {"code", "message", "status"}}`` as the
  last event (as the last array element, the array then closed); never a ``finishReason``.
- `ping` is a blank line (``\\r\\n``): nothing to an SSE parser, whitespace to a JSON one.
  An SSE comment (``: ping``) would be the usual keep-alive, but the google-genai Python SDK
  parses every non-``data:`` line as JSON and fails on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from compatgate import GatewayError, Usage
from compatgate.pivot import thought_signature

from .envelope import Signer, State, seal
from .errors import error_object
from .reply import finish_reason, parse_arguments, response_id, usage_metadata

__all__ = ["ContentStream", "stream_error"]

Body = dict[str, Any]


def stream_error(error: GatewayError, *, sse: bool, started: bool) -> bytes:
    """The bytes that end a stream with ``error`` (``started``: the array was opened)."""
    data = orjson.dumps(error_object(error))
    if sse:
        return b"data: " + data + b"\r\n\r\n"
    return (b",\r\n" if started else b"[") + data + b"]"


@dataclass(slots=True)
class _Call:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    signature: str | None = None


@dataclass(slots=True)
class _Choice:
    calls: dict[int, _Call] = field(default_factory=dict)
    blocks: list[Body] = field(default_factory=list)  # thinking blocks not sealed yet
    reasoning: list[str] = field(default_factory=list)  # since the last call sent
    signature: str | None = None  # a message signature not sealed yet
    finish: str | None = None
    native: Any = None
    sent_call: bool = False
    malformed: bool = False


class ContentStream:
    """Encodes one pivot stream for a Gemini client. ``usage`` is the pivot's usage once its
    usage chunk arrived; ``generated`` counts the characters generated so far (text, reasoning,
    arguments), for an estimate when the client aborts."""

    def __init__(self, *, model: str, signer: Signer, sse: bool, thoughts: bool = True) -> None:
        self.model = model
        self.signer = signer
        self.sse = sse
        self.thoughts = thoughts
        self.usage: Usage | None = None
        self.generated = 0
        self._usage: Body | None = None
        self._choices: dict[int, _Choice] = {}
        self._id: str | None = None
        self._version: str | None = None
        self._started = False  # array mode: "[" sent

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        """The bytes for one pivot chunk (often none: a role, a fragment of arguments)."""
        if self._id is None:
            self._id = response_id(chunk.get("id"))
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._version = chunk["model"]
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = usage_metadata(chunk["usage"])
            self.usage = Usage.from_openai(chunk["usage"])
        candidates = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping):
                continue
            index = choice.get("index") if isinstance(choice.get("index"), int) else 0
            state = self._choices.setdefault(index, _Choice())
            delta = choice.get("delta") if isinstance(choice.get("delta"), Mapping) else {}
            parts = self._delta(state, delta)
            if choice.get("finish_reason") is not None:
                state.finish, state.native = choice["finish_reason"], choice.get("native_finish_reason")
            if parts:
                candidates.append({"content": {"parts": parts, "role": "model"}, "index": index})
        return self._response(candidates) if candidates else b""

    def finish(self) -> bytes:
        """The last response (pending calls, finish reasons, usage); closes the array."""
        candidates = []
        for index, state in sorted((self._choices or {0: _Choice()}).items()):
            parts = self._flush(state, None)
            if state.blocks or state.signature is not None:
                parts.append(self._signed({"text": ""}, state, None))
            if not parts:
                parts.append({"text": ""})
            reason = "MALFORMED_FUNCTION_CALL" if state.malformed else finish_reason(state.finish, state.native)
            candidates.append({"content": {"parts": parts, "role": "model"}, "finishReason": reason, "index": index})
        data = self._response(candidates, final=True)
        return data + b"]" if not self.sse else data

    def error(self, error: GatewayError) -> bytes:
        """The bytes that end the stream with ``error`` (never a ``finishReason``)."""
        data = stream_error(error, sse=self.sse, started=self._started)
        self._started = True
        return data

    def ping(self) -> bytes:
        """Keep-alive bytes that every client ignores: a blank line."""
        return b"\r\n"

    # -- parts ----------------------------------------------------------------------------

    def _delta(self, state: _Choice, delta: Mapping[str, Any]) -> list[Body]:
        parts: list[Body] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self.generated += len(reasoning)
            state.reasoning.append(reasoning)
            if self.thoughts:
                parts.append({"text": reasoning, "thought": True})
        for block in delta.get("thinking_blocks") or ():
            if isinstance(block, Mapping):
                state.blocks.append({k: v for k, v in block.items() if k != "index"})
        signature = thought_signature(delta)
        if signature is not None:
            state.signature = signature
        text = "".join(v for v in (delta.get("content"), delta.get("refusal")) if isinstance(v, str))
        if text:
            self.generated += len(text)
            part: Body = {"text": text}
            if state.blocks or state.signature is not None:
                part = self._signed(part, state, None)
            parts.append(part)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, Mapping):
                parts += self._call_delta(state, call)
        return parts

    def _call_delta(self, state: _Choice, delta: Mapping[str, Any]) -> list[Body]:
        key = delta.get("index") if isinstance(delta.get("index"), int) else len(state.calls)
        parts = [] if key in state.calls else self._flush(state, key)
        call = state.calls.setdefault(key, _Call())
        if isinstance(delta.get("id"), str) and delta["id"]:
            call.id = delta["id"]
        function = delta.get("function") if isinstance(delta.get("function"), Mapping) else {}
        if isinstance(function.get("name"), str) and function["name"] and not call.name:
            call.name = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.generated += len(arguments)
            call.arguments.append(arguments)
        elif isinstance(arguments, Mapping):
            call.arguments = [orjson.dumps(arguments).decode()]
        signature = thought_signature(delta)
        if signature is not None:
            call.signature = signature
        return parts

    def _flush(self, state: _Choice, keep: int | None) -> list[Body]:
        """The parts of the buffered calls but ``keep`` (complete once another call started)."""
        parts = []
        for key in sorted(k for k in state.calls if k != keep):
            call = state.calls.pop(key)
            args = parse_arguments("".join(call.arguments))
            if args is None:
                state.malformed = True
                continue
            payload: Body = {"name": call.name, "args": args}
            if call.id:
                payload["id"] = call.id
            parts.append(self._signed({"functionCall": payload}, state, call))
        return parts

    def _signed(self, part: Body, state: _Choice, call: _Call | None) -> Body:
        """``part`` carrying, sealed, the state not yet sent (and ``call``'s own signature)."""
        sealed = State(model=self.model, thinking_blocks=state.blocks)
        state.blocks = []
        if call is not None:
            sealed.signature = call.signature
            if state.reasoning and not sealed.thinking_blocks:
                sealed.reasoning = "".join(state.reasoning)
            state.reasoning = []
        elif state.signature is not None:
            sealed.signature, state.signature = state.signature, None
        if not sealed.empty:
            part["thoughtSignature"] = seal(sealed, self.signer)
        return part

    def _response(self, candidates: list[Body], final: bool = False) -> bytes:
        response: Body = {"candidates": candidates}
        if final and self._usage is not None:
            response["usageMetadata"] = self._usage
        response["modelVersion"] = self._version or self.model
        if self._id:
            response["responseId"] = self._id
        data = orjson.dumps(response)
        if self.sse:
            return b"data: " + data + b"\r\n\r\n"
        prefix = b",\r\n" if self._started else b"["
        self._started = True
        return prefix + data
