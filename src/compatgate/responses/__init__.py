"""The Responses API (``POST /responses``) for every provider.

`respond_via_chat` serves it on top of a provider's ``chat_completions`` (see `convert` and
`events`), keeping responses in the gateway's store (`store`) so that ``previous_response_id``
continues a conversation; `native_events` relays an upstream's own Responses event stream
(OpenAI-type providers with ``native_responses = true``), learning the usage from its end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx2
import orjson

from ..exceptions import InvalidRequestError
from ..provider import HTTPProvider, Provider, RawReply, Reply
from ..sse import encode_event
from ..timeouts import call_provider
from ..usage import Usage
from .convert import chat_request, from_chat, input_items, item_id, shell
from .events import ResponseEvents
from .store import open_store

if TYPE_CHECKING:
    from ..context import RequestContext

__all__ = ["native_events", "respond_via_chat"]

Body = dict[str, Any]
EVENT_STREAM = "text/event-stream; charset=utf-8"


async def respond_via_chat(provider: Provider, ctx: RequestContext, body: Body) -> Reply | RawReply:
    """Answer the Responses request ``body`` with ``provider.chat_completions``."""
    store = await open_store(ctx.gateway)
    previous = body.get("previous_response_id")
    wanted = body.get("store")
    if store is None and (previous or wanted is True):
        name = "previous_response_id" if previous else "store"
        raise InvalidRequestError(
            f"'{name}' needs the gateway's response storage, which is off "
            "(gateway.response_store = \"off\"); send the whole conversation in 'input' instead.",
            param=name, code="storage_disabled",
        )
    key_id = ctx.principal.key_id if ctx.principal else None
    history: list[Body] = []
    if previous:
        entry = await store.load(previous, key_id) if store else None
        if entry is None:
            raise InvalidRequestError(f"Previous response with id '{previous}' not found.",
                                      param="previous_response_id", code="previous_response_not_found")
        history = entry[1]
    items = history + input_items(body.get("input"))
    keep = store is not None and wanted is not False
    response = shell(body, ctx.model, item_id("resp"), store=keep)

    async def done(final: Body) -> None:
        if keep and store is not None:
            await store.save(final, items + [_plain(item) for item in final["output"]], key_id)

    result = await call_provider(provider, ctx, "chat_completions", chat_request(body, items))
    if isinstance(result, Reply):
        final = from_chat(result.data, response)
        await done(final)
        return Reply(final)
    reply = RawReply(_empty(), EVENT_STREAM)
    reply.chunks = ResponseEvents(result, response, reply, done).__aiter__()
    return reply


def _plain(item: Body) -> Body:
    """An output item as a later request's input item."""
    return {key: value for key, value in item.items() if key != "status"}


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


def native_events(provider: HTTPProvider, response: httpx2.Response) -> RawReply:
    """An upstream Responses event stream relayed event by event; the usage is read from its
    terminal event."""
    reply = RawReply(_empty(), EVENT_STREAM)

    async def relay() -> AsyncIterator[bytes]:
        async for event in provider.events(response):
            if b'"usage"' in event.data:
                try:
                    data = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    data = None
                if isinstance(data, dict) and isinstance(data.get("response"), dict):
                    reply.usage = Usage.from_openai(data["response"].get("usage")) or reply.usage
            yield encode_event(event.data, event=event.event)

    reply.chunks = relay()
    return reply
