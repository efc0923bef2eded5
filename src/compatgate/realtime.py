"""The ``/realtime`` WebSocket: a client session relayed to the upstream's realtime API.

The client authenticates with ``Authorization: Bearer`` or the subprotocol
``openai-insecure-api-key.<key>`` and picks the model with ``?model=``; the handshake goes
through the same pipeline as any operation (authenticate, route_model, transform_request on the
query fields, admit_request, response_headers). The gateway then opens the upstream WebSocket
with the upstream key and relays frames both ways in order; when either side closes or drops,
the other is closed with the same code.

Each response of the session is metered like a request of its own (`Turn`): before a client's
``response.create`` goes upstream (or, for a response the upstream starts itself, such as with
server voice detection, as soon as ``response.created`` arrives) the gateway measures it — the
output cap of the response or session (``max_output_tokens``, ``max_response_output_tokens``),
the last known input tokens plus the text added since — and runs `admit_request` for it; each
``response.done`` is recorded at once (`record_usage` with that response's usage), so budgets
and token limits hold inside a session. A response that is refused gets an OpenAI-format
``error`` event and the session is closed (1008). The handshake's own record carries no usage.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .endpoints import Pipeline
from .exceptions import GatewayError, UpstreamUnavailableError
from .http import upstream_error
from .local import internal_error
from .metering import Units
from .replies import Answer, Result
from .usage import Outcome, Usage, estimate_tokens

if TYPE_CHECKING:
    from .context import RequestContext
    from .provider import HTTPProvider

__all__ = ["RealtimeEndpoint", "connect_upstream"]

logger = logging.getLogger("compatgate")

_UNSENDABLE = {1005, 1006, 1015}  # close codes that never go on the wire
_SUBPROTOCOL_KEY = "openai-insecure-api-key."


class _Upstream:
    """An aiohttp client WebSocket that closes its session with it."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        self.socket, self.session = socket, session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.socket, name)

    def __aiter__(self) -> Any:
        return self.socket.__aiter__()

    async def close(self, *, code: int = 1000) -> None:
        try:
            await self.socket.close(code=code)
        finally:
            await self.session.close()


async def connect_upstream(provider: HTTPProvider, ctx: RequestContext, body: dict[str, Any]) -> Any:
    """The upstream realtime WebSocket for ``body["model"]``."""
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
    return _Upstream(socket, session)


class RealtimeEndpoint(Pipeline):
    """``/realtime``: one WebSocket session per connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The hooks see the handshake as a GET request (its headers, path and query).
        request = Request({**scope, "type": "http", "method": "GET"}, receive)
        ctx = self.context(request)
        if (await receive())["type"] != "websocket.connect":
            return
        offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",")]
        key = next((p[len(_SUBPROTOCOL_KEY):] for p in offered if p.startswith(_SUBPROTOCOL_KEY)), None)
        try:
            await self.prepare(ctx, key or None)
            upstream = await self.call(ctx)
        except Exception as exc:
            error = self.gateway.scrubbed(exc) if isinstance(exc, GatewayError) else internal_error(ctx)
            await _refuse(send, error)
            with anyio.CancelScope(shield=True):
                await self.record(ctx, error.status_code, "error", Result(), error)
            return
        session = Session(self, ctx, upstream, receive, send)
        try:
            await send({"type": "websocket.accept", "subprotocol": "realtime" if "realtime" in offered else None,
                        "headers": await self.gateway.headers(ctx)})
            await session.run()
        finally:
            with anyio.CancelScope(shield=True):
                await session.close()
                await self.record(ctx, 101, session.outcome, Result(), session.error)


class Turn:
    """One response of a session, metered as a request: its context and what it relayed."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.id: str | None = None
        self.generated = 0


class Session:
    """The two halves of one relayed session, and the metering of its responses."""

    def __init__(self, endpoint: RealtimeEndpoint, ctx: RequestContext, upstream: Any, receive: Receive,
                 send: Send) -> None:
        self.endpoint, self.ctx, self.upstream, self.receive, self.send = endpoint, ctx, upstream, receive, send
        self.outcome: Outcome = "aborted"
        self.error: GatewayError | None = None
        self.client_open = True
        self.turns: deque[Turn] = deque()  # responses admitted and not done, oldest first
        self.count = 0
        self.session_cap: int | None = None  # the session's max_response_output_tokens
        self.input_tokens = 0  # the last response's input tokens: the next prompt starts there
        self.added = 0  # characters of text the client added to the conversation since

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
            text = message.get("text")
            if text is not None:
                if '"response.create"' in text or '"session.update"' in text or '"conversation.item.create"' in text:
                    if not await self._client_event(text):
                        return
                await self.upstream.send_str(text)
            elif message.get("bytes") is not None:
                await self.upstream.send_bytes(message["bytes"])

    async def _from_upstream(self) -> None:
        async for message in self.upstream:
            if message.type == aiohttp.WSMsgType.TEXT:
                if '"response.' in message.data and not await self._upstream_event(message.data):
                    return
                await self.send({"type": "websocket.send", "text": message.data})
            elif message.type == aiohttp.WSMsgType.BINARY:
                await self.send({"type": "websocket.send", "bytes": message.data})
        code = self.upstream.close_code or 1000
        self.outcome = "ok" if code in (1000, 1001) else "error"
        await self._close_client(1011 if code in _UNSENDABLE else code)

    async def _client_event(self, text: str) -> bool:
        """Meter a client event; False when the session was refused and closed."""
        event = _decode(text)
        kind = event.get("type")
        if kind == "session.update":
            cap = (event.get("session") or {}).get("max_response_output_tokens")
            self.session_cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None
        elif kind == "conversation.item.create":
            self.added += len(orjson.dumps(event.get("item")))
        elif kind == "response.create":
            response: dict[str, Any] = event["response"] if isinstance(event.get("response"), dict) else {}
            cap = response.get("max_output_tokens")
            return await self._admit(cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None)
        return True

    async def _upstream_event(self, text: str) -> bool:
        """Meter an upstream event; False when the session was refused and closed."""
        if '"response.done"' in text or '"response.created"' in text:
            event = _decode(text)
            response: dict[str, Any] = event["response"] if isinstance(event.get("response"), dict) else {}
            if event.get("type") == "response.created":
                turn = next((t for t in self.turns if t.id is None), None)
                if turn is None:  # started by the upstream itself (server voice detection)
                    if not await self._admit(None):
                        return False
                    turn = self.turns[-1]
                turn.id = response.get("id")
            elif event.get("type") == "response.done":
                await self._done(response)
        elif self.turns and '"delta"' in text:
            delta = _decode(text).get("delta")
            if isinstance(delta, str):
                self.turns[0].generated += len(delta)
        return True

    async def _admit(self, cap: int | None) -> bool:
        ctx = self.ctx
        self.count += 1
        turn_ctx = self.endpoint.context(ctx.request)
        turn_ctx.request_id = f"{ctx.request_id}.{self.count}"
        turn_ctx.principal, turn_ctx.route, turn_ctx.model, turn_ctx.sent = ctx.principal, ctx.route, ctx.model, ctx.sent
        model = ctx.route.model if ctx.route is not None else None
        limit = cap or self.session_cap or (model.max_output_tokens if model else None)
        limit = limit or ctx.gateway.config.gateway.default_max_output_tokens
        turn_ctx.units = Units(self.input_tokens + estimate_tokens(self.added), limit, capped=limit is not None)
        self.added = 0
        turn = Turn(turn_ctx)
        try:
            if ctx.gateway.hooks.implemented("admit_request"):
                await ctx.gateway.hooks.admit_request(ctx=turn_ctx)
        except GatewayError as exc:
            error = ctx.gateway.scrubbed(exc)
            await self.endpoint.record(turn_ctx, error.status_code, "error", Result(), error)
            self.error, self.outcome = error, "error"
            await self.send({"type": "websocket.send", "text": _error_event(error)})
            await self.upstream.send_str(orjson.dumps({"type": "response.cancel"}).decode())
            await self._close_client(1008)
            await self.upstream.close(code=1000)
            return False
        self.turns.append(turn)
        return True

    async def _done(self, response: dict[str, Any]) -> None:
        turn = next((t for t in self.turns if t.id == response.get("id")), self.turns[0] if self.turns else None)
        if turn is None:
            return
        self.turns.remove(turn)
        usage = Usage.from_openai(response.get("usage"))
        if usage is not None:
            self.input_tokens = usage.prompt_tokens
        status = response.get("status")
        outcome: Outcome = "ok" if status in ("completed", "incomplete", "cancelled") else "error"
        answer = Answer((str(status),) if status else (), None, response.get("id"))
        await self.endpoint.record(turn.ctx, 200, outcome, Result(usage, answer), None)

    async def _close_client(self, code: int) -> None:
        if self.client_open:
            self.client_open = False
            try:
                await self.send({"type": "websocket.close", "code": code})
            except OSError:
                pass

    async def close(self) -> None:
        """Close both sides; responses never done are recorded as aborted, at their estimate."""
        try:
            await self.upstream.close()
        finally:
            await self._close_client(1000)
            while self.turns:
                turn = self.turns.popleft()
                units = turn.ctx.units or Units()
                completion = estimate_tokens(turn.generated)
                usage = Usage(units.prompt_tokens, completion, units.prompt_tokens + completion, estimated=True)
                await self.endpoint.record(turn.ctx, 200, "aborted", Result(usage), None)


def _decode(text: str) -> dict[str, Any]:
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def _error_event(error: GatewayError) -> str:
    return orjson.dumps({"type": "error", **error.to_dict()}).decode()


async def _refuse(send: Send, error: GatewayError) -> None:
    """Accept, tell the client why in a realtime ``error`` event, and close (1008 for the
    client's mistakes, 1011 for the upstream's)."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": _error_event(error)})
    await send({"type": "websocket.close", "code": 1008 if error.status_code < 500 else 1011})
