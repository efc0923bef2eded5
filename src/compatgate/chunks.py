"""OpenAI-format event streams read as chunks: `OpenAIChunks` (the `ChunkStream` of an
upstream's ``data: {...}`` events up to ``data: [DONE]``) and `decode_event` (one event's JSON
object, or the `UpstreamStreamError` of an event that is not one)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from .exceptions import UpstreamStreamError
from .replies import Chunk
from .sse import ServerSentEvent

__all__ = ["OpenAIChunks", "decode_event"]


class OpenAIChunks:
    """The `ChunkStream` of an OpenAI-format event stream: its chunks up to ``data: [DONE]``;
    ``done`` says whether that end marker came (a stream that stops without it was cut)."""

    def __init__(self, batches: AsyncGenerator[list[ServerSentEvent], None]) -> None:
        self.done = False
        self._chunks = self._read(batches)

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._chunks

    async def aclose(self) -> None:
        await self._chunks.aclose()

    async def _read(self, batches: AsyncGenerator[list[ServerSentEvent], None]) -> AsyncGenerator[Chunk, None]:
        async with aclosing(batches) as events:
            async for batch in events:
                last = len(batch) - 1
                for index, event in enumerate(batch):
                    if event.data == b"[DONE]":
                        self.done = True
                        return
                    more = index < last and batch[index + 1].data != b"[DONE]"
                    yield Chunk(decode_event(event), event.data, more)


def decode_event(event: ServerSentEvent) -> dict[str, Any]:
    """The JSON object an upstream event carries; `UpstreamStreamError` when it is not one."""
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise UpstreamStreamError("The upstream sent an event that is not valid JSON.") from None
    if not isinstance(data, dict):
        raise UpstreamStreamError("The upstream sent an event that is not a JSON object.")
    return data
