"""Relaying a `RawReply` (audio, text formats, a Responses event stream) to the client.

A `StreamRelay` whose pieces are bytes relayed as they come, with the upstream's media type:
the same disconnect watching, cancellation and single `finish` call, without the chat chunk
checks. The usage is what the reply learnt by its end (None when it never said).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.types import Send

from .exceptions import GatewayError, UpstreamStreamError
from .provider import RawReply
from .relay import Finish, StreamRelay
from .usage import Usage

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["ByteRelay"]

logger = logging.getLogger("compatgate")


class ByteRelay(StreamRelay):
    """An ASGI response streaming the bytes of ``reply``; ``finish`` is awaited once at the end."""

    def __init__(
        self,
        ctx: RequestContext,
        reply: RawReply,
        headers: Sequence[tuple[bytes, bytes]],
        finish: Finish,
    ) -> None:
        super().__init__(ctx, reply.chunks, headers, finish)  # type: ignore[arg-type]
        self.reply = reply
        self.headers[0] = (b"content-type", reply.media_type.encode("latin-1"))

    async def _relay(self, send: Send) -> GatewayError | None:
        try:
            async for data in self.reply.chunks:
                if self.ctx.first_token_at is None:
                    self.ctx.first_token_at = time.perf_counter()
                await send({"type": "http.response.body", "body": data, "more_body": True})
        except GatewayError as exc:  # nothing more can be said once the bytes have started
            error: GatewayError | None = exc
        except OSError:
            raise
        except Exception as exc:  # a provider bug: end the body, record the error
            logger.exception("compatgate: stream of request %s failed", self.ctx.request_id)
            error = UpstreamStreamError(f"The stream failed inside the gateway ({type(exc).__name__}).")
        else:
            error = None
        self.usage = self.reply.usage
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return error

    def _estimate(self) -> Usage | None:  # type: ignore[override]
        return self.reply.usage
