"""`MessageStream`: pivot ``chat.completion.chunk`` objects -> Anthropic Messages stream events.

The event sequence is Anthropic's: ``message_start`` (sent by the first call of `start`,
`feed`, `ping` or `finish`, with the input tokens the gateway estimated, never 0), then for
each content block ``content_block_start``, its deltas and ``content_block_stop``, one block
open at a time with indexes 0, 1, 2...; ``message_delta`` (stop reason, cumulative usage from the
pivot's usage chunk) and ``message_stop`` come from `finish` only, which the gateway calls when
the pivot stream completed; a broken stream ends with `error`'s ``event: error`` instead.

Blocks: reasoning -> ``thinking`` (``thinking_delta``, then one ``signature_delta`` made by the
gateway when the block closes); text and refusals -> ``text``; each tool call -> ``tool_use``
(started once its name is known, ``arguments`` fragments as ``input_json_delta``). A block
closes when another kind starts. Opaque upstream state (``thinking_blocks`` entries, Gemini
thought signatures) goes into the signature of the open thinking block, or, when none is open,
of a thinking block with empty text emitted at the next block boundary (so before the tool call
it belongs to) or at the end. Only choice 0 is read. Upstreams that interleave the argument
fragments of parallel tool calls (none known does) make `feed` raise `UpstreamStreamError`
rather than lose a fragment; so does `finish` for a tool call that never got a name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from compatgate import GatewayError, UpstreamStreamError, Usage, encode_event
from compatgate.pivot import thought_signature
from compatgate.usage import estimate_tokens

from .errors import error_event
from .ids import message_id as new_message_id
from .ids import tool_id
from .pivot import (
    anthropic_usage,
    mapping_of,
    reasoning_of,
    stop_reason,
    text_of,
    thinking_entries,
)
from .reply import usage_object
from .signing import Signer, ThinkingState, seal

__all__ = ["MessageStream"]

Body = dict[str, Any]
_PING = encode_event(b'{"type":"ping"}', "ping")
_TEXT_ONLY = frozenset({"content", "role"})  # a delta with nothing else takes `_choice`'s hot path


@dataclass(slots=True)
class _Block:
    kind: str  # "thinking", "text" or "tool"
    index: int
    text: list[str] = field(default_factory=list)  # a thinking block's text
    state: ThinkingState = field(default_factory=ThinkingState)


@dataclass(slots=True)
class _Tool:
    id: str | None
    name: str | None
    block: int | None = None  # the Anthropic block index once started
    waiting: list[str] = field(default_factory=list)  # fragments that came before the name


class MessageStream:
    """A synchronous encoder of one Anthropic message stream (see the module docstring).

    ``usage`` is the pivot's usage once its usage chunk arrived (None before); ``generated``
    counts the characters of text, reasoning and tool arguments received so far, for an
    estimate when the client aborts.
    """

    def __init__(
        self,
        *,
        model: str,
        input_tokens: int,
        stop_sequences: Sequence[str] | None,
        signer: Signer,
        message_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.model = model
        self.input_tokens = max(1, input_tokens)
        self.stop_sequences = list(stop_sequences or ())
        self.signer = signer
        self.id = message_id or new_message_id()
        self.request_id = request_id
        self.usage: Usage | None = None
        self.generated = 0
        self._started = False
        self._closed = False
        self._open: _Block | None = None
        self._next = 0
        self._pending = ThinkingState()
        self._tools: dict[int, _Tool] = {}
        self._last_tool: int | None = None
        self._finish: Any = None
        self._matched: Any = None
        self._refusal = False

    # -- the public calls ------------------------------------------------------------------

    def start(self) -> bytes:
        """``message_start`` if not sent yet (``b""`` otherwise)."""
        if self._started or self._closed:
            return b""
        self._started = True
        counts = {"input_tokens": self.input_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1}
        message: Body = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "stop_details": None, "container": None,
                   "usage": usage_object(counts)}
        return _event({"type": "message_start", "message": message})

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        """The events for one pivot chunk (possibly ``b""``)."""
        if self._closed:
            return b""
        out = [self.start()]
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = Usage.from_openai(usage)
        for choice in chunk.get("choices") or ():
            if isinstance(choice, Mapping) and choice.get("index", 0) == 0:
                self._choice(choice, out)
        return b"".join(out)

    def ping(self) -> bytes:
        """A ``ping`` event (after ``message_start``), for an upstream that is silent."""
        if self._closed:
            return b""
        return self.start() + _PING

    def finish(self) -> bytes:
        """The end of a completed stream: open blocks closed, ``message_delta``, ``message_stop``."""
        if self._closed:
            return b""
        out = [self.start()]
        unnamed = [t for t in self._tools.values() if t.block is None]
        if unnamed:
            raise UpstreamStreamError("The upstream streamed a tool call without a name; the answer is unusable.")
        self._close(out)
        self._flush(out)
        reason, sequence = stop_reason(self._finish, self._matched, self.stop_sequences,
                                       tool_use=bool(self._tools), refusal=self._refusal)
        counts = anthropic_usage(self.usage, input_estimate=self.input_tokens,
                                 output_estimate=estimate_tokens(self.generated))
        details = {"type": "refusal", "category": None, "explanation": None} if reason == "refusal" else None
        delta = {"stop_reason": reason, "stop_sequence": sequence, "stop_details": details, "container": None}
        out.append(_event({"type": "message_delta", "delta": delta, "usage": {**counts, "server_tool_use": None}}))
        out.append(_event({"type": "message_stop"}))
        self._closed = True
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        """The ``event: error`` ending a broken stream; nothing follows it."""
        if self._closed:
            return b""
        self._closed = True
        return error_event(error, request_id=self.request_id)

    # -- one choice's delta ----------------------------------------------------------------

    def _choice(self, choice: Mapping[str, Any], out: list[bytes]) -> None:
        raw = choice.get("delta")
        if type(raw) is dict and _TEXT_ONLY.issuperset(raw) and choice.get("finish_reason") is None:
            text = raw.get("content")  # the hot path: a plain text delta (or the role chunk)
            if type(text) is str:
                if text:
                    self.generated += len(text)
                    block = self._block("text", out)
                    out.append(_delta(block.index, {"type": "text_delta", "text": text}))
                return
        delta = mapping_of(raw)
        reasoning = reasoning_of(delta)
        if reasoning:
            self.generated += len(reasoning)
            block = self._block("thinking", out)
            block.text.append(reasoning)
            out.append(_delta(block.index, {"type": "thinking_delta", "thinking": reasoning}))
        text = text_of(delta.get("content"))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refusal = True
            text += refusal
        if text:
            self.generated += len(text)
            block = self._block("text", out)
            out.append(_delta(block.index, {"type": "text_delta", "text": text}))
        state = ThinkingState(thinking_entries(delta), message=thought_signature(delta))
        if state:  # after the text it signs: it goes out at the next block boundary
            self._keep(state)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, Mapping):
                self._tool_call(call, out)
        if choice.get("finish_reason") is not None:
            self._finish = choice["finish_reason"]
            self._matched = choice.get("stop_reason")

    def _tool_call(self, call: Mapping[str, Any], out: list[bytes]) -> None:
        number = call.get("index")
        if not isinstance(number, int) or isinstance(number, bool):  # some upstreams leave it out
            fresh = isinstance(call.get("id"), str) and all(t.id != call["id"] for t in self._tools.values())
            number = len(self._tools) if fresh or self._last_tool is None else self._last_tool
        function = mapping_of(call.get("function"))
        tool = self._tools.get(number)
        if tool is None:
            tool = self._tools[number] = _Tool(None, None)
        self._last_tool = number
        if isinstance(call.get("id"), str) and call["id"] and tool.id is None:
            tool.id = call["id"]
        signature = thought_signature(call)
        if signature and tool.id is not None:
            self._keep(ThinkingState(tools={tool.id: signature}))
        if isinstance(function.get("name"), str) and function["name"] and tool.name is None:
            tool.name = function["name"]
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        if arguments:
            self.generated += len(arguments)
            tool.waiting.append(arguments)
        if tool.block is None and tool.name is not None:
            self._close(out)
            self._flush(out)
            tool.block = self._next
            self._next += 1
            self._open = _Block("tool", tool.block)
            start = {"type": "tool_use", "id": tool_id(tool.id), "name": tool.name, "input": {},
                     "caller": {"type": "direct"}}
            out.append(_event({"type": "content_block_start", "index": tool.block, "content_block": start}))
        if tool.block is None or not tool.waiting:
            return
        if self._open is None or self._open.index != tool.block:
            raise UpstreamStreamError("The upstream interleaved the arguments of parallel tool calls, which "
                                      "an Anthropic stream cannot carry.")
        for fragment in tool.waiting:
            out.append(_delta(tool.block, {"type": "input_json_delta", "partial_json": fragment}))
        tool.waiting.clear()

    # -- blocks -----------------------------------------------------------------------------

    def _block(self, kind: str, out: list[bytes]) -> _Block:
        """The open block of ``kind``, after closing another kind and starting this one."""
        if self._open is not None and self._open.kind == kind:
            return self._open
        self._close(out)
        if kind == "thinking":  # state waiting for a boundary goes into this block's signature
            state, self._pending = self._pending, ThinkingState()
            start: Body = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            self._flush(out)
            state = ThinkingState()
            start = {"type": "text", "text": "", "citations": None}
        block = _Block(kind, self._next, state=state)
        self._next += 1
        self._open = block
        out.append(_event({"type": "content_block_start", "index": block.index, "content_block": start}))
        return block

    def _keep(self, state: ThinkingState) -> None:
        """Opaque state for the open thinking block, else for the next boundary."""
        target = self._open.state if self._open is not None and self._open.kind == "thinking" else self._pending
        target.merge(state)

    def _close(self, out: list[bytes]) -> None:
        block, self._open = self._open, None
        if block is None:
            return
        if block.kind == "thinking":
            signature = seal(self.signer, model=self.model, thinking="".join(block.text), state=block.state)
            out.append(_delta(block.index, {"type": "signature_delta", "signature": signature}))
        out.append(_event({"type": "content_block_stop", "index": block.index}))

    def _flush(self, out: list[bytes]) -> None:
        """A thinking block with empty text for the state still pending (none: nothing)."""
        if not self._pending:
            return
        state, self._pending = self._pending, ThinkingState()
        index = self._next
        self._next += 1
        start = {"type": "thinking", "thinking": "", "signature": ""}
        out.append(_event({"type": "content_block_start", "index": index, "content_block": start}))
        signature = seal(self.signer, model=self.model, thinking="", state=state)
        out.append(_delta(index, {"type": "signature_delta", "signature": signature}))
        out.append(_event({"type": "content_block_stop", "index": index}))


def _event(event: Body) -> bytes:
    return encode_event(orjson.dumps(event), event["type"])


def _delta(index: int, delta: Body) -> bytes:
    return _event({"type": "content_block_delta", "index": index, "delta": delta})
