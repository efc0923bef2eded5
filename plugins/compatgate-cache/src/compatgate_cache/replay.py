"""A hit: the entry as the answer the gateway relays like any other.

A non-streamed request gets a `Reply` (the stored body as it came, or a ``chat.completion`` /
``text_completion`` / ``response`` assembled from a recorded stream); a streamed chat or
completions request gets a chunk stream (the recorded chunks, or chunks cut from a complete
answer) written in one go, usage chunk included, which the gateway strips when the client did
not ask for it; a streamed ``/responses`` request gets the recorded events or events built from
the stored response. The bytes are the stored ones: nothing is re-encoded that need not be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from compatgate import Chunk, ChunkStream, RawReply, Reply, Usage

from .answers import chunks_from_completion, completion_from_chunks
from .entry import Entry
from .events import completed_response, events_from_response

__all__ = ["EVENT_STREAM", "replay"]

EVENT_STREAM = "text/event-stream; charset=utf-8"


def replay(entry: Entry, stream: bool) -> Reply | ChunkStream | RawReply | None:
    """The answer ``entry`` gives a request (``stream``: it asked for a stream); None when the
    entry cannot serve it (it is then a miss)."""
    if entry.kind == "json":
        raw = entry.parts[0]
        data = orjson.loads(raw)
        if not stream:
            return Reply(data, raw)
        if data.get("object") == "response":
            usage = Usage.from_openai(data.get("usage"))
            return RawReply(_once(events_from_response(data)), EVENT_STREAM, usage)
        if data.get("object") in ("chat.completion", "text_completion"):
            chunks = [orjson.dumps(chunk) for chunk in chunks_from_completion(data)]
            return _chunks(chunks)
        return None
    if entry.kind == "chunks":
        if stream:
            return _chunks(entry.parts)
        data = completion_from_chunks(orjson.loads(part) for part in entry.parts)
        return Reply(data, orjson.dumps(data))
    if stream:
        return RawReply(_once(b"".join(entry.parts)), entry.media_type, entry.usage)
    response = completed_response(b"".join(entry.parts), tool_calls=True)
    return Reply(response, orjson.dumps(response)) if response is not None else None


async def _chunks(parts: tuple[bytes, ...] | list[bytes]) -> AsyncIterator[Chunk]:
    last = len(parts) - 1
    for index, raw in enumerate(parts):
        data: dict[str, Any] = orjson.loads(raw)
        yield Chunk(data, raw, index < last)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
