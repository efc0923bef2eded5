"""The native path: a Gemini client's request relayed to a Gemini upstream as it is.

`generate_content` answers with a `RawReply` in both cases, so that its ``usage`` (from
``usageMetadata``) and ``generated`` (characters of text generated, for an estimate when the
client aborts) are known the same way:

- not streamed: Gemini's JSON body, as Gemini encoded it;
- streamed: the upstream is always asked for ``?alt=sse``; each event is checked (valid JSON
  object, not an ``{"error": ...}``) and sent as ``data: {json}\\r\\n\\r\\n``, or, when the
  client asked for the JSON-array form (``sse: false``), as an element of that array. A stream
  that breaks, carries an error object or ends before every candidate has a ``finishReason``
  ends with Google's error object (the last event, or the last array element) and the
  iterator then raises the `GatewayError`, so the gateway records the failure: the error bytes
  are already written, nothing must be added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from compatgate import GatewayError, UpstreamStreamError, decode_event
from compatgate.provider import RawReply
from compatgate.sse import SSEDecoder, SSEError

from .errors import stream_error as gemini_stream_error
from .inbound.native import usage_of
from .inbound.stream import stream_error

if TYPE_CHECKING:
    import httpx2

    from compatgate import HTTPProvider

__all__ = ["json_reply", "relay_stream", "text_characters"]

JSON = "application/json; charset=UTF-8"
EVENT_STREAM = "text/event-stream"


def text_characters(data: Mapping[str, Any]) -> tuple[int, set[int], bool]:
    """``(characters generated, indexes of finished candidates, has candidates)`` of one response."""
    characters = 0
    finished: set[int] = set()
    candidates = data.get("candidates")
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        if not isinstance(candidate, Mapping):
            continue
        content = candidate.get("content")
        for part in (content.get("parts") if isinstance(content, Mapping) else None) or ():
            if isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    characters += len(part["text"])
                elif isinstance(part.get("functionCall"), Mapping):
                    characters += len(orjson.dumps(part["functionCall"].get("args") or {}))
        if candidate.get("finishReason") is not None:
            index = candidate.get("index")
            finished.add(index if isinstance(index, int) else position)
    return characters, finished, bool(candidates)


def json_reply(content: bytes, data: Mapping[str, Any]) -> RawReply:
    """A whole Gemini answer relayed as Gemini encoded it."""

    async def body() -> AsyncIterator[bytes]:
        yield content

    return RawReply(body(), JSON, usage_of(data), text_characters(data)[0])


def relay_stream(provider: HTTPProvider, response: httpx2.Response, *, sse: bool, candidates: int,
                 secrets: Iterable[str | None]) -> RawReply:
    """The events of a ``streamGenerateContent?alt=sse`` answer, checked and framed for the client."""
    # keep-alive: a blank line, nothing to an SSE parser and whitespace in a JSON array (the
    # google-genai SDK fails on an SSE comment); written between whole events or elements only
    reply = RawReply(_nothing(), EVENT_STREAM if sse else JSON, keepalive=b"\r\n")
    hidden = tuple(secrets)

    async def relay() -> AsyncIterator[bytes]:
        started = blocked = False
        finished: set[int] = set()
        decoder = SSEDecoder()
        try:
            async for data in provider.body_bytes(response):
                try:
                    events = decoder.feed(data)
                except SSEError as exc:
                    raise UpstreamStreamError(f"The upstream stream is invalid: {exc}") from None
                out: list[bytes] = []
                failure: GatewayError | None = None
                for event in events:
                    try:
                        value = decode_event(event)
                    except GatewayError as error:
                        failure = error
                        break
                    if "error" in value:
                        failure = gemini_stream_error(value["error"], hidden)
                        break
                    characters, done, _ = text_characters(value)
                    reply.generated += characters
                    finished |= done
                    feedback = value.get("promptFeedback")
                    blocked = blocked or (isinstance(feedback, Mapping) and feedback.get("blockReason") is not None)
                    reply.usage = usage_of(value) or reply.usage
                    if sse:
                        out.append(b"data: " + event.data + b"\r\n\r\n")
                    else:
                        out.append((b",\r\n" if started else b"[") + event.data)
                        started = True
                if out:  # what came before a failure in the same read is sent first
                    yield b"".join(out)
                if failure is not None:
                    raise failure
            if decoder.pending or (len(finished) < candidates and not blocked):
                raise UpstreamStreamError("The Gemini stream ended without a finishReason; the answer is truncated.")
        except GatewayError as error:
            yield stream_error(error, sse=sse, started=started)
            raise
        if not sse:
            yield b"]" if started else b"[]"

    reply.chunks = relay()
    return reply


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""
