"""A miss: the answer passes to the client as it comes and is kept only when it finished cleanly.

A stream is recorded while it is relayed — each chunk is handed on as soon as it arrives, a
copy of its bytes kept — and kept only when it reached its end with every choice finished and
nothing unfit (`ChunkCheck`; for ``/responses`` events, a final ``response.completed``). A
stream that breaks, times out, carries an error or is closed early (the client left) is never
kept. A recording that grows past ``limit`` bytes stops keeping bytes (it is not stored), so a
stream never holds more than that in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson

from compatgate import Chunk, ChunkStream, RawReply

from .answers import ChunkCheck
from .entry import Entry
from .events import completed_response

__all__ = ["exact", "record_bytes", "record_chunks"]

Keep = Callable[[Entry], None]


def exact(encoded: bytes) -> bytes:
    """orjson's output as bytes of their own size: orjson's buffer holds at least 4 KiB, which a
    kept entry would otherwise hold on to (a converted stream's chunks have no upstream bytes)."""
    return bytes(memoryview(encoded))


async def record_chunks(stream: ChunkStream, check: ChunkCheck, limit: int, keep: Keep) -> AsyncIterator[Chunk]:
    """``stream``, chunk by chunk; ``keep(entry)`` once it ended cleanly. Closing this closes
    ``stream`` (the upstream request is cancelled)."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            data = chunk.data
            check.see(data)
            if size <= limit:
                raw = chunk.raw if chunk.raw is not None else exact(orjson.dumps(data))
                size += len(raw)
                if size > limit:  # too large to keep: hold nothing more
                    parts.clear()
                else:
                    parts.append(raw)
            yield chunk
        if size <= limit and check.complete:  # reached only when the stream ended by itself
            keep(Entry("chunks", tuple(parts)))
    finally:
        await stream.aclose()


def record_bytes(reply: RawReply, protocol: str, tool_calls: bool, limit: int, keep: Keep) -> RawReply:
    """``reply`` with its bytes recorded as they pass; ``keep(entry)`` once the stream ended
    with ``response.completed``. The reply's own ``usage`` (set by its stream) is kept too."""
    chunks = reply.chunks

    async def recorded() -> AsyncIterator[bytes]:
        parts: list[bytes] = []
        size = 0
        try:
            async for data in chunks:
                if size <= limit:
                    size += len(data)
                    if size > limit:
                        parts.clear()
                    else:
                        parts.append(data)
                yield data
            if size <= limit:
                stream = b"".join(parts)
                if completed_response(stream, tool_calls) is not None:
                    keep(Entry("events", (stream,), reply.media_type, reply.usage, protocol))
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    reply.chunks = recorded()
    return reply
