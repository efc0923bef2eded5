"""Per-provider timeouts beyond the transport's: the first token and the whole call.

``connect_timeout`` and ``read_timeout`` (the longest silence of the upstream: before its
response headers, and between two pieces of a stream — the idle gap) are enforced by the HTTP
transport. `call_provider` adds, for any provider type, ``first_token_timeout`` (from the
start of the call to the first chunk of a stream, or to the whole answer of a non-streamed
request) and ``total_timeout`` (to the end of the answer or of the stream). A timeout before
the answer is an `UpstreamTimeoutError` (504); inside a stream it ends the stream with an error
the relay turns into an OpenAI-format error event.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .exceptions import UpstreamError, UpstreamStreamError, UpstreamTimeoutError
from .provider import Provider
from .replies import ChunkStream, RawReply, Reply
from .usage import Attempt

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["call_provider"]

T = TypeVar("T")


async def call_provider(
    provider: Provider, ctx: RequestContext, method: str, body: dict[str, Any]
) -> Reply | ChunkStream | RawReply:
    """``provider.<method>(ctx, body)`` (``method``: an operation's method, e.g.
    ``"chat_completions"``) under the provider's ``first_token_timeout`` and ``total_timeout``;
    a stream of chunks or of bytes is watched to its end.

    A call that times out before any upstream call was recorded in ``ctx.attempts`` is
    recorded there with status 504."""
    call: Callable[[RequestContext, dict[str, Any]], Awaitable[Reply | ChunkStream | RawReply]] = getattr(provider, method)
    config = provider.config
    first, total = config.first_token_timeout, config.total_timeout
    if first is None and total is None:
        return await call(ctx, body)
    timer = _Timer(provider, ctx, body, first, total)
    try:
        with anyio.fail_after(timer.first_deadline - anyio.current_time()):
            result = await call(ctx, body)
    except TimeoutError:
        raise timer.expired(timer.first_deadline, UpstreamTimeoutError) from None
    if isinstance(result, Reply):
        return result
    if isinstance(result, RawReply):
        result.chunks = timer.watch(result.chunks)
        return result
    return timer.watch(result)


class _Timer:
    """The deadlines of one provider call, and the errors they raise."""

    def __init__(
        self,
        provider: Provider,
        ctx: RequestContext,
        body: dict[str, Any],
        first: float | None,
        total: float | None,
    ) -> None:
        now = anyio.current_time()
        self.provider, self.ctx, self.body = provider, ctx, body
        self.total = total
        self.end = now + total if total is not None else math.inf
        self.first_deadline = min(now + first, self.end) if first is not None else self.end
        self.first = first
        self.since = len(ctx.attempts)
        self.started = time.perf_counter()

    def expired(self, deadline: float, kind: type[UpstreamError]) -> UpstreamError:
        """The error for ``deadline`` having passed, recorded as an attempt if none was."""
        name = self.provider.name
        if deadline == self.end and self.total is not None:
            limit = f"did not finish within {self.total:g} s (total_timeout)"
        else:
            limit = f"sent no first token within {self.first:g} s (first_token_timeout)"
        message = f"The upstream provider {name!r} {limit}."
        error = kind(message, status_code=504, type="timeout_error")
        if len(self.ctx.attempts) == self.since:
            model = self.body.get("model")
            elapsed = (time.perf_counter() - self.started) * 1000.0
            self.ctx.attempts.append(
                Attempt(name, model if isinstance(model, str) else None, 504, message, elapsed)
            )
        return error

    async def watch(self, stream: AsyncIterator[T] | ChunkStream) -> AsyncGenerator[T, None]:
        """``stream`` (chunks, or bytes), failing when its first piece or its end comes too
        late; closes it."""
        chunks: AsyncIterator[T] = stream.__aiter__()  # type: ignore[assignment]
        deadline = self.first_deadline
        kind: type[UpstreamError] = UpstreamTimeoutError
        try:
            while True:
                try:
                    with anyio.fail_after(max(deadline - anyio.current_time(), 0.0)):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise self.expired(deadline, kind) from None
                deadline, kind = self.end, UpstreamStreamError
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()
