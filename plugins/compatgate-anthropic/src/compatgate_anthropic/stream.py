"""An Anthropic Messages event stream -> OpenAI ``chat.completion.chunk`` objects.

One id (the message's) and one ``created`` for the whole stream; ``{"role": "assistant"}`` in
the first chunk, sent as soon as ``message_start`` arrives. Tool calls are numbered 0..n-1 in
the order they start, whatever Anthropic's block index (text or thinking before a tool never
shifts it); a call's ``id``, ``type`` and ``name`` come in its first delta only, its
``arguments`` as the fragments Anthropic sent. Thinking streams as ``reasoning_content``; each
thinking block, once complete with its signature, comes as one ``thinking_blocks`` entry
(numbered 0..m-1). ``finish_reason`` is sent once, at ``message_stop``, then the usage chunk
(``choices: []``). ``ping`` and unknown events are ignored. ``event: error``, a stream that
ends without ``message_stop``, an event that is not JSON or an out-of-order delta raise
`UpstreamStreamError`, which the gateway sends as an OpenAI error event: never a fake finish.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx2
import orjson

from compatgate import Chunk, ServerSentEvent, UpstreamStreamError, decode_event

from .errors import stream_error
from .response import finish_reason, openai_usage, thinking_entry

__all__ = ["StreamConverter", "TerminatedResponse", "openai_stream"]

Body = dict[str, Any]


@dataclass(slots=True)
class _Block:
    """One content block being streamed: ``kind`` is text, thinking, tool (a client tool call,
    numbered ``number``), answer (the response_format tool) or other (server-side blocks)."""

    kind: str
    number: int = -1
    initial: Any = None  # a tool_use block's ``input`` at its start
    streamed: bool = False  # whether any input_json_delta arrived
    thinking: list[str] = field(default_factory=list)
    signature: str = ""


class StreamConverter:
    """Feed the decoded Anthropic events one by one; get the OpenAI chunks each produces."""

    def __init__(self, json_tool: str | None, model: str) -> None:
        self.json_tool = json_tool
        self.model = model
        self.head: Body | None = None
        self.blocks: dict[int, _Block] = {}
        self.tool_calls = 0
        self.thinking_blocks = 0
        self.usage: Body = {}
        self.stop_reason: str | None = None
        self.done = False

    def feed(self, event: Mapping[str, Any], name: str | None = None) -> list[Body]:
        kind = event.get("type", name)
        if kind == "error" or name == "error":
            raise stream_error(event)
        if kind == "message_start":
            return self._message_start(event)
        if kind == "content_block_stop":
            block = self.blocks.get(_index(event))
            return self._block_stop(block) if block is not None else []  # a stray stop says nothing
        handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return []  # ping, and event types this plugin does not know
        if self.head is None:
            raise UpstreamStreamError(f"The upstream sent {kind} before message_start.")
        return handler(self, event)

    # -- events ---------------------------------------------------------------------------

    def _message_start(self, event: Mapping[str, Any]) -> list[Body]:
        if self.head is not None:
            raise UpstreamStreamError("The upstream started a second message in one stream.")
        message = event.get("message")
        message = message if isinstance(message, Mapping) else {}
        self.head = {
            "id": _string(message.get("id")) or "chatcmpl-anthropic",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": _string(message.get("model")) or self.model,
        }
        self._count(message.get("usage"))
        return [self._chunk({"role": "assistant"})]

    def _block_start(self, event: Mapping[str, Any]) -> list[Body]:
        index = event.get("index")
        block = event.get("content_block")
        if not isinstance(index, int) or not isinstance(block, Mapping) or index in self.blocks:
            raise UpstreamStreamError("The upstream sent an invalid content_block_start.")
        kind = block.get("type")
        if kind == "text":
            self.blocks[index] = _Block("text")
            return self._text(block.get("text"))
        if kind == "thinking":
            state = self.blocks[index] = _Block("thinking", signature=_string(block.get("signature")))
            return self._thinking(state, block.get("thinking"))
        if kind == "redacted_thinking":
            self.blocks[index] = _Block("other")
            return self._thinking_block(thinking_entry(block) or {})
        if kind == "tool_use" and block.get("name") == self.json_tool:
            self.blocks[index] = _Block("answer", initial=block.get("input"))
            return []
        if kind == "tool_use":
            self.blocks[index] = _Block("tool", self.tool_calls, initial=block.get("input"))
            self.tool_calls += 1
            function = {"name": _string(block.get("name")), "arguments": ""}
            call = {"index": self.blocks[index].number, "id": _string(block.get("id")), "type": "function",
                    "function": function}
            return [self._chunk({"tool_calls": [call]})]
        self.blocks[index] = _Block("other")  # server tool use, search results, compaction...
        return []

    def _block_delta(self, event: Mapping[str, Any]) -> list[Body]:
        block = self.blocks.get(_index(event))
        delta = event.get("delta")
        if block is None or not isinstance(delta, Mapping):
            raise UpstreamStreamError("The upstream sent a content_block_delta for a block it never started.")
        kind = delta.get("type")
        if kind == "text_delta" and block.kind == "text":
            return self._text(delta.get("text"))
        if kind == "thinking_delta" and block.kind == "thinking":
            return self._thinking(block, delta.get("thinking"))
        if kind == "signature_delta" and block.kind == "thinking":
            block.signature += _string(delta.get("signature"))
        elif kind == "input_json_delta" and block.kind in ("tool", "answer"):
            block.streamed = True
            return self._arguments(block, _string(delta.get("partial_json")))
        return []  # citations, server tool input, delta types this plugin does not know

    def _block_stop(self, block: _Block) -> list[Body]:
        if block.kind == "thinking":
            entry = {"type": "thinking", "thinking": "".join(block.thinking), "signature": block.signature}
            block.kind = "other"  # a repeated stop must not send it twice
            return self._thinking_block(entry)
        if block.kind in ("tool", "answer") and not block.streamed and block.initial:
            block.streamed = True  # the whole input came in content_block_start
            return self._arguments(block, orjson.dumps(block.initial).decode())
        return []

    def _message_delta(self, event: Mapping[str, Any]) -> list[Body]:
        delta = event.get("delta")
        if isinstance(delta, Mapping) and isinstance(delta.get("stop_reason"), str):
            self.stop_reason = delta["stop_reason"]
        self._count(event.get("usage"))
        return []

    def _message_stop(self, event: Mapping[str, Any]) -> list[Body]:
        if self.stop_reason is None:
            raise UpstreamStreamError(
                "The upstream stream ended without a stop reason; the answer may be incomplete."
            )
        self.done = True
        finish = self._chunk({}, finish_reason(self.stop_reason, self.tool_calls > 0))
        assert self.head is not None
        return [finish, {**self.head, "choices": [], "usage": openai_usage(self.usage)}]

    _HANDLERS: ClassVar[Mapping[str, Callable[[StreamConverter, Mapping[str, Any]], list[Body]]]] = {
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
    }

    # -- chunks ---------------------------------------------------------------------------

    def _chunk(self, delta: Body, finish: str | None = None) -> Body:
        assert self.head is not None
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self.head, "choices": [choice]}

    def _text(self, text: Any) -> list[Body]:
        return [self._chunk({"content": text})] if isinstance(text, str) and text else []

    def _thinking(self, block: _Block, text: Any) -> list[Body]:
        if not isinstance(text, str) or not text:
            return []
        block.thinking.append(text)
        return [self._chunk({"reasoning_content": text})]

    def _thinking_block(self, entry: Body) -> list[Body]:
        entry = {"index": self.thinking_blocks, **entry}
        self.thinking_blocks += 1
        return [self._chunk({"thinking_blocks": [entry]})]

    def _arguments(self, block: _Block, fragment: str) -> list[Body]:
        if not fragment:
            return []
        if block.kind == "answer":
            return [self._chunk({"content": fragment})]
        return [self._chunk({"tool_calls": [{"index": block.number, "function": {"arguments": fragment}}]})]

    def _count(self, usage: Any) -> None:
        """Anthropic's counts are cumulative: a later event's value replaces an earlier one."""
        if isinstance(usage, Mapping):
            self.usage.update((key, value) for key, value in usage.items() if value is not None)


async def openai_stream(
    batches: AsyncGenerator[list[ServerSentEvent], None], json_tool: str | None, model: str
) -> AsyncGenerator[Chunk, None]:
    """The OpenAI chunks for an Anthropic event stream (`HTTPProvider.event_batches`), up to
    ``message_stop``; closing this iterator closes ``batches`` (and so the upstream response).

    The chunks of the events of one network read are marked ``more`` but the last, so the
    gateway writes them to the client together; those converted before an invalid event still
    reach the client before the error."""
    converter = StreamConverter(json_tool, model)
    async with aclosing(batches) as upstream:
        async for batch in upstream:
            chunks: list[Body] = []
            failure: UpstreamStreamError | None = None
            for event in batch:
                if not event.data.strip():
                    continue  # an event without data (a keep-alive) says nothing
                try:
                    chunks.extend(converter.feed(decode_event(event), event.event))
                except UpstreamStreamError as exc:
                    failure = exc
                    break
                if converter.done:
                    break
            last = len(chunks) - 1
            for index, chunk in enumerate(chunks):
                yield Chunk(chunk, more=index < last)
            if failure is not None:
                raise failure
            if converter.done:
                return
    raise UpstreamStreamError(
        "The upstream stream ended before message_stop; the answer is truncated."
    )


class TerminatedResponse:
    """An upstream response whose body gets a blank line appended at its end.

    The last event of a stream that closes right after it, without the blank line that ends an
    event (as several real Anthropic recordings do), is then decoded instead of dropped. An event
    cut short still fails: its data is not complete JSON, and ``message_stop`` is missing.
    """

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async with aclosing(self.response.aiter_bytes()) as chunks:
            async for data in chunks:
                yield data
        yield b"\n\n"

    async def aclose(self) -> None:
        await self.response.aclose()


def _index(event: Mapping[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else -1


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
