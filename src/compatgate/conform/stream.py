"""Streams: every chunk made to conform as it passes, and the end of a stream repaired.

`StreamConformer` keeps a stream's state (its one ``id``, the choices seen and finished) and
gives the bytes of each chunk. `ConformingStream` wraps a provider's `ChunkStream` with it, so
the relay receives conforming chunks (``data`` fixed in place, ``raw`` the bytes to send: the
upstream's own object when nothing changed) and needs no other change.

The last-chunk rule: a choice must end with a ``finish_reason``. When the upstream closed the
stream properly (``data: [DONE]``, which only the provider can tell: ``done``) but a choice it
streamed never got one, and the stream itself shows why it ended — it streamed tool calls
(vLLM's tool-call streams, vllm#27572: ``tool_calls``) or its usage reached the request's token
limit (``length``) — the stream gets the finish chunk it lacked, ``{"delta": {}, "finish_reason":
...}``, placed before the usage chunk (held back for that, only in this case). Both modes do
this. Anything else is not invented: a choice that ends without a reason nothing shows (or a
stream that ended without ``[DONE]``) is truncated, and the relay ends it with an error event
(it never looks complete).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import orjson

from ..provider import Chunk, ChunkStream
from ._base import Fallback, infer_finish
from .canonical import canonical_chunk, canonical_completion
from .chat import ChunkState, fix_chat_chunk
from .completion import fix_completion_chunk

__all__ = ["ConformingStream", "StreamConformer"]

Kind = Literal["chat", "completion"]


class StreamConformer:
    """Conformance of one stream of ``kind`` ``"chat"`` (``chat.completion.chunk``) or
    ``"completion"`` (``text_completion``); ``strict`` re-serialises every chunk canonically
    (see `compatgate.conform.canonical`), else only changed chunks are re-serialised."""

    def __init__(self, kind: Kind, *, strict: bool = False, request: Mapping[str, Any] | None = None,
                 model: str = "") -> None:
        self.chat = kind == "chat"
        self.strict = strict
        self.state = ChunkState(Fallback(request, model, "chatcmpl" if self.chat else "cmpl"))
        n = (request or {}).get("n")
        self.n = n if type(n) is int and n > 0 else 1
        self._fix = fix_chat_chunk if self.chat else fix_completion_chunk
        self._canonical = canonical_chunk if self.chat else canonical_completion

    def conform(self, data: dict[str, Any]) -> bool:
        """Fix ``data`` in place; whether it changed (always re-serialise in strict mode)."""
        if "error" in data and not data.get("choices"):
            return False  # an upstream error event: the relay ends the stream with it
        return self._fix(data, self.state)

    def payload(self, data: dict[str, Any], raw: bytes | None) -> bytes:
        """The bytes the client gets for one chunk (``raw`` itself when it already conforms)."""
        if "error" in data and not data.get("choices"):
            return raw if raw is not None else orjson.dumps(data)
        changed = self._fix(data, self.state)
        if self.strict:
            return orjson.dumps(self._canonical(data))
        return raw if raw is not None and not changed else orjson.dumps(data)

    def unfinished(self) -> list[int]:
        """Choices seen that are still without a ``finish_reason``."""
        state = self.state
        return sorted(state.seen - state.finished)

    def closing(self) -> list[dict[str, Any]]:
        """The finish chunks of the choices still unfinished (see the module docstring)."""
        state, fb = self.state, self.state.fb
        chunks = []
        for index in self.unfinished():
            if self.chat and index in state.tools:
                reason = "tool_calls"
            else:
                reason = infer_finish(False, state.usage if self.n == 1 else None, fb)
                if reason == "stop":  # nothing says the choice ended: treated as cut, never invented
                    continue
            if self.chat:
                choice = {"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}
            else:
                choice = {"text": "", "index": index, "logprobs": None, "finish_reason": reason}
            chunks.append({
                "id": state.id or fb.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": state.created or fb.created, "model": state.model or fb.model,
                "choices": [choice],
            })
            state.finished.add(index)
        return chunks


class ConformingStream:
    """A `ChunkStream` of ``chunks`` made to conform by ``conformer``. ``done``, when given,
    tells at the end whether the upstream closed the stream with ``data: [DONE]``; without it
    no finish chunk is ever added."""

    def __init__(self, chunks: ChunkStream, conformer: StreamConformer,
                 done: Callable[[], bool] | None = None) -> None:
        self.chunks = chunks
        self.conformer = conformer
        self.done = done
        self._iterator: Any = None
        self._queue: deque[Chunk] = deque()
        self._held: Chunk | None = None
        self._ended = False

    def __aiter__(self) -> ConformingStream:
        return self

    async def __anext__(self) -> Chunk:
        if self._queue:
            return self._queue.popleft()
        if self._ended:
            raise StopAsyncIteration
        if self._iterator is None:
            self._iterator = self.chunks.__aiter__()
        conformer = self.conformer
        while True:
            try:
                chunk = await self._iterator.__anext__()
            except StopAsyncIteration:
                self._ended = True
                self._queue.extend(self._tail())
                if self._queue:
                    return self._queue.popleft()
                raise
            data = chunk.data
            changed = conformer.conform(data)
            if conformer.strict and "error" not in data:
                chunk.data = data = conformer._canonical(data)
                chunk.raw = orjson.dumps(data)
            elif changed or chunk.raw is None:
                chunk.raw = orjson.dumps(data)
            if not data.get("choices") and data.get("usage") and "error" not in data and conformer.unfinished():
                # the usage chunk goes after the finish chunks the stream may still need
                previous, self._held = self._held, chunk
                if previous is None:
                    continue
                return previous
            if self._held is not None:  # more came after the usage chunk: keep the upstream's order
                self._queue.append(chunk)
                chunk, self._held = self._held, None
            result: Chunk = chunk
            return result

    def _tail(self) -> Iterator[Chunk]:
        tail = []
        if self.done is not None and self.done():
            tail = [Chunk(data, orjson.dumps(data), True) for data in self.conformer.closing()]
        if self._held is not None:
            tail.append(self._held)
            self._held = None
        if tail:
            tail[-1].more = False
        return iter(tail)

    async def aclose(self) -> None:
        await self.chunks.aclose()
