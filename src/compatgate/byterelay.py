"""Relaying a `RawReply` (audio, text formats, a protocol's own event stream) to the client.

A `Relay` whose pieces are bytes relayed as they come, with the upstream's media type: the same
disconnect watching, keep-alive, cancellation and single ``finish`` call as every relay, without
the chunk checks; text (an event stream, JSON, text formats) is scrubbed of upstream secrets,
audio is not touched. The usage is what the reply learnt by its end; when the client left before,
it is estimated from the request and the characters the reply says it relayed
(``RawReply.generated``). The total timeout (`compatgate.timeouts`) watches these bytes too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.types import Send

from .exceptions import GatewayError, UpstreamStreamError
from .relay import Finish, Relay
from .replies import RawReply, Result
from .usage import Usage, estimate_tokens

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["ByteRelay"]

logger = logging.getLogger("compatgate")

_SSE = "text/event-stream"
_TEXT = ("text/", "application/json")


class ByteRelay(Relay):
    """An ASGI response streaming the bytes of ``reply``; ``finish`` is awaited once at the end.
    A keep-alive is the reply's own (``RawReply.keepalive``), else a comment written only into
    an event stream, between two events."""

    def __init__(
        self,
        ctx: RequestContext,
        reply: RawReply,
        headers: Sequence[tuple[bytes, bytes]],
        finish: Finish,
        *,
        started: bool = False,
    ) -> None:
        self.media_type = reply.media_type
        super().__init__(ctx, headers, finish, started=started)
        self.reply = reply
        self._events = reply.media_type.startswith(_SSE)
        # Text may carry an upstream's words (an error event): scrubbed of secrets like any error.
        self._text = self._events or reply.media_type.startswith(_TEXT)
        self._between = True  # the last bytes written ended an event
        self.completed = False

    @property
    def can_keepalive(self) -> bool:  # type: ignore[override]
        return self.reply.keepalive is not None or (self._events and self._between)

    def keepalive(self) -> bytes:
        return self.reply.keepalive if self.reply.keepalive is not None else super().keepalive()

    async def relay(self, send: Send) -> GatewayError | None:
        error: GatewayError | None = None
        try:
            scrubber = self.ctx.gateway.scrubber if self._text else None
            held = b""  # the end of the last read, when it could be the start of a secret
            async for data in self.reply.chunks:
                if self.ctx.first_token_at is None:
                    self.ctx.first_token_at = time.perf_counter()
                if scrubber is not None:
                    data = scrubber.bytes(held + data if held else data)
                    keep = scrubber.held(data)
                    data, held = (data[:-keep], data[-keep:]) if keep else (data, b"")
                    if not data:
                        continue
                await self.write(send, data)
            if held:
                await self.write(send, held)
                self._between = data.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
        except GatewayError as exc:  # nothing more can be said once the bytes have started
            error = self.ctx.gateway.scrubbed(exc)
        except OSError:
            raise
        except Exception as exc:  # a provider bug: end the body, record the error
            logger.exception("compatgate: stream of request %s failed", self.ctx.request_id)
            error = UpstreamStreamError(f"The stream failed inside the gateway ({type(exc).__name__}).")
        self.completed = error is None
        await self.write(send, b"", more=False)
        return error

    async def close(self) -> None:
        close = getattr(self.reply.chunks, "aclose", None)
        if close is not None:
            await close()

    def result(self) -> Result:
        usage = self.reply.usage
        if self.completed or self.ctx.units is None:
            return Result(usage)
        # Cut short: what the stream said so far, or the estimate of what was relayed if larger.
        known = usage or Usage()
        prompt = known.prompt_tokens or self.ctx.units.prompt_tokens
        completion = max(known.completion_tokens, estimate_tokens(self.reply.generated))
        if (prompt, completion) != (known.prompt_tokens, known.completion_tokens):
            usage = Usage(prompt, completion, prompt + completion, known.cached_tokens, known.reasoning_tokens,
                          known.cache_write_tokens, estimated=True)
        return Result(usage)
