"""Streams a router hands over: a chunk stream whose first chunk was read ahead (`PeekedStream`,
so that a stream failing before it can still be retried) and a byte stream watched to its end
(`watch`), each telling the router when it ended or broke."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

import anyio

from compatgate import Chunk, ChunkStream, GatewayError, UpstreamStreamError, stream_error

__all__ = ["PeekedStream", "WatchedBytes", "peek"]

Done = Callable[[], None]
Broke = Callable[[GatewayError], Awaitable[None]]
T = TypeVar("T")


async def peek(stream: ChunkStream) -> tuple[Chunk, AsyncIterator[Chunk]]:
    """Read the stream's first chunk; a stream that fails before it is closed and its failure
    raised (an empty stream or a first event that is an error included)."""
    chunks = stream.__aiter__()
    try:
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise UpstreamStreamError("The upstream stream ended before its first chunk.") from None
        data = first.data
        if "error" in data and not data.get("choices"):
            raise stream_error(data["error"])
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise
    return first, chunks


class _Watched(Generic[T]):
    """What both watched streams share: ``done`` runs once when the stream ends or is closed
    (or is dropped without being relayed), ``broke`` when it fails."""

    def __init__(self, items: AsyncIterator[T], done: Done, broke: Broke) -> None:
        self._items = items
        self._done: Done | None = done
        self._broke = broke

    async def _next(self) -> T:
        try:
            return await self._items.__anext__()
        except StopAsyncIteration:
            self._release()
            raise
        except GatewayError as exc:
            self._release()
            await self._broke(exc)
            raise

    def _release(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def __del__(self) -> None:  # a stream the gateway never relayed (a failing hook)
        self._release()


class PeekedStream(_Watched[Chunk]):
    """A stream whose first chunk was read ahead: that chunk, then the rest as it comes.
    ``done`` runs once when it ends or is closed; ``broke`` when it fails after the handover."""

    def __init__(self, first: Chunk, chunks: AsyncIterator[Chunk], stream: ChunkStream, done: Done,
                 broke: Broke) -> None:
        super().__init__(chunks, done, broke)
        self._first: Chunk | None = first
        self._stream = stream

    def __aiter__(self) -> PeekedStream:
        return self

    async def __anext__(self) -> Chunk:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return await self._next()

    async def aclose(self) -> None:
        self._release()
        await self._stream.aclose()


class WatchedBytes(_Watched[bytes]):
    """The bytes of a `RawReply` as they come; ``done`` runs once when they end or are closed,
    ``broke`` when they fail. Closing it closes the upstream's bytes."""

    def __aiter__(self) -> WatchedBytes:
        return self

    async def __anext__(self) -> bytes:
        return await self._next()

    async def aclose(self) -> None:
        self._release()
        close = getattr(self._items, "aclose", None)
        if close is not None:
            await close()
