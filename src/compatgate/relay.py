"""Relaying a streamed answer to the client: the `Relay` family.

`Relay` is what every streamed answer shares: an ASGI response that watches for the client
going away (and then cancels the upstream at once), writes a keep-alive while the upstream is
silent (``[gateway] keepalive_seconds``, beaten by the gateway's `Heartbeat`), closes the
upstream, and reports how it ended to its ``finish`` callback exactly once. Its two kinds:

- `ChunkRelay` relays a `ChunkStream` of Chat Completions chunks through an `Encoder`: the
  client's protocol (the upstream's own bytes for OpenAI clients, see `OpenAIEncoder`). It
  learns the usage from the usage chunk, or estimates it, flagged as such, from what was
  relayed; and checks that every choice got a ``finish_reason``: a stream that ends without
  one, breaks, or carries an error gets the encoder's error event instead of an ending, so it
  never looks like a complete answer.
- `ByteRelay` (in `compatgate.byterelay`) relays a `RawReply`'s bytes as they come.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.types import Receive, Scope, Send

from .exceptions import GatewayError, UpstreamStreamError
from .replies import Answer, Chunk, ChunkStream, Result
from .sse import encode_event
from .usage import Outcome, Usage, estimate_prompt_tokens, estimate_tokens
from .watch import ClientWatch

if TYPE_CHECKING:
    from .context import RequestContext
    from .operations import Encoder

__all__ = ["ChunkRelay", "Finish", "OpenAIEncoder", "Relay", "stream_error"]

logger = logging.getLogger("compatgate")

Finish = Callable[[Outcome, Result, GatewayError | None], Awaitable[None]]

_DONE = b"data: [DONE]\n\n"
_KEEPALIVE = b": keep-alive\n\n"


class Relay:
    """An ASGI response streaming an answer; ``finish`` is awaited exactly once at the end."""

    media_type = "text/event-stream; charset=utf-8"
    #: Whether the keep-alive may be written now (between two events, not inside one).
    can_keepalive = True

    def __init__(self, ctx: RequestContext, headers: Sequence[tuple[bytes, bytes]], finish: Finish,
                 *, started: bool = False) -> None:
        self.ctx = ctx
        self.started = started  # the status and headers were sent already (see `EarlyStart`)
        self.headers = [
            (b"content-type", self.media_type.encode("latin-1")),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *headers,
        ]
        self.finish = finish
        self.written = 0.0  # when the last bytes went out (anyio's clock)
        self.busy = False  # a write is under way
        self._send: Send | None = None
        self._beating: anyio.Event | None = None  # set when a keep-alive under way is written

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome: Outcome = "aborted"
        error: GatewayError | None = None
        try:
            async with ClientWatch(receive):  # the client leaving cancels the relay (and the upstream)
                heartbeat = self.ctx.gateway.heartbeat
                try:
                    if not self.started:
                        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
                    self.written = anyio.current_time()
                    if heartbeat is not None:
                        self._send = send
                        heartbeat.add(self)
                    error = await self.relay(send)
                    outcome = "ok" if error is None else "error"
                except OSError:  # the client went away while we were writing
                    pass
        finally:
            if self.ctx.gateway.heartbeat is not None:
                self.ctx.gateway.heartbeat.discard(self)
            with anyio.CancelScope(shield=True):
                try:
                    await self.close()
                except Exception:  # closing a broken upstream may fail too; nothing to tell
                    logger.debug("compatgate: closing the upstream stream failed", exc_info=True)
                await self.finish(outcome, self.result(), error)

    async def write(self, send: Send, body: bytes, more: bool = True) -> None:
        """Send ``body`` (one or more whole events), never interleaved with a keep-alive."""
        while self._beating is not None:
            await self._beating.wait()
        self.busy = True
        try:
            await send({"type": "http.response.body", "body": body, "more_body": more})
        finally:
            self.busy = False
        self.written = anyio.current_time()

    async def beat(self) -> None:
        """Write the keep-alive, unless a write is under way (the `Heartbeat` calls this)."""
        if self.busy or self._beating is not None or self._send is None:
            return
        self._beating = anyio.Event()
        try:
            await self._send({"type": "http.response.body", "body": self.keepalive(), "more_body": True})
            self.written = anyio.current_time()
        except OSError:  # the client went away: the relay finds out by itself
            pass
        finally:
            beating, self._beating = self._beating, None
            beating.set()

    def keepalive(self) -> bytes:
        return _KEEPALIVE

    async def relay(self, send: Send) -> GatewayError | None:
        """Relay the answer; the error that ended it, or None when it completed."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the upstream (shielded; also when the client left)."""

    def result(self) -> Result:
        """What the relay learnt, for ``finish``."""
        raise NotImplementedError


class ChunkRelay(Relay):
    """Relays Chat Completions chunks through ``encoder`` (see the module docstring)."""

    def __init__(
        self,
        ctx: RequestContext,
        chunks: ChunkStream,
        encoder: Encoder,
        headers: Sequence[tuple[bytes, bytes]],
        finish: Finish,
        *,
        started: bool = False,
    ) -> None:
        self.media_type = encoder.media_type
        super().__init__(ctx, headers, finish, started=started)
        self.chunks = chunks
        self.encoder = encoder
        self.usage: Usage | None = None
        self.generated = 0  # characters of generated text relayed, for an estimate
        self.finish_reasons: list[str] = []  # one per finished choice, as they came
        self.response_model: str | None = None  # the first chunk's model and id
        self.response_id: str | None = None

    def keepalive(self) -> bytes:
        return self.encoder.keepalive()

    async def relay(self, send: Send) -> GatewayError | None:
        ctx, encoder = self.ctx, self.encoder
        hooks = ctx.gateway.hooks
        transform = hooks.implemented("transform_stream_chunk")
        expected = ctx.sent.get("n") or 1
        finished: set[Any] = set()
        pending: list[bytes] = []  # events of one network read not yet written
        try:
            opening = encoder.start()
            if opening:  # the protocol's opening event, however long the first chunk takes
                await self.write(send, opening)
            async for chunk in self.chunks:
                data = chunk.data
                if "error" in data and not data.get("choices"):
                    raise stream_error(data["error"])
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
                if transform and (choices or not usage or ctx.include_usage):
                    data = await hooks.transform_stream_chunk(ctx=ctx, chunk=data)
                    chunk = Chunk(data, None, chunk.more)
                payload = encoder.feed(chunk)
                if payload:
                    if ctx.first_token_at is None:
                        ctx.first_token_at = time.perf_counter()
                    pending.append(payload)
                if chunk.more or not pending:  # more of the same network read follows: write together
                    continue
                body = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                await self.write(send, body)
            if len(finished) < expected:
                raise UpstreamStreamError(
                    "The upstream stream ended before the response was complete "
                    "(no finish_reason); the answer is truncated."
                )
            tail = encoder.finish()
            if not isinstance(tail, bytes):
                tail = await tail
        except GatewayError as exc:
            error = ctx.gateway.scrubbed(exc)
            await self.write(send, _end(pending, encoder.error(error)), more=False)
            return error
        except Exception as exc:  # a provider bug: still end the stream as an error
            logger.exception("compatgate: stream of request %s failed", ctx.request_id)
            failure = UpstreamStreamError(f"The stream failed inside the gateway ({type(exc).__name__}).")
            await self.write(send, _end(pending, encoder.error(failure)), more=False)
            return failure
        await self.write(send, _end(pending, tail), more=False)
        return None

    async def close(self) -> None:
        await self.chunks.aclose()

    def result(self) -> Result:
        answer = Answer(tuple(self.finish_reasons), self.response_model, self.response_id)
        return Result(self.usage or self._estimate(), answer)

    def _estimate(self) -> Usage:
        """The usage of a stream whose upstream never said it: estimated from the request sent
        and the text relayed so far (see `estimate_tokens`)."""
        prompt = self.ctx.units.prompt_tokens if self.ctx.units else estimate_prompt_tokens(self.ctx.sent)
        completion = estimate_tokens(self.generated)
        return Usage(prompt, completion, prompt + completion, estimated=True)


class OpenAIEncoder:
    """Chat Completions chunks for OpenAI clients: each chunk as the upstream's own bytes (or
    re-encoded when a hook changed it), the usage chunk only when the client asked for it, then
    ``data: [DONE]``; an error as an OpenAI error event with no ``[DONE]``."""

    media_type = "text/event-stream; charset=utf-8"

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def start(self) -> bytes:
        return b""

    def feed(self, chunk: Chunk) -> bytes:
        data = chunk.data
        if not self.include_usage and data.get("usage") and not data.get("choices"):
            return b""  # the usage chunk the gateway asked for on its own behalf
        raw = chunk.raw if chunk.raw is not None else orjson.dumps(data)
        return b"data: " + raw + b"\n\n"

    def finish(self) -> bytes:
        return _DONE

    def error(self, error: GatewayError) -> bytes:
        return encode_event(error.to_json())

    def keepalive(self) -> bytes:
        return _KEEPALIVE


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


def stream_error(error: Any) -> UpstreamStreamError:
    """The `UpstreamStreamError` for an error an upstream sent inside a stream: OpenAI's
    ``{"error": {...}}`` event's object (its message, type, code and param kept), or a bare
    message. The relay and a router peeking at a stream's first chunk both read it so; the
    gateway scrubs it of secrets before it goes out."""
    if not isinstance(error, dict):
        return UpstreamStreamError(str(error) or _STREAM_FAILED)
    message, kind, code, param = error.get("message"), error.get("type"), error.get("code"), error.get("param")
    return UpstreamStreamError(
        message if isinstance(message, str) and message else _STREAM_FAILED,
        type=kind if isinstance(kind, str) else None,
        code=str(code) if code is not None else None,
        param=param if isinstance(param, str) else None,
    )


_STREAM_FAILED = "The upstream stream failed."
