"""What the gateway answers itself: ``/models``, endpoints of plugins that need no upstream, and
every URL it does not serve; and the pieces of a response that every endpoint shares (request
ids, JSON and error responses with the headers that say where an error came from)."""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .context import RequestContext
from .exceptions import (
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    UpstreamError,
)
from .operations import OPENAI, Dialect

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = [
    "ERROR_SOURCE_HEADER",
    "UPSTREAM_HEADER",
    "LocalEndpoint",
    "ModelsEndpoint",
    "error_headers",
    "error_response",
    "internal_error",
    "json_response",
    "method_not_allowed",
    "not_found",
    "request_id",
]

logger = logging.getLogger("compatgate")

#: Says who produced an error response: ``gateway`` or ``upstream``.
ERROR_SOURCE_HEADER = "x-compatgate-error-source"
#: On an error that came from the upstream: the provider that answered it.
UPSTREAM_HEADER = "x-compatgate-upstream"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_JSON = "application/json"


def request_id(request: Request) -> str:
    """The client's ``x-request-id`` when it is a sane token, otherwise a new one."""
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return f"req_{os.urandom(16).hex()}"


def json_response(content: bytes, headers: list[tuple[bytes, bytes]], status: int = 200) -> Response:
    response = Response(content, status, media_type=_JSON)
    response.raw_headers.extend(headers)
    return response


def error_response(
    error: GatewayError,
    headers: list[tuple[bytes, bytes]] = [],  # noqa: B006 - never changed
    dialect: Dialect = OPENAI,
    provider: str | None = None,
    request_id: str | None = None,
) -> Response:
    """``error`` in ``dialect``'s format, with ``headers``, the error's own (``Retry-After``...)
    and the headers saying whether it came from the gateway or from ``provider`` upstream."""
    status, content, extra = dialect.error(error, request_id)
    response = json_response(content, headers, status)
    for name, value in extra.items():
        response.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    upstream = isinstance(error, UpstreamError) and provider is not None
    response.raw_headers.append((ERROR_SOURCE_HEADER.encode(), b"upstream" if upstream else b"gateway"))
    if upstream and provider is not None:
        response.raw_headers.append((UPSTREAM_HEADER.encode(), provider.encode("latin-1", "replace")))
    return response


def internal_error(ctx: RequestContext) -> GatewayError:
    """What the client sees of a bug: a 500 that says nothing about it (it is logged)."""
    logger.exception("compatgate: request %s failed", ctx.request_id)
    return GatewayError("The gateway failed to handle this request.", code="internal_error")


async def error_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    """The headers of an error response; only ``x-request-id`` when a `response_headers` hook fails."""
    try:
        return await ctx.gateway.headers(ctx)
    except Exception:
        logger.exception("compatgate: response_headers failed for request %s", ctx.request_id)
        return [(b"x-request-id", ctx.request_id.encode())]


def method_not_allowed(request: Request, allowed: str) -> GatewayError:
    return MethodNotAllowedError(request.method, allowed, request.url.path)


class LocalEndpoint:
    """An endpoint the gateway answers itself (no upstream): authenticate, then the JSON that
    `answer` gives, or an error in ``dialect``'s format. ``methods`` are the ones it serves."""

    name = ""
    methods: tuple[str, ...] = ("GET", "HEAD")
    dialect: Dialect = OPENAI

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def answer(self, ctx: RequestContext) -> bytes:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ctx = RequestContext(self.gateway, request_id(request), self.name, request)
        try:
            if request.method not in self.methods:
                raise method_not_allowed(request, ", ".join(m for m in self.methods if m != "HEAD"))
            ctx.principal = await self.gateway.authenticate(request, self.dialect)
            content = await self.answer(ctx)
            response = json_response(content, await self.gateway.headers(ctx))
        except GatewayError as exc:
            response = error_response(exc, await error_headers(ctx), self.dialect, None, ctx.request_id)
        except Exception:
            response = error_response(internal_error(ctx), [(b"x-request-id", ctx.request_id.encode())])
        await response(scope, receive, send)


class ModelsEndpoint(LocalEndpoint):
    """``GET /models`` and ``GET /models/{model}``, filtered by what the key may use. A request
    with an ``anthropic-version`` header (an Anthropic SDK's) gets Anthropic's shapes: a
    ``ListResponse[ModelInfo]`` paged by ``limit`` (1 to 1000, default 20), ``after_id`` and
    ``before_id``, or one ``ModelInfo``."""

    name = "models"

    async def answer(self, ctx: RequestContext) -> bytes:
        assert ctx.principal is not None
        models = await self.gateway.list_models(ctx.principal)
        wanted = ctx.request.path_params.get("model")
        anthropic = "anthropic-version" in ctx.request.headers
        if wanted is None:
            if anthropic:
                return orjson.dumps(_anthropic_page(models, ctx.request.query_params))
            return orjson.dumps({"object": "list", "data": models})
        found = [m for m in models if m["id"] == wanted]
        if not found:
            raise ModelNotFoundError(f"The model '{wanted}' does not exist.", param="model")
        return orjson.dumps(_anthropic_model(found[0]) if anthropic else found[0])


def _anthropic_model(model: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI model entry as Anthropic's ``ModelInfo`` (``created_at`` from ``created``)."""
    created: int = model["created"] if isinstance(model.get("created"), int) else 0
    stamp = datetime.fromtimestamp(max(created, 0), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": model["id"], "display_name": model.get("display_name") or model["id"],
            "created_at": stamp, "capabilities": None, "max_input_tokens": None, "max_tokens": None}


def _anthropic_page(models: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """One page of Anthropic's model list: ``limit`` models after ``after_id`` (or before
    ``before_id``), in the order of ``GET /models``."""
    limit_text = query.get("limit") or "20"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise InvalidRequestError("limit: Input should be an integer from 1 to 1000.", param="limit")
    limit = int(limit_text)
    ids = [m["id"] for m in models]
    after, before = query.get("after_id"), query.get("before_id")
    if before is not None:
        end = ids.index(before) if before in ids else len(ids)
        start = max(end - limit, 0)
        more = start > 0
    else:
        start = ids.index(after) + 1 if after in ids else 0
        end = min(start + limit, len(ids))
        more = end < len(ids)
    page = [_anthropic_model(m) for m in models[start:end]]
    return {"data": page, "has_more": more, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None}


_UNSUPPORTED = ("fine_tuning", "fine-tunes", "files", "organization", "billing", "dashboard",
                "assistants", "threads", "vector_stores", "batches", "uploads", "evals", "usage")


async def not_found(scope: Scope, receive: Receive, send: Send, dialect: Dialect = OPENAI) -> None:
    """Any route the gateway does not serve: 404 in ``dialect``'s format (OpenAI's)."""
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
    await error_response(error, [(b"x-request-id", request_id(request).encode())], dialect)(scope, receive, send)
