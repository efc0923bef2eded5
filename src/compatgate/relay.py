"""Relaying a chunk stream to the client as server-sent events.

Each chunk is written as it arrives (no buffering, so time to first token is kept and memory
per stream is bounded). The relay watches for the client going away and cancels the upstream
at once. It learns the usage from the usage chunk (stripped when the client did not ask for it),
or estimates it, flagged as such, from what was relayed when the stream ended without one; it
checks that every choice got a ``finish_reason``: a stream that ends without one, breaks,
or carries an error gets an OpenAI-format error event and no ``[DONE]``, so it never looks like
a complete answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.types import Receive, Scope, Send

from .exceptions import GatewayError, UpstreamError, UpstreamStreamError
from .provider import Chunk, ChunkStream
from .sse import encode_event
from .usage import Outcome, Usage, estimate_prompt_tokens, estimate_tokens

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["StreamRelay"]

logger = logging.getLogger("compatgate")

Finish = Callable[[Outcome, Usage | None, GatewayError | None], Awaitable[None]]

_DONE = b"data: [DONE]\n\n"


class StreamRelay:
    """An ASGI response streaming ``chunks``; ``finish`` is awaited exactly once at the end."""

    def __init__(
        self,
        ctx: RequestContext,
        chunks: ChunkStream,
        headers: Sequence[tuple[bytes, bytes]],
        finish: Finish,
    ) -> None:
        self.ctx = ctx
        self.chunks = chunks
        self.headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *headers,
        ]
        self.finish = finish
        self.usage: Usage | None = None
        self.generated = 0  # characters of generated text relayed, for an estimate
        self.finish_reasons: list[str] = []  # one per finished choice, as they came
        self.response_model: str | None = None  # the first chunk's model and id
        self.response_id: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome: Outcome = "aborted"
        error: GatewayError | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_watch_disconnect, receive, group.cancel_scope)
                try:
                    await send({"type": "http.response.start", "status": 200, "headers": self.headers})
                    error = await self._relay(send)
                    outcome = "ok" if error is None else "error"
                except OSError:  # the client went away while we were writing
                    pass
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.chunks.aclose()
                except Exception:  # closing a broken upstream may fail too; nothing to tell
                    logger.debug("compatgate: closing the upstream stream failed", exc_info=True)
                await self.finish(outcome, self.usage or self._estimate(), error)

    async def _relay(self, send: Send) -> GatewayError | None:
        """Relay every chunk; the error that ended the stream, or None when it completed."""
        ctx = self.ctx
        transform = ctx.gateway.hooks.implemented("transform_stream_chunk")
        expected = ctx.body.get("n") or 1
        finished: set[Any] = set()
        pending: list[bytes] = []  # events of one network read not yet written
        try:
            async for chunk in self.chunks:
                data = chunk.data
                if "error" in data and not data.get("choices"):
                    raise _stream_error(data["error"])
                usage = data.get("usage")
                choices = data.get("choices")
                if usage:
                    self.usage = Usage.from_openai(usage)
                if choices:
                    if self.response_model is None:
                        self.response_model = _text(data.get("model"))
                        self.response_id = _text(data.get("id"))
                    for choice in choices:
                        reason = choice.get("finish_reason")
                        if reason:
                            finished.add(choice.get("index", 0))
                            self.finish_reasons.append(str(reason))
                        self.generated += _generated(choice.get("delta") or choice)
                if choices or not usage or ctx.include_usage:  # all but a usage chunk not asked for
                    self._append(pending, await self._payload(chunk, data, transform))
                if chunk.more or not pending:  # more of the same network read follows: write together
                    continue
                body = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if len(finished) < expected:
                raise UpstreamStreamError(
                    "The upstream stream ended before the response was complete "
                    "(no finish_reason); the answer is truncated."
                )
        except GatewayError as exc:
            await send({"type": "http.response.body", "body": _end(pending, encode_event(exc.to_json())), "more_body": False})
            return exc
        except Exception as exc:  # a provider bug: still end the stream as an error
            logger.exception("compatgate: stream of request %s failed", ctx.request_id)
            failure = UpstreamStreamError(f"The stream failed inside the gateway ({type(exc).__name__}).")
            await send({"type": "http.response.body", "body": _end(pending, encode_event(failure.to_json())), "more_body": False})
            return failure
        await send({"type": "http.response.body", "body": _end(pending, _DONE), "more_body": False})
        return None


    async def _payload(self, chunk: Chunk, data: dict[str, Any], transform: bool) -> bytes:
        """The bytes of one chunk: the upstream's own, unless a hook changes the chunk."""
        if transform:
            ctx = self.ctx
            return orjson.dumps(await ctx.gateway.hooks.chain("transform_stream_chunk", "chunk", data, ctx=ctx))
        return chunk.raw if chunk.raw is not None else orjson.dumps(data)

    def _append(self, pending: list[bytes], payload: bytes) -> None:
        if self.ctx.first_token_at is None:
            self.ctx.first_token_at = time.perf_counter()
        pending.append(b"data: " + payload + b"\n\n")

    def _estimate(self) -> Usage:
        """The usage of a stream whose upstream never said it: estimated from the request and
        the text relayed so far (see `estimate_tokens`)."""
        prompt = estimate_prompt_tokens(self.ctx.body)
        completion = estimate_tokens(self.generated)
        return Usage(prompt, completion, prompt + completion, estimated=True)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _end(pending: list[bytes], last: bytes) -> bytes:
    """The final write: events still pending (a stream that ended mid-read), then ``last``."""
    return b"".join(pending) + last if pending else last


def _generated(delta: dict[str, Any]) -> int:
    """Characters of generated text in one choice delta (or legacy completion choice)."""
    size = 0
    for key in ("content", "text", "reasoning_content", "refusal"):
        value = delta.get(key)
        if isinstance(value, str):
            size += len(value)
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            size += len(function.get("arguments") or "") + len(function.get("name") or "")
    return size


def _stream_error(error: Any) -> UpstreamError:
    if isinstance(error, dict):
        message = error.get("message") if isinstance(error.get("message"), str) else "Upstream stream error."
        code = error.get("code")
        return UpstreamStreamError(
            message,
            type=error.get("type") if isinstance(error.get("type"), str) else None,
            code=str(code) if code is not None else None,
            param=error.get("param") if isinstance(error.get("param"), str) else None,
        )
    return UpstreamStreamError(str(error))


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
