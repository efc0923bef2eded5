"""The ``/realtime`` WebSocket: a client session relayed to the upstream's realtime API.

The client authenticates with ``Authorization: Bearer`` or the subprotocol
``openai-insecure-api-key.<key>`` and picks the model with ``?model=``; the request goes through
the same hooks as any other (authenticate, route_model, transform_request on the query fields,
admit_request, response_headers on the handshake). The gateway opens the upstream WebSocket with
the upstream key (aiohttp's client), then relays frames both ways in order, each direction in one
task; when either side closes or drops, the other is closed with the same code. The usage is
summed from the ``response.done`` events and recorded once, when the session ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .context import RequestContext
from .endpoints import APIEndpoint, request_id
from .exceptions import GatewayError, UpstreamUnavailableError
from .http import upstream_error
from .usage import Outcome, Usage

if TYPE_CHECKING:
    from .provider import HTTPProvider

__all__ = ["RealtimeEndpoint", "connect_upstream"]

logger = logging.getLogger("compatgate")

_UNSENDABLE = {1005, 1006, 1015}  # close codes that never go on the wire


async def connect_upstream(provider: HTTPProvider, ctx: RequestContext, body: dict[str, Any]) -> Any:
    """The upstream realtime WebSocket for ``body["model"]`` (an aiohttp client WebSocket that
    closes its session with it)."""
    url = provider.url("/realtime").copy_merge_params({"model": body["model"]})
    url = url.copy_with(scheme="wss" if url.scheme == "https" else "ws")
    headers = {k: v for k, v in provider.headers(ctx).items() if k != "content-type"}
    beta = ctx.request.headers.get("openai-beta")
    if beta:
        headers["openai-beta"] = beta
    session = aiohttp.ClientSession()
    try:
        socket = await session.ws_connect(str(url), headers=headers, max_msg_size=0,
                                          timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        raise upstream_error(exc.status, exc.message.encode(), secrets=provider.secrets) from None
    except (aiohttp.ClientError, OSError):
        await session.close()
        raise UpstreamUnavailableError(f"The upstream provider {provider.name!r} could not be reached.") from None
    socket._compatgate_session = session
    return socket


class RealtimeEndpoint(APIEndpoint):
    """``/realtime``: one WebSocket session per connection."""

    http_method = "GET"  # the handshake

    def __init__(self, gateway: Any) -> None:
        super().__init__(gateway, "realtime", "realtime")

    async def _read(self, ctx: RequestContext) -> dict[str, Any]:
        return dict(ctx.request.query_params)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The hooks see the handshake as a GET request (its headers, path and query).
        request = Request({**scope, "type": "http", "method": "GET"}, receive)
        ctx = RequestContext(self.gateway, request_id(request), self.name, request)
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            upstream = await self._prepare_and_call(ctx)
        except Exception as exc:
            error = exc if isinstance(exc, GatewayError) else GatewayError(
                "The gateway failed to handle this request.", code="internal_error")
            if not isinstance(exc, GatewayError):
                logger.exception("compatgate: realtime session %s failed", ctx.request_id)
            await _refuse(send, error)
            with anyio.CancelScope(shield=True):
                await self._record(ctx, error.status_code, "error", None, error)
            return
        session = Session(ctx, upstream, receive, send)
        try:
            offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",")]
            await send({"type": "websocket.accept", "subprotocol": "realtime" if "realtime" in offered else None,
                        "headers": await self.gateway.headers(ctx)})
            await session.run()
        finally:
            with anyio.CancelScope(shield=True):
                await session.close()
                await self._record(ctx, 101, session.outcome, session.usage, None)


class Session:
    """The two halves of one relayed session."""

    def __init__(self, ctx: RequestContext, upstream: Any, receive: Receive, send: Send) -> None:
        self.ctx, self.upstream, self.receive, self.send = ctx, upstream, receive, send
        self.usage: Usage | None = None
        self.outcome: Outcome = "aborted"
        self.client_open = True

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            async def side(relay: Any) -> None:
                try:
                    await relay()
                finally:
                    group.cancel_scope.cancel()

            group.start_soon(side, self._from_client)
            group.start_soon(side, self._from_upstream)

    async def _from_client(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                self.client_open = False
                code = message.get("code", 1000)
                await self.upstream.close(code=1000 if code in _UNSENDABLE else code)
                return
            if message.get("text") is not None:
                await self.upstream.send_str(message["text"])
            elif message.get("bytes") is not None:
                await self.upstream.send_bytes(message["bytes"])

    async def _from_upstream(self) -> None:
        async for message in self.upstream:
            if message.type == aiohttp.WSMsgType.TEXT:
                self._count(message.data)
                await self.send({"type": "websocket.send", "text": message.data})
            elif message.type == aiohttp.WSMsgType.BINARY:
                await self.send({"type": "websocket.send", "bytes": message.data})
        code = self.upstream.close_code or 1000
        self.outcome = "ok" if code in (1000, 1001) else "error"
        await self._close_client(1011 if code in _UNSENDABLE else code)

    def _count(self, text: str) -> None:
        if '"response.done"' not in text:
            return
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        response = event.get("response") if isinstance(event, dict) and event.get("type") == "response.done" else None
        usage = Usage.from_openai(response.get("usage")) if isinstance(response, dict) else None
        if usage is not None:
            before = self.usage or Usage()
            self.usage = Usage(before.prompt_tokens + usage.prompt_tokens,
                               before.completion_tokens + usage.completion_tokens,
                               before.total_tokens + usage.total_tokens)

    async def _close_client(self, code: int) -> None:
        if self.client_open:
            self.client_open = False
            try:
                await self.send({"type": "websocket.close", "code": code})
            except OSError:
                pass

    async def close(self) -> None:
        try:
            await self.upstream.close()
        finally:
            session = getattr(self.upstream, "_compatgate_session", None)
            if session is not None:
                await session.close()
        await self._close_client(1000)


async def _refuse(send: Send, error: GatewayError) -> None:
    """Accept, tell the client why in a realtime ``error`` event, and close (1008 for the
    client's mistakes, 1011 for the upstream's)."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": orjson.dumps({"type": "error", **orjson.loads(error.to_json())}).decode()})
    await send({"type": "websocket.close", "code": 1008 if error.status_code < 500 else 1011})
