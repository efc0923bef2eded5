"""Default plugin: the Responses API (``POST /responses``, ``GET``/``DELETE /responses/{id}``).

A provider that serves ``responses`` itself (an OpenAI-type provider with
``native_responses = true``) gets the request as it is. For every other provider the operation
is served through Chat Completions (`ChatConversion`): the request becomes a chat request
(``previous_response_id`` read back from the gateway's store; every tool type accepted, hosted
ones left out and named in ``x-compatgate-dropped-tools``, see `compatgate.responses.tools`),
and the chat answer — or its chunks, as the Responses event sequence — a Response, kept in the
store when ``store`` allows. The plugin opens the store (`compatgate.responses.store`) at
start-up — a store that cannot be reached then is opened again on first use, and reported by
``GET /health/ready`` meanwhile, so that everything else keeps serving — and closes it at
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.routing import BaseRoute, Route

from ..context import RequestContext
from ..exceptions import GatewayError, InvalidRequestError, NotFoundError
from ..hookspecs import hookimpl
from ..local import LocalEndpoint
from ..metering import TokenMeter
from ..operations import Conversion, Operation
from ..responses.convert import chat_request, input_items
from ..responses.events import ResponseEncoder
from ..responses.output import from_chat, item_id, shell
from ..responses.store import ResponseStore, open_store
from ..responses.tools import ToolMap
from ..validation import check_responses

if TYPE_CHECKING:
    from ..gateway import Gateway

__all__ = ["ChatConversion", "ResponsesAPI", "plugin"]

Body = dict[str, Any]
_STATE = "responses"

logger = logging.getLogger("compatgate")


class StoreUnavailableError(GatewayError):
    """503: the response store cannot be reached."""

    status_code = 503
    type = "server_error"
    code = "store_unavailable"


@dataclass(slots=True)
class _Turn:
    """One Responses request served through chat: its Response so far, the items it adds to
    the conversation, the response it continues, whether it is kept, and how its tools map."""

    response: Body
    added: list[Body]
    previous: str | None
    keep: bool
    tools: ToolMap


class ResponsesAPI:
    """The plugin: one per gateway, holding that gateway's response store."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._store: ResponseStore | None = None
        self._lock = asyncio.Lock()
        self._off = gateway.config.gateway.response_store == "off"

    async def store(self) -> ResponseStore | None:
        """The store, opened now if it is not yet (None when ``response_store = "off"``); an
        error 503 when it cannot be reached."""
        if self._store is None and not self._off:
            async with self._lock:
                if self._store is None:
                    try:
                        self._store = await open_store(self.gateway.config.gateway)
                    except Exception as exc:  # where it is (a DSN) stays in the log
                        logger.warning("compatgate: the response store is unreachable: %s", type(exc).__name__)
                        raise StoreUnavailableError(
                            "The gateway's response store is unavailable; try again later, or send the "
                            "whole conversation in 'input' without 'store'."
                        ) from None
        return self._store

    @hookimpl(trylast=True)
    def register_operations(self, register: Callable[[Operation], None]) -> None:
        register(Operation("responses", "/responses", "responses", check_responses,
                           TokenMeter("max_output_tokens"), streams=True, via=ChatConversion(self)))

    @hookimpl(trylast=True)
    def register_routes(self, register: Callable[[BaseRoute], None]) -> None:
        register(Route("/responses/{response_id}", StoredResponseEndpoint(self.gateway, self)))

    @hookimpl(trylast=True)
    async def startup(self) -> None:
        with contextlib.suppress(StoreUnavailableError):  # retried on first use
            await self.store()

    @hookimpl(trylast=True)
    async def shutdown(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()

    @hookimpl(trylast=True)
    async def check_ready(self) -> dict[str, str | None]:
        if self.gateway.config.gateway.response_store != "postgres":
            return {}  # an SQLite file is local: nothing to probe
        try:
            store = await self.store()
            if store is not None:
                await store.load("resp_readiness_probe", None)
        except Exception as exc:  # the details (host, DSN) go to the log, not to the probe
            logger.warning("compatgate: the response store is unreachable: %s", type(exc).__name__)
            return {"response_store": f"unreachable ({type(exc).__name__})"}
        return {"response_store": None}


plugin = ResponsesAPI


class ChatConversion(Conversion):
    """The `Conversion` of Responses requests to and from Chat Completions."""

    def __init__(self, api: ResponsesAPI) -> None:
        self.api = api

    async def request(self, ctx: RequestContext, body: Body) -> Body:
        previous, wanted = body.get("previous_response_id"), body.get("store")
        store = await self.api.store() if previous or wanted is not False else None
        if store is None and (previous or wanted is True):  # response_store = "off"
            name = "previous_response_id" if previous else "store"
            raise InvalidRequestError(
                f"'{name}' needs the gateway's response storage, which is off "
                "(gateway.response_store = \"off\"); send the whole conversation in 'input' instead.",
                param=name, code="storage_disabled",
            )
        history: list[Body] = []
        if previous and store is not None:
            found = await store.history(previous, _key(ctx))
            if found is None:
                raise InvalidRequestError(f"Previous response with id '{previous}' not found.",
                                          param="previous_response_id", code="previous_response_not_found")
            history = found
        added = input_items(body.get("input"))
        converted = chat_request(body, history + added)
        self.report(ctx, converted.tools.dropped, converted.ignored)
        keep = store is not None
        ctx.state[_STATE] = _Turn(shell(body, ctx.model, item_id("resp"), store=keep), added, previous, keep,
                                  converted.tools)
        return converted.body

    async def reply(self, ctx: RequestContext, chat: Body) -> Body:
        turn: _Turn = ctx.state[_STATE]
        final = from_chat(chat, turn.response, turn.tools)
        await self._save(ctx, turn, final)
        return final

    def encoder(self, ctx: RequestContext) -> ResponseEncoder:
        turn: _Turn = ctx.state[_STATE]

        async def done(final: Body) -> None:
            await self._save(ctx, turn, final)

        return ResponseEncoder(turn.response, done, turn.tools)

    async def _save(self, ctx: RequestContext, turn: _Turn, final: Body) -> None:
        store = await self.api.store() if turn.keep else None
        if store is not None:
            output = [{k: v for k, v in item.items() if k != "status"} for item in final["output"]]
            await store.save(final, turn.added + output, turn.previous, _key(ctx))


class StoredResponseEndpoint(LocalEndpoint):
    """``GET`` and ``DELETE /responses/{id}``: the responses the gateway stored, for the key that
    created them (any other key gets a 404, as for an id that never existed)."""

    name = "responses"
    methods = ("GET", "DELETE")

    def __init__(self, gateway: Gateway, api: ResponsesAPI) -> None:
        super().__init__(gateway)
        self.api = api

    async def answer(self, ctx: RequestContext) -> bytes:
        store = await self.api.store()
        if store is None:
            raise InvalidRequestError(
                "The gateway does not store responses (gateway.response_store = \"off\").",
                code="storage_disabled",
            )
        wanted = ctx.request.path_params["response_id"]
        if ctx.request.method == "DELETE":
            if await store.delete(wanted, _key(ctx)):
                return orjson.dumps({"id": wanted, "object": "response", "deleted": True})
        else:
            found = await store.load(wanted, _key(ctx))
            if found is not None:
                return orjson.dumps(found)
        raise NotFoundError(f"Response with id '{wanted}' not found.", param="response_id")


def _key(ctx: RequestContext) -> str | None:
    return ctx.principal.key_id if ctx.principal else None
