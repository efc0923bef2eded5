"""Server-sent events: an incremental decoder for upstream streams, and the encoder we send.

The decoder follows the text/event-stream rules that matter for LLM APIs: ``\\n``, ``\\r\\n``
and ``\\r`` line ends, several ``data:`` lines joined by ``\\n``, ``event:`` names, comments
(``:``) and unknown fields ignored. Its buffer is bounded: one event larger than
``max_event_bytes`` is an error, so memory per stream stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEError", "ServerSentEvent", "encode_event"]


class SSEError(ValueError):
    """The byte stream is not a valid event stream (or an event is too large)."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: bytes
    event: str | None = None


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete."""

    def __init__(self, max_event_bytes: int = 8 * 1024 * 1024) -> None:
        self._buffer = b""
        self._max = max_event_bytes

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished event are buffered (at EOF: a truncated stream)."""
        return bool(self._buffer.strip(b"\r\n"))

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # A lone trailing \r may be the first half of \r\n: keep it for the next chunk.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buffer = buffer[:-1] + b"\r"
        *blocks, rest = buffer.split(b"\n\n")
        if len(rest) > self._max:
            raise SSEError(f"an event exceeds {self._max} bytes")
        self._buffer = rest
        events = []
        for block in blocks:
            event = _parse(block)
            if event is not None:
                events.append(event)
        return events


def _parse(block: bytes) -> ServerSentEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the common case, one data line
        return ServerSentEvent(block[6:])
    data: list[bytes] = []
    name: str | None = None
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return ServerSentEvent(b"\n".join(data), name)


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One event as bytes on the wire (``data`` must not contain newlines; JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
