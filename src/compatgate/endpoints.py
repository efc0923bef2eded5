"""The gateway's routes: the upstream-bound API endpoints, ``/models``, and everything else.

An `APIEndpoint` runs one request through the hooks: authenticate, read and check the body,
check the model against the key, route it, transform it, admit it, call the provider, then
answer (JSON, or a `StreamRelay`) and record the usage exactly once.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .context import RequestContext
from .exceptions import GatewayError, MethodNotAllowedError, ModelNotFoundError, NotFoundError, PermissionDeniedError
from .byterelay import ByteRelay
from .provider import RawReply, Reply
from .relay import StreamRelay
from .timeouts import call_provider
from .usage import Outcome, Usage, UsageRecord
from .uploads import Form, read_form
from .validation import VALIDATORS, read_json

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["APIEndpoint", "ModelsEndpoint", "not_found", "error_response"]

logger = logging.getLogger("compatgate")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_JSON = "application/json"

# What an answer said: its finish reasons, model and id (see `UsageRecord`).
Answer = tuple[tuple[str, ...], str | None, str | None]
_NO_ANSWER: Answer = ((), None, None)

# The endpoints whose body is multipart/form-data (see `read_form`); the others take JSON.
FORM_ENDPOINTS = frozenset({"images.edits", "audio.transcriptions", "audio.translations"})


def request_id(request: Request) -> str:
    """The client's ``x-request-id`` when it is a sane token, otherwise a new one."""
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return f"req_{os.urandom(16).hex()}"


def error_response(error: GatewayError, headers: list[tuple[bytes, bytes]] = []) -> Response:  # noqa: B006
    response = Response(error.to_json(), error.status_code, media_type=_JSON)
    response.raw_headers.extend(headers)
    for name, value in error.headers.items():
        response.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return response


def _json_response(content: bytes, headers: list[tuple[bytes, bytes]]) -> Response:
    response = Response(content, 200, media_type=_JSON)
    response.raw_headers.extend(headers)
    return response


class APIEndpoint:
    """An ASGI app serving one POST endpoint that goes upstream (``chat.completions``...)."""

    http_method = "POST"

    def __init__(self, gateway: Gateway, name: str, method: str) -> None:
        self.gateway = gateway
        self.name = name
        self.method = method
        self.validate = VALIDATORS[name]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ctx = RequestContext(self.gateway, request_id(request), self.name, request)
        usage: Usage | None = None
        answer: Answer = _NO_ANSWER
        error: GatewayError | None = None
        try:
            reply = await self._prepare_and_call(ctx)
            headers = await self.gateway.headers(ctx)
            if isinstance(reply, RawReply):
                relay: StreamRelay = ByteRelay(
                    ctx, reply, headers,
                    lambda o, u, e: self._record(ctx, 200, o, u, e, _NO_ANSWER),
                )
                await relay(scope, receive, send)
                return
            if not isinstance(reply, Reply):
                relay = StreamRelay(
                    ctx, reply, headers,
                    lambda o, u, e: self._record(ctx, 200, o, u, e, _relayed(relay)),
                )
                await relay(scope, receive, send)
                return
            usage = Usage.from_openai(reply.data.get("usage"))
            answer = _answered(reply.data)
            response = _json_response(await self._body(ctx, reply), headers)
        except GatewayError as exc:
            error = exc
            response = error_response(exc, await _error_headers(ctx))
        except Exception:
            logger.exception("compatgate: request %s failed", ctx.request_id)
            error = GatewayError("The gateway failed to handle this request.", code="internal_error")
            response = error_response(error, [(b"x-request-id", ctx.request_id.encode())])
        outcome: Outcome = "ok" if error is None else "error"
        try:
            await response(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._record(ctx, response.status_code, outcome, usage, error, answer)

    async def _read(self, ctx: RequestContext) -> dict[str, Any]:
        """The request body: JSON, or the fields of a multipart form (a `Form`)."""
        settings = self.gateway.config.gateway
        if self.name in FORM_ENDPOINTS:
            return await read_form(ctx.request, settings.max_upload_bytes)
        return await read_json(ctx.request, settings.max_request_bytes)

    async def _prepare_and_call(self, ctx: RequestContext) -> Any:
        gateway, hooks = self.gateway, self.gateway.hooks
        if ctx.request.method != self.http_method:
            raise _method_not_allowed(ctx.request, self.http_method)
        ctx.principal = await gateway.authenticate(ctx.request)
        body = await self._read(ctx)
        self.validate(body)
        ctx.body, ctx.model = body, body["model"]
        ctx.stream = body.get("stream") is True
        options = body.get("stream_options")
        ctx.include_usage = ctx.stream and isinstance(options, dict) and options.get("include_usage") is True
        if not ctx.principal.allows(ctx.model):
            raise PermissionDeniedError(
                f"The model '{ctx.model}' is not available for this API key.", param="model"
            )
        route = await hooks.first("route_model", gateway=gateway, ctx=ctx, model=ctx.model)
        if route is None:
            raise ModelNotFoundError(
                f"The model '{ctx.model}' does not exist or you do not have access to it.", param="model"
            )
        ctx.route = route
        if hooks.implemented("transform_request") and not isinstance(ctx.body, Form):
            ctx.body = await hooks.chain("transform_request", "body", ctx.body, ctx=ctx)
        if hooks.implemented("admit_request"):
            await hooks.each("admit_request", ctx=ctx)
        if isinstance(ctx.body, Form):
            upstream: dict[str, Any] = ctx.body.replace(model=route.upstream_model)
        else:
            upstream = {**ctx.body, "model": route.upstream_model}
        if self.name == "realtime":  # a session, not an answer: no answer timeouts
            return await route.provider.realtime(ctx, upstream)
        if hooks.implemented("wrap_upstream"):
            method = self.method

            async def call(ctx: RequestContext, body: dict[str, Any]) -> Any:
                return await call_provider(route.provider, ctx, method, body)

            wrapped = await hooks.chain("wrap_upstream", "call", call, ctx=ctx)
            return await wrapped(ctx, upstream)
        return await call_provider(route.provider, ctx, self.method, upstream)

    async def _body(self, ctx: RequestContext, reply: Reply) -> bytes:
        hooks = self.gateway.hooks
        if hooks.implemented("transform_response"):
            return orjson.dumps(await hooks.chain("transform_response", "response", reply.data, ctx=ctx))
        return reply.raw if reply.raw is not None else orjson.dumps(reply.data)

    async def _record(
        self,
        ctx: RequestContext,
        status: int,
        outcome: Outcome,
        usage: Usage | None,
        error: GatewayError | None,
        answer: Answer = _NO_ANSWER,
    ) -> None:
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
            usage=usage,
            latency_ms=ctx.elapsed_ms,
            time_to_first_token_ms=(first - ctx.started) * 1000.0 if first is not None else None,
            error=error.message if error is not None else None,
            attempts=tuple(ctx.attempts),
            error_code=error.code if error is not None else None,
            finish_reasons=answer[0],
            response_model=answer[1],
            response_id=answer[2],
            cache=ctx.cache,
        )
        await self.gateway.hooks.each("record_usage", isolate=True, ctx=ctx, record=record)


class LocalEndpoint:
    """An endpoint the gateway answers itself (no upstream): authenticate, then the JSON that
    `answer` gives, or an OpenAI-format error. ``methods`` are the ones it serves."""

    name = ""
    methods: tuple[str, ...] = ("GET", "HEAD")

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def answer(self, ctx: RequestContext) -> bytes:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ctx = RequestContext(self.gateway, request_id(request), self.name, request)
        try:
            if request.method not in self.methods:
                raise _method_not_allowed(request, ", ".join(m for m in self.methods if m != "HEAD"))
            ctx.principal = await self.gateway.authenticate(request)
            content = await self.answer(ctx)
            response = _json_response(content, await self.gateway.headers(ctx))
        except GatewayError as exc:
            response = error_response(exc, await _error_headers(ctx))
        except Exception:
            logger.exception("compatgate: request %s failed", ctx.request_id)
            error = GatewayError("The gateway failed to handle this request.", code="internal_error")
            response = error_response(error, [(b"x-request-id", ctx.request_id.encode())])
        await response(scope, receive, send)


class ModelsEndpoint(LocalEndpoint):
    """``GET /models`` and ``GET /models/{model}``, filtered by what the key may use."""

    name = "models"

    async def answer(self, ctx: RequestContext) -> bytes:
        assert ctx.principal is not None
        models = await self.gateway.list_models(ctx.principal)
        wanted = ctx.request.path_params.get("model")
        if wanted is None:
            return orjson.dumps({"object": "list", "data": models})
        found = [m for m in models if m["id"] == wanted]
        if not found:
            raise ModelNotFoundError(f"The model '{wanted}' does not exist.", param="model")
        return orjson.dumps(found[0])


def _answered(data: dict[str, Any]) -> Answer:
    choices = data.get("choices")
    reasons = tuple(
        str(choice["finish_reason"]) for choice in choices
        if isinstance(choice, dict) and choice.get("finish_reason")
    ) if isinstance(choices, list) else ()
    model, id_ = data.get("model"), data.get("id")
    return reasons, model if isinstance(model, str) else None, id_ if isinstance(id_, str) else None


def _relayed(relay: StreamRelay) -> Answer:
    return tuple(relay.finish_reasons), relay.response_model, relay.response_id


async def _error_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    """The headers of an error response; only ``x-request-id`` when a `response_headers` hook fails."""
    try:
        return await ctx.gateway.headers(ctx)
    except Exception:
        logger.exception("compatgate: response_headers failed for request %s", ctx.request_id)
        return [(b"x-request-id", ctx.request_id.encode())]


def _method_not_allowed(request: Request, allowed: str) -> GatewayError:
    return MethodNotAllowedError(request.method, allowed, request.url.path)


_UNSUPPORTED = ("fine_tuning", "fine-tunes", "files", "organization", "billing", "dashboard",
                "assistants", "threads", "vector_stores", "batches", "uploads", "evals", "usage")


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Any route the gateway does not serve: 404 in the OpenAI format."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "no such WebSocket route"})
        return
    request = Request(scope, receive)
    path = request.url.path
    root = scope.get("root_path", "")
    relative = path[len(root):] if root and path.startswith(root) else path
    family = relative.strip("/").split("/", 1)[0]
    if family in _UNSUPPORTED:
        message = f"The {family} API ({request.method} {path}) is not supported by this gateway."
        error = NotFoundError(message, code="unsupported_endpoint")
    else:
        error = NotFoundError(f"Invalid URL ({request.method} {path}).", code="unknown_url")
    await error_response(error, [(b"x-request-id", request_id(request).encode())])(scope, receive, send)
