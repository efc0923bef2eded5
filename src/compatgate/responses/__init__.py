"""The Responses API (``POST /responses``) for every provider.

`convert` turns a Responses request into a chat request and a chat answer into a Response;
`events` writes chat chunks as the Responses event stream; `store` keeps responses so that
``previous_response_id`` continues a conversation; `native_events` relays an upstream's own
Responses event stream (OpenAI-type providers with ``native_responses = true``), learning the
usage from its terminal event and counting what it relayed. The operation itself is the default
plugin `compatgate.defaults.responses`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from ..replies import RawReply
from ..sse import encode_event
from ..usage import Usage

if TYPE_CHECKING:
    import httpx2

    from ..provider import HTTPProvider

__all__ = ["native_events"]

EVENT_STREAM = "text/event-stream; charset=utf-8"
_DELTAS = (b'"response.output_text.delta"', b'"response.function_call_arguments.delta"',
           b'"response.reasoning_summary_text.delta"', b'"response.refusal.delta"')


def native_events(provider: HTTPProvider, response: httpx2.Response) -> RawReply:
    """An upstream Responses event stream relayed event by event; the usage is read from its
    terminal event, and the characters of its deltas are counted for an estimate."""

    async def relay() -> AsyncIterator[bytes]:
        async for event in provider.events(response):
            data = event.data
            if b'"usage"' in data or any(kind in data for kind in _DELTAS):
                _learn(reply, data)
            yield encode_event(data, event=event.event)

    reply = RawReply(relay(), EVENT_STREAM)
    return reply


def _learn(reply: RawReply, data: bytes) -> None:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not isinstance(event, dict):
        return
    delta = event.get("delta")
    if isinstance(delta, str):
        reply.generated += len(delta)
    response = event.get("response")
    if isinstance(response, dict):
        reply.usage = Usage.from_openai(response.get("usage")) or reply.usage
