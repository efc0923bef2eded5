"""Providers: what serves a ``[providers.<name>]`` table, and the replies they give.

A provider class sets ``type`` (the ``type = "..."`` it serves) and implements the operation
methods it supports (see `compatgate.operations`); each receives the request context and the
body to send (``model`` already replaced by the upstream model name) and returns a `Reply`, or
for ``stream: true`` a `ChunkStream` of OpenAI-shaped chunks (a `RawReply` for bytes relayed as
they are). Providers that convert another protocol build the OpenAI shapes themselves; the
gateway does the rest (usage, truncation checks, SSE framing, the client's protocol). A
provider that builds URLs from a model name puts it in with `segment`.

`HTTPProvider` adds the pooled upstream client and helpers to post JSON and read an
event stream with upstream errors already mapped.
"""

from __future__ import annotations

import builtins
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import anyio
import httpx2
import orjson

from .config import MODEL_KEYS, PROVIDER_KEYS, ModelConfig, ProviderConfig
from .exceptions import ConfigError, GatewayError, NotFoundError, UpstreamError, UpstreamStreamError
from .http import create_client, create_transport, default_headers, request_errors, stream_errors, timeout, upstream_error
from .chunks import OpenAIChunks, decode_event
from .replies import Chunk, ChunkStream, RawReply, Reply
from .settings import UNKNOWN_NAMED_KEY, Table
from .sse import SSEDecoder, ServerSentEvent, SSEError
from .uploads import Form
from .usage import Attempt

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["Chunk", "ChunkStream", "HTTPProvider", "OpenAIChunks", "Provider", "RawReply", "Reply", "decode_event",
           "segment"]

Body = dict[str, Any]


class Provider:
    """Base class of providers. One instance serves one ``[providers.<name>]`` table.

    ``options`` and ``model_options`` declare the extra keys (name -> type) that the
    provider table and its ``[[models]]`` entries may hold; any other key is refused at start.
    """

    type: ClassVar[str] = ""
    options: ClassVar[Mapping[str, builtins.type]] = {}
    model_options: ClassVar[Mapping[str, builtins.type]] = {}

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        _check_options(self.options, config.options, f"providers.{config.name}", PROVIDER_KEYS, self.type)

    @property
    def owned_by(self) -> str:
        """What ``GET /models`` shows as ``owned_by`` (the ``owned_by`` key, else the name)."""
        return self.config.owned_by or self.name

    def option(self, name: str, default: Any = None) -> Any:
        return self.config.options.get(name, default)

    def check_model(self, model: ModelConfig) -> None:
        """Refuse a ``[[models]]`` entry this provider cannot serve (raise `ConfigError`)."""
        _check_options(self.model_options, model.options, f"models {model.name!r}", MODEL_KEYS, self.type)

    async def start(self) -> None:
        """Open connections; called once, in the serving event loop, before the first use."""

    async def upstream_models(self, ctx: RequestContext) -> list[str] | None:
        """The model ids the upstream lists (``check --probe`` proves the URL and key with it);
        None: no upstream to ask. An upstream failure raises its `UpstreamError`."""
        return None

    async def aclose(self) -> None:
        """Close what `start` opened."""

    async def chat_completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        raise self.unsupported(ctx)

    async def completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        raise self.unsupported(ctx)

    async def embeddings(self, ctx: RequestContext, body: Body) -> Reply:
        raise self.unsupported(ctx)

    async def responses(self, ctx: RequestContext, body: Body) -> Reply | RawReply:
        """``POST /responses`` natively (see `serves`); otherwise the gateway serves it on
        `chat_completions`."""
        raise self.unsupported(ctx)

    async def chat_input_tokens(self, ctx: RequestContext, body: Body) -> Reply:
        """The input tokens of a chat completions request ``body`` as the upstream counts them,
        without generating anything: ``Reply({"object": "response.input_tokens",
        "input_tokens": N})``. The pivot of the ``count_tokens`` operations of other protocols
        (Anthropic's, Gemini's) for providers that have a counter; without it they estimate."""
        raise self.unsupported(ctx)

    async def images_generations(self, ctx: RequestContext, body: Body) -> Reply:
        raise self.unsupported(ctx)

    async def images_edits(self, ctx: RequestContext, body: Form) -> Reply:
        raise self.unsupported(ctx)

    async def audio_transcriptions(self, ctx: RequestContext, body: Form) -> Reply | RawReply:
        raise self.unsupported(ctx)

    async def audio_translations(self, ctx: RequestContext, body: Form) -> Reply | RawReply:
        raise self.unsupported(ctx)

    async def audio_speech(self, ctx: RequestContext, body: Body) -> Reply | RawReply:
        raise self.unsupported(ctx)

    async def moderations(self, ctx: RequestContext, body: Body) -> Reply:
        raise self.unsupported(ctx)

    async def realtime(self, ctx: RequestContext, body: Body) -> Any:
        """Open the upstream realtime WebSocket: an object with aiohttp's client WebSocket API
        (``send_str``, ``send_bytes``, async iteration of messages, ``close``, ``close_code``)
        whose ``close`` releases everything it holds."""
        raise self.unsupported(ctx)

    def serves(self, method: str) -> bool:
        """Whether this provider serves the operation method ``method`` (``"chat_completions"``,
        ``"messages"``...) itself: by default, whether its class defines it. An operation that
        has a `Conversion` is served through `chat_completions` when this is False."""
        implementation = getattr(type(self), method, None)
        return implementation is not None and implementation is not getattr(Provider, method, None)

    def unsupported(self, ctx: RequestContext) -> NotFoundError:
        return NotFoundError(
            f"The model {ctx.model!r} does not support {ctx.endpoint.replace('.', '/')} "
            f"(provider type {self.type!r}).",
            code="unsupported_endpoint",
        )


class HTTPProvider(Provider):
    """A provider that calls an HTTP upstream through one pooled transport.

    `send` hands its requests straight to the transport (``httpx2.Request`` in,
    ``httpx2.Response`` out): the client layers it skips (auth flows, redirects, cookies,
    event hooks) have nothing to do for an API call and cost a measurable part of each one.
    ``client`` is an ``httpx2.AsyncClient`` over the same pool, for other calls a provider makes.
    """

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        if not config.base_url:
            raise ConfigError(f"providers.{config.name}.base_url is required for type {self.type!r}")
        self._client: httpx2.AsyncClient | None = None
        self._transport: httpx2.AsyncBaseTransport | None = None
        self._urls: dict[str, httpx2.URL] = {}
        self._base_headers = default_headers(config)
        self._timeout = timeout(config).as_dict()

    @property
    def client(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = create_client(self.config, transport=self.transport)
        return self._client

    @property
    def transport(self) -> httpx2.AsyncBaseTransport:
        if self._transport is None:
            self._transport = create_transport(self.config)
        return self._transport

    # Where the upstream lists its models (relative to base_url), for `upstream_models`.
    models_path = "/models"

    async def start(self) -> None:
        self.transport  # noqa: B018 - create the pool now

    async def upstream_models(self, ctx: RequestContext) -> list[str] | None:
        """The ``id`` of each entry of ``data`` in the answer to ``GET models_path``."""
        from .probe import get_json, listed_ids

        return listed_ids(await get_json(self, ctx, self.models_path), "data", "id")

    async def aclose(self) -> None:
        client, transport = self._client, self._transport
        self._client = self._transport = None
        if client is not None:
            await client.aclose()  # closes the transport too
        elif transport is not None:
            await transport.aclose()

    def url(self, path: str) -> httpx2.URL:
        """The absolute URL of ``path`` under ``base_url``, parsed once (URL parsing is a
        measurable part of each upstream call)."""
        url = self._urls.get(path)
        if url is None:
            url = httpx2.URL(self.config.base_url.rstrip("/") + "/" + path.lstrip("/"))  # type: ignore[union-attr]
            if len(self._urls) < 1024:
                self._urls[path] = url
        return url

    @functools.cached_property
    def secrets(self) -> tuple[str | None, ...]:
        """What must never reach a client: the key, header values, URL credentials."""
        url = httpx2.URL(self.config.base_url or "")
        return (self.config.api_key, *self.config.headers.values(), url.password, url.username)

    def headers(self, ctx: RequestContext) -> dict[str, str]:
        """Headers of every upstream call (override to authenticate differently)."""
        headers = {"content-type": "application/json", "x-request-id": ctx.request_id}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def received(self, ctx: RequestContext, response: httpx2.Response) -> None:
        """Called by `send` with every upstream response, error statuses included, before its
        body is read (override to keep upstream headers, e.g. in ``ctx.response_headers``)."""

    def error_for(self, status: int, content: bytes) -> UpstreamError:
        """The `UpstreamError` for an upstream answer with error ``status`` and body ``content``
        (override to read an upstream's own error format; scrub `secrets` from what you keep)."""
        return upstream_error(status, content, secrets=self.secrets)

    async def send(
        self, ctx: RequestContext, path: str, body: Body, *, stream: bool = False
    ) -> httpx2.Response:
        """POST ``body`` as JSON (a `Form` as multipart/form-data, its upload streamed) with
        `headers` and those of the `upstream_headers` hooks; an
        upstream error status becomes an `UpstreamError` (keeping its ``Retry-After``). The
        call is recorded in ``ctx.attempts``, between the `upstream_attempt` and
        `upstream_attempt_done` hooks."""
        hooks = ctx.gateway.hooks
        watched = hooks.implemented("upstream_attempt_done")
        if hooks.implemented("upstream_attempt"):
            await hooks.upstream_attempt(ctx=ctx, provider=self)
        headers = {**self._base_headers, **self.headers(ctx)}
        if hooks.implemented("upstream_headers"):
            for extra in await hooks.upstream_headers(ctx=ctx, provider=self):
                for name, value in (extra or {}).items():
                    headers.setdefault(name.lower(), value)
        url, extensions = self.url(path), {"timeout": self._timeout}
        if isinstance(body, Form):
            headers["content-type"] = body.content_type
            request = httpx2.Request("POST", url, content=body.stream(), headers=headers, extensions=extensions)
        else:  # the framing headers set here spare httpx2 its generic request preparation
            content = orjson.dumps(body)
            if stream:  # kept while the stream lasts: orjson's bytes hold at least 4 KiB, a copy fits
                content = bytes(memoryview(content))
            headers["host"], headers["content-length"] = url.netloc.decode("ascii"), str(len(content))
            request = httpx2.Request(
                "POST", url, headers=headers, stream=httpx2.ByteStream(content), extensions=extensions
            )
            request.read()
        started = time.perf_counter()
        model = body.get("model") if isinstance(body.get("model"), str) else None
        try:
            with request_errors(self.name, request):
                response = await self.transport.handle_async_request(request)
                try:
                    self.received(ctx, response)
                    if response.status_code >= 400 or not stream:
                        await response.aread()  # closes the response at the end
                except BaseException:
                    await response.aclose()
                    raise
                if response.status_code >= 400:
                    error = self.error_for(response.status_code, response.content)
                    if "retry-after" in response.headers:
                        error.headers["retry-after"] = response.headers["retry-after"]
                    raise error
        except GatewayError as exc:
            elapsed = (time.perf_counter() - started) * 1000.0
            attempt = Attempt(self.name, model, exc.status_code, exc.message, elapsed)
            ctx.attempts.append(attempt)
            if watched:
                await hooks.upstream_attempt_done(ctx=ctx, provider=self, attempt=attempt)
            if isinstance(body, Form) and body.failure is not None:
                raise body.failure from None  # the client's upload broke off, not the upstream
            raise
        elapsed = (time.perf_counter() - started) * 1000.0
        attempt = Attempt(self.name, model, response.status_code, None, elapsed)
        ctx.attempts.append(attempt)
        if watched:
            try:
                await hooks.upstream_attempt_done(ctx=ctx, provider=self, attempt=attempt)
            except BaseException:  # cancelled meanwhile: the response would be nobody's to close
                with anyio.CancelScope(shield=True):
                    await response.aclose()
                raise
        return response

    async def post_json(self, ctx: RequestContext, path: str, body: Body) -> Reply:
        """POST and decode a JSON answer."""
        response = await self.send(ctx, path, body)
        return _json_reply(response.content)

    async def passthrough(self, ctx: RequestContext, path: str, body: Body) -> Reply | RawReply:
        """POST ``body`` and relay the answer: a JSON object as a `Reply`, anything else
        (audio, text, an event stream) as a `RawReply` streamed as it comes."""
        response = await self.send(ctx, path, body, stream=True)
        media_type = response.headers.get("content-type", "application/octet-stream")
        if media_type.startswith("application/json"):
            try:
                with stream_errors(self.name, response):
                    await response.aread()
            finally:
                await response.aclose()
            return _json_reply(response.content)
        return RawReply(self.body_bytes(response), media_type)

    async def body_bytes(self, response: httpx2.Response) -> AsyncIterator[bytes]:
        """The body of a streamed response as it comes; closed at the end or when dropped."""
        try:
            with stream_errors(self.name, response):
                async for data in response.aiter_bytes():
                    yield data
        finally:
            await response.aclose()

    async def events(self, response: httpx2.Response) -> AsyncIterator[ServerSentEvent]:
        """The server-sent events of a streamed response; the response is closed at the end,
        on error and when the consumer closes the iterator early."""
        async with aclosing(self.event_batches(response)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def event_batches(self, response: httpx2.Response) -> AsyncGenerator[list[ServerSentEvent], None]:
        """`events`, grouped by the network read that completed them (never empty)."""
        decoder = SSEDecoder()
        try:
            with stream_errors(self.name, response):
                async for data in response.aiter_bytes():
                    try:
                        events = decoder.feed(data)
                    except SSEError as exc:
                        raise UpstreamStreamError(f"The upstream stream is invalid: {exc}") from None
                    if events:
                        yield events
        finally:
            await response.aclose()

    def openai_chunks(self, response: httpx2.Response) -> OpenAIChunks:
        """Chunks of an OpenAI-format stream, up to ``data: [DONE]``."""
        return OpenAIChunks(self.event_batches(response))


def segment(text: str) -> str:
    """``text`` as one URL path segment: every character but unreserved ones percent-encoded, so
    that no model name can add a path segment, a query or a fragment to an upstream URL."""
    return quote(text, safe="-._~:@")


def _json_reply(content: bytes) -> Reply:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise upstream_error(502, b"The upstream answered with a body that is not JSON.") from None
    if not isinstance(data, dict):
        raise upstream_error(502, b"The upstream answered with JSON that is not an object.")
    return Reply(data, content)


def _check_options(allowed: Mapping[str, type], given: Mapping[str, Any], where: str,
                   common: Iterable[str], type_: str) -> None:
    """Check a provider table's (or a ``[[models]]`` entry's) extra keys against its type's."""
    table = Table(given, where)
    listed = (f"keys of every entry: {', '.join(sorted(common))}; "
              f"extra keys of type {type_!r}: {', '.join(sorted(allowed)) or 'none'}")
    table.only([*common, *allowed], message=UNKNOWN_NAMED_KEY, listed=listed)
    for key, kind in allowed.items():
        table.value(key, kind)
