"""The one pipeline every upstream-bound operation runs through.

An `OperationEndpoint` serves one row of the operation table (`compatgate.operations`):
authenticate (in the operation's dialect), read and check the body (the model name included),
check the model against the key, route it, transform it, serve it natively or convert it to
Chat Completions, meter the body *as it goes upstream* into ``ctx.units``, admit it, call the
upstream through the `wrap_upstream` chain, then answer (JSON, or a relay) and record the
usage exactly once — whatever happens, the client leaving included. Every error that leaves is
scrubbed of upstream secrets and says where it came from.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .byterelay import ByteRelay
from .context import RequestContext
from .exceptions import GatewayError, ModelNotFoundError, PermissionDeniedError, UpstreamError
from .local import error_headers, error_response, internal_error, json_response, method_not_allowed, request_id
from .metering import Meter, Units
from .operations import Operation
from .relay import ChunkRelay, OpenAIEncoder, Relay
from .replies import RawReply, Reply, Result, answer_of
from .timeouts import call_provider
from .uploads import Form
from .usage import Outcome, Usage, UsageRecord
from .validation import check_model_name
from .watch import ClientWatch

if TYPE_CHECKING:
    from .gateway import Gateway
    from .operations import Encoder

__all__ = ["OperationEndpoint", "Pipeline"]

logger = logging.getLogger("compatgate")

Body = dict[str, Any]


class Pipeline:
    """The steps of one operation up to the upstream call, shared by every endpoint kind."""

    def __init__(self, gateway: Gateway, operation: Operation) -> None:
        self.gateway = gateway
        self.operation = operation

    def context(self, request: Request) -> RequestContext:
        return RequestContext(self.gateway, request_id(request), self.operation.name, request, self.operation)

    async def prepare(self, ctx: RequestContext, api_key: str | None = None) -> None:
        """Everything before the upstream call: after it, ``ctx.sent`` is the body to send and
        ``ctx.units`` what it may cost, and every `admit_request` hook has let it through."""
        gateway, operation, request = self.gateway, self.operation, ctx.request
        hooks = gateway.hooks
        if request.method != operation.http_method:
            raise method_not_allowed(request, operation.http_method)
        ctx.principal = await gateway.authenticate(request, operation.dialect, api_key)
        body = await operation.read(request, gateway.config.gateway)
        operation.validate(body)
        ctx.body, ctx.model = body, body["model"]
        ctx.stream = operation.streams and body.get("stream") is True
        options = body.get("stream_options")
        ctx.include_usage = ctx.stream and isinstance(options, dict) and options.get("include_usage") is True
        if not ctx.principal.allows(ctx.model):
            raise PermissionDeniedError(
                f"The model '{ctx.model}' is not available for this API key.", param="model"
            )
        route = await hooks.route_model(gateway=gateway, ctx=ctx, model=ctx.model)
        if route is None:
            raise ModelNotFoundError(
                f"The model '{ctx.model}' does not exist or you do not have access to it.", param="model"
            )
        if route.model is None or route.upstream_model != route.model.upstream_model:
            check_model_name(route.upstream_model)  # a route may build it from the client's text
        ctx.route = route
        if hooks.implemented("transform_request") and not isinstance(ctx.body, Form):
            ctx.body = await hooks.transform_request(ctx=ctx, body=ctx.body)
        via = operation.via
        if route.provider.serves(operation.method):
            sent: Body = (ctx.body.replace(model=route.upstream_model) if isinstance(ctx.body, Form)
                          else {**ctx.body, "model": route.upstream_model})
        elif via is not None and route.provider.serves(via.method):
            sent = await via.request(ctx, ctx.body)
            sent["model"] = route.upstream_model
            ctx.converted = True
        elif operation.local is not None:
            sent = {**ctx.body, "model": route.upstream_model}
            ctx.local = True
        else:
            raise route.provider.unsupported(ctx)
        ctx.sent = sent
        model = route.model
        ctx.output_cap = (model.max_output_tokens if model is not None else None) or \
            gateway.config.gateway.default_max_output_tokens
        if ctx.output_cap is not None:  # a configured cap: sent upstream when the request has none
            units = ctx.units
            assert units is not None
            if not units.capped and units.output_tokens is not None:
                ctx.meter.cap(sent, ctx.output_cap)
        if hooks.implemented("admit_request"):
            await hooks.admit_request(ctx=ctx)

    def meter(self, ctx: RequestContext) -> Meter:
        """The meter of what ``ctx`` sends upstream: the conversion's when converted."""
        return ctx.meter

    async def call(self, ctx: RequestContext) -> Reply | Any:
        """Send ``ctx.sent`` upstream through the `wrap_upstream` chain (or answer it with the
        operation's ``local`` answer, when ``ctx.local``)."""
        assert ctx.route is not None
        operation = self.operation
        if ctx.local and operation.local is not None:
            return Reply(await operation.local(ctx, ctx.sent))
        provider, method = ctx.route.provider, ctx.upstream_method

        async def send(ctx: RequestContext, body: Body) -> Any:
            if self.operation.websocket:  # a session, not an answer: no answer timeouts
                return await getattr(provider, method)(ctx, body)
            return await call_provider(provider, ctx, method, body)

        hooks = self.gateway.hooks
        call = hooks.wrap_upstream(ctx=ctx, call=send) if hooks.implemented("wrap_upstream") else send
        return await call(ctx, ctx.sent)

    async def record(
        self, ctx: RequestContext, status: int, outcome: Outcome, result: Result, error: GatewayError | None
    ) -> None:
        """Hand the `UsageRecord` of ``ctx`` to every `record_usage` hook (once per request)."""
        route = ctx.route
        first = ctx.first_token_at
        record = UsageRecord(
            request_id=ctx.request_id,
            endpoint=ctx.endpoint,
            key_id=ctx.principal.key_id if ctx.principal else None,
            model=ctx.model,
            provider=route.provider.name if route else None,
            upstream_model=route.upstream_model if route else None,
            status_code=status,
            outcome=outcome,
            streamed=ctx.stream,
            usage=result.usage,
            latency_ms=ctx.elapsed_ms,
            time_to_first_token_ms=(first - ctx.started) * 1000.0 if first is not None else None,
            error=error.message if error is not None else None,
            attempts=tuple(ctx.attempts),
            error_code=error.code if error is not None else None,
            finish_reasons=result.answer.finish_reasons,
            response_model=result.answer.model,
            response_id=result.answer.id,
            units=result.units,
            cache=ctx.cache,
        )
        await self.gateway.hooks.record_usage(ctx=ctx, record=record)


class OperationEndpoint(Pipeline):
    """The ASGI app of one HTTP operation (see the module docstring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.context(Request(scope, receive))
        result = Result()
        error: GatewayError | None = None
        outcome: Outcome = "ok"
        early: EarlyStart | None = None
        try:
            await self.prepare(ctx)
            interval = self.gateway.config.gateway.keepalive_seconds
            if ctx.stream and interval > 0 and not isinstance(ctx.body, Form):
                early = EarlyStart(self, ctx, send, interval)
            reply = await self._call_watching(ctx, receive, early)
            if reply is None:  # the client left while the upstream was answering
                outcome = "aborted"
                with anyio.CancelScope(shield=True):
                    await self.record(ctx, 499, outcome, Result(), None)
                return
            headers = await self.gateway.headers(ctx)
            if not isinstance(reply, Reply):
                await self._relay(ctx, reply, headers, early)(scope, receive, send)
                return
            result, content = await self._answer(ctx, reply)
            response: Response = json_response(content, headers)
        except GatewayError as exc:
            error, outcome = self.gateway.scrubbed(exc), "error"
            response = self._error(ctx, error, await error_headers(ctx))
        except Exception:
            error, outcome = internal_error(ctx), "error"
            response = self._error(ctx, error, [(b"x-request-id", ctx.request_id.encode()),
                                                *_encoded(self.operation.dialect.headers(ctx))])
        if early is not None and early.started:  # the client already has a 200 and keep-alives
            assert error is not None
            with anyio.CancelScope(shield=True):
                await early.fail(error)
                await self.record(ctx, 200, outcome, result, error)
            return
        try:
            await response(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.record(ctx, response.status_code, outcome, result, error)

    def _error(self, ctx: RequestContext, error: GatewayError, headers: list[tuple[bytes, bytes]]) -> Response:
        provider = ctx.route.provider.name if ctx.route is not None and isinstance(error, UpstreamError) else None
        return error_response(error, headers, self.operation.dialect, provider, ctx.request_id)

    def encoder(self, ctx: RequestContext) -> Encoder:
        """The encoder of a stream for this client: its conversion's, its dialect's for a
        native stream (`Dialect.stream`), or OpenAI's."""
        if ctx.converted and self.operation.via is not None:
            return self.operation.via.encoder(ctx)
        return self.operation.dialect.stream(ctx) or OpenAIEncoder(ctx.include_usage)

    async def _call_watching(self, ctx: RequestContext, receive: Receive, early: EarlyStart | None) -> Any:
        """`call`, cancelled when the client goes away meanwhile (then None); a stream whose
        upstream keeps silent starts its answer early with keep-alives (``early``). A form's
        upload is still being read by the call, so only bodies read whole are watched."""
        if isinstance(ctx.body, Form):
            return await self.call(ctx)
        reply: Any = None
        idle = early.keepalive if early is not None else None
        async with ClientWatch(receive, idle, early.interval if early is not None else 0.0) as watch:
            reply = await self.call(ctx)
        if watch.left:
            if reply is not None and not isinstance(reply, Reply):  # a stream that came too late
                await _close(reply)
            return None
        return reply

    def _relay(self, ctx: RequestContext, reply: Any, headers: list[tuple[bytes, bytes]],
               early: EarlyStart | None) -> Relay:
        started = early is not None and early.started

        async def finish(outcome: Outcome, result: Result, error: GatewayError | None) -> None:
            meter = ctx.meter
            if outcome == "ok" and meter.settles:
                units = meter.settle(ctx.units or Units(), None, _sent(ctx))
                result = Result(result.usage, result.answer, units)
            await self.record(ctx, 200, outcome, result, error)

        if isinstance(reply, RawReply):
            return ByteRelay(ctx, reply, headers, finish, started=started)
        encoder = early.encoder if early is not None and early.encoder is not None else self.encoder(ctx)
        return ChunkRelay(ctx, reply, encoder, headers, finish, started=started)

    async def _answer(self, ctx: RequestContext, reply: Reply) -> tuple[Result, bytes]:
        """The JSON answer's result and bytes: converted to the client's protocol when it was
        served through Chat Completions, then through `transform_response`."""
        hooks, operation = self.gateway.hooks, self.operation
        data, raw = reply.data, reply.raw
        usage = reply.usage or Usage.from_openai(data.get("usage"))
        answer = answer_of(data)
        if ctx.converted and operation.via is not None:
            try:
                data, raw = await operation.via.reply(ctx, data), None
            except GatewayError:
                raise
            except Exception as exc:  # the pivot answer made no sense: the upstream's fault
                logger.warning("compatgate: request %s: the upstream's answer could not be converted (%s)",
                               ctx.request_id, type(exc).__name__)
                raise UpstreamError(f"The upstream's answer could not be converted ({type(exc).__name__}).",
                                    status_code=502) from None
        if hooks.implemented("transform_response"):
            data, raw = await hooks.transform_response(ctx=ctx, response=data), None
        meter = ctx.meter
        units = meter.settle(ctx.units or Units(), data, _sent(ctx)) if meter.settles else None
        return Result(usage, answer, units), raw if raw is not None else orjson.dumps(data)


def _encoded(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]


def _sent(ctx: RequestContext) -> int:
    return ctx.sent.sent if isinstance(ctx.sent, Form) else 0


class EarlyStart:
    """The answer of a stream whose upstream has not answered yet: after ``interval`` seconds of
    silence the client gets its 200, the stream's headers and a keep-alive in its protocol
    (then one every ``interval``), so that proxies with idle timeouts keep the connection while
    a model thinks. What comes later is written on that started answer; an error then ends it
    with the protocol's error event (the status was already sent)."""

    def __init__(self, endpoint: OperationEndpoint, ctx: RequestContext, send: Send, interval: float) -> None:
        self.endpoint, self.ctx, self.send, self.interval = endpoint, ctx, send, interval
        self.encoder: Encoder | None = None
        self.started = False

    async def keepalive(self) -> None:
        if self.encoder is None:
            self.encoder = self.endpoint.encoder(self.ctx)
        if not self.started:
            self.started = True
            headers = [(b"content-type", self.encoder.media_type.encode("latin-1")), (b"cache-control", b"no-cache"),
                       (b"x-accel-buffering", b"no"), *await error_headers(self.ctx)]
            await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        await self.send({"type": "http.response.body", "body": self.encoder.keepalive(), "more_body": True})

    async def fail(self, error: GatewayError) -> None:
        assert self.encoder is not None
        await self.send({"type": "http.response.body", "body": self.encoder.error(error), "more_body": False})


async def _close(reply: Any) -> None:
    """Release the upstream of a stream nobody will read."""
    chunks = reply.chunks if isinstance(reply, RawReply) else reply
    close = getattr(chunks, "aclose", None)
    if close is not None:
        with anyio.CancelScope(shield=True):
            await close()
