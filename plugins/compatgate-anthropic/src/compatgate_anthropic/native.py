"""The native path: an Anthropic Messages request relayed to an ``anthropic`` upstream.

The upstream's bytes reach the client as they come, cut only at event boundaries, so that
what the client holds is always whole events. Meanwhile the events are read for billing:
`EventMeter` keeps the usage (``message_start``, then the cumulative counts of
``message_delta``) and the characters generated (text, thinking, tool input JSON). The
gateway adds bytes in two cases only: a blank line after a last event the upstream left
unterminated (so that the client's parser dispatches it), and an Anthropic ``error`` event
when the stream breaks (reset, invalid data, or an end before ``message_stop``), after which
the relay raises the error so that the request is recorded as failed. An ``error`` event the
upstream sent itself is relayed as it is, then raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from compatgate import GatewayError, ServerSentEvent, SSEDecoder, UpstreamStreamError, Usage
from compatgate.http import stream_errors
from compatgate.provider import RawReply
from compatgate.sse import SSEError

from .errors import stream_error
from .inbound.errors import error_event
from .inbound.reply import message_usage

__all__ = ["EventMeter", "relay"]

MEDIA_TYPE = "text/event-stream; charset=utf-8"
_SEPARATORS = (b"\n\n", b"\r\n\r\n", b"\r\r")
_READ = {"message_start", "content_block_delta", "message_delta", "message_stop", "error"}


class EventMeter:
    """Reads a relayed Anthropic stream's events: ``usage`` (a gateway `Usage`, None until
    ``message_start``), ``generated`` characters, ``done`` at ``message_stop``, and ``failure``
    when the upstream reported an error (``reported``: in an ``error`` event of its own, which
    the client got) or sent an event that is not a JSON object."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] = {}
        self.generated = 0
        self.done = False
        self.failure: GatewayError | None = None
        self.reported = False

    @property
    def usage(self) -> Usage | None:
        return message_usage({"usage": self.counts}) if self.counts else None

    def feed(self, event: ServerSentEvent) -> None:
        name = event.event
        if name is not None and name not in _READ or not event.data.strip():
            return
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            self.failure = UpstreamStreamError("The upstream sent an event that is not a JSON object.")
            return
        kind = data.get("type", name)
        if kind == "error" or name == "error":
            self.failure, self.reported = stream_error(data), True
        elif kind == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                for key in ("text", "thinking", "partial_json"):
                    value = delta.get(key)
                    if isinstance(value, str):
                        self.generated += len(value)
        elif kind == "message_start":
            message = data.get("message")
            self._count(message.get("usage") if isinstance(message, dict) else None)
        elif kind == "message_delta":
            self._count(data.get("usage"))
        elif kind == "message_stop":
            self.done = True

    def _count(self, usage: Any) -> None:
        """Anthropic's counts are cumulative: a later value replaces an earlier one."""
        if isinstance(usage, dict):
            self.counts.update((key, value) for key, value in usage.items() if value is not None)


async def relay(response: httpx2.Response, reply: RawReply, provider: str) -> AsyncIterator[bytes]:
    """The bytes of ``response`` for the client, keeping ``reply.usage`` and
    ``reply.generated`` up to date; closing it closes the response."""
    meter = EventMeter()
    decoder = SSEDecoder()
    tail = b""
    failure: GatewayError | None = None
    try:
        with stream_errors(provider):
            async for data in response.aiter_bytes():
                _read(decoder, data, meter)
                reply.usage, reply.generated = meter.usage, meter.generated
                tail += data
                cut = max(tail.rfind(sep) + len(sep) if sep in tail else 0 for sep in _SEPARATORS)
                if cut:
                    piece, tail = tail[:cut], tail[cut:]
                    yield piece
                if meter.failure is not None:
                    break
        if meter.failure is None and tail.strip():
            completed = _read(decoder, b"\n\n", meter)  # a last event without its blank line
            if completed and meter.failure is None:
                yield tail + b"\n\n"
            elif not meter.reported:
                meter.failure = None  # an event cut short: reported below as a truncated stream
        reply.usage, reply.generated = meter.usage, meter.generated
    except GatewayError as exc:
        failure = exc
    finally:
        await response.aclose()
    failure = failure or meter.failure
    if failure is None and not meter.done:
        failure = UpstreamStreamError("The upstream stream ended before message_stop; the answer is truncated.")
    if failure is not None:
        if not meter.reported:
            yield error_event(failure)
        raise failure


def _read(decoder: SSEDecoder, data: bytes, meter: EventMeter) -> int:
    """Feed ``data`` to the decoder and its events to the meter; how many events it completed."""
    try:
        events = decoder.feed(data)
    except SSEError as exc:
        raise UpstreamStreamError(f"The upstream stream is invalid: {exc}") from None
    for event in events:
        meter.feed(event)
    return len(events)
