"""The ``type = "gemini"`` provider: the Gemini API behind OpenAI chat completions (streamed
or not) and embeddings, and natively for Gemini clients (``generate_content``,
``count_tokens``, ``embed_content``, ``batch_embed_contents``: the client's body relayed), and
Gemini's token counter for a chat completions request (``chat_input_tokens``).

``POST {base_url}/{api_version}/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:countTokens``, ``:embedContent`` and
``:batchEmbedContents``, the key in the ``x-goog-api-key`` header (never in the URL, so that it
cannot reach a log). The model name is one percent-encoded path segment: ``/``, ``..``, ``?``,
``#``, ``%`` or ``:`` in it can never change the path or the query.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import orjson

from compatgate import (
    Chunk,
    ChunkStream,
    ConfigError,
    HTTPProvider,
    ModelConfig,
    ProviderConfig,
    RawReply,
    Reply,
    RequestContext,
    UpstreamError,
    Usage,
)
from compatgate.probe import get_json, listed_ids

from .embeddings import (
    BATCH,
    batch_request,
    embedding_inputs,
    embedding_response,
    embedding_vectors,
)
from .errors import http_error
from .inbound import unwrap_signatures
from .native import json_reply, relay_stream
from .request import Options, build_request
from .response import StreamConverter, chat_completion

if TYPE_CHECKING:
    import httpx2

__all__ = ["GeminiProvider", "resource_path"]

Body = dict[str, Any]

# Options a provider table and a [[models]] entry may both set (the model's value wins).
_REQUEST_OPTIONS: dict[str, type] = {
    "tool_schema": str,
    "thinking": str,
    "include_thoughts": bool,
    "remote_files": bool,
    "fill_thought_signatures": bool,
    "safety_settings": list,
    "task_type": str,
}
_CHOICES = {"tool_schema": ("openapi", "json_schema"), "thinking": ("auto", "level", "budget")}


class GeminiProvider(HTTPProvider):
    """Serves ``[providers.<name>]`` tables with ``type = "gemini"``."""

    type = "gemini"
    options = {"api_version": str, **_REQUEST_OPTIONS}
    model_options = _REQUEST_OPTIONS

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        _check_choices(config.options, f"providers.{config.name}")
        self.api_version = str(self.option("api_version", "v1beta")).strip("/")
        self.models_path = f"/{self.api_version}/models?pageSize=1000"

    @property
    def owned_by(self) -> str:
        return self.config.owned_by or "google"

    def check_model(self, model: ModelConfig) -> None:
        super().check_model(model)
        _check_choices(model.options, f"models {model.name!r}")

    def headers(self, ctx: RequestContext) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-request-id": ctx.request_id}
        if self.config.api_key:
            headers["x-goog-api-key"] = self.config.api_key
        return headers

    def error_for(self, status: int, content: bytes) -> UpstreamError:
        return http_error(status, content, self.secrets)

    async def upstream_models(self, ctx: RequestContext) -> list[str] | None:
        """The ``models`` of ``GET /{api_version}/models``, without their ``models/`` prefix."""
        return listed_ids(await get_json(self, ctx, self.models_path), "models", "name", "models/")

    async def chat_completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        model = body["model"]
        request, names = build_request(body, model, self._options(ctx))
        n = body.get("n") or 1
        if body.get("stream") is not True:
            reply = await self.post_json(ctx, self._path(model, "generateContent"), request)
            return Reply(chat_completion(reply.data, model, names, n))
        path = self._path(model, "streamGenerateContent") + "?alt=sse"
        response = await self.send(ctx, path, request, stream=True)
        converter = StreamConverter(model, names, n, self.secrets)
        return _Stream(self._chunks(response, converter), response)

    async def embeddings(self, ctx: RequestContext, body: Body) -> Reply:
        model = body["model"]
        texts = embedding_inputs(body)
        task_type = self._setting(ctx, "task_type", None)
        path = self._path(model, "batchEmbedContents")
        vectors: list[list[float]] = []
        tokens: int | None = 0
        for start in range(0, len(texts), BATCH):
            batch = texts[start:start + BATCH]
            reply = await self.post_json(ctx, path, batch_request(_resource(model), batch, body, task_type))
            vectors += embedding_vectors(reply.data, len(batch))
            meta = reply.data.get("usageMetadata")
            count = meta.get("promptTokenCount") if isinstance(meta, Mapping) else None
            tokens = tokens + count if isinstance(count, int) and tokens is not None else None
        return Reply(embedding_response(model, texts, vectors, body, tokens))

    async def _chunks(self, response: httpx2.Response, converter: StreamConverter) -> AsyncGenerator[Chunk, None]:
        # Gemini's events are JSON objects like OpenAI's (and never "[DONE]"): the core decodes
        # and checks them. It is an async generator (annotated as an iterator): close it with us.
        events = cast(AsyncGenerator[Chunk, None], self.openai_chunks(response))
        async with aclosing(events):
            async for event in events:
                for chunk in converter.feed(event.data):
                    yield Chunk(chunk)
        for chunk in converter.end():
            yield Chunk(chunk)

    async def generate_content(self, ctx: RequestContext, body: Body) -> RawReply:
        """A Gemini client's ``GenerateContentRequest`` relayed natively. ``body["model"]`` is
        the upstream model, ``body["stream"]`` whether to stream, ``body["sse"]`` (default
        true) the stream's framing for the client (false: the JSON array); the three are not
        sent. The gateway's own ``thoughtSignature`` envelopes in the history are resolved
        first (`unwrap_signatures`). See `native`."""
        model, stream = body["model"], body.get("stream") is True
        sse = body.get("sse") is not False
        request = {key: value for key, value in body.items() if key not in ("model", "stream", "sse")}
        request = unwrap_signatures(request, model=ctx.model or model, signer=ctx.gateway.signer)
        if not stream:
            reply = await self.post_json(ctx, self._path(model, "generateContent"), request)
            return json_reply(reply.raw or orjson.dumps(reply.data), reply.data)
        path = self._path(model, "streamGenerateContent") + "?alt=sse"
        response = await self.send(ctx, path, request, stream=True)
        return relay_stream(self, response, sse=sse, candidates=_candidates(request), secrets=self.secrets)

    async def count_tokens(self, ctx: RequestContext, body: Body) -> Reply:
        """``countTokens`` relayed (a nested ``generateContentRequest`` names the upstream model)."""
        model, request = body["model"], _strip(body)
        for key in ("generateContentRequest", "generate_content_request"):
            if isinstance(request.get(key), Mapping):
                request[key] = {**request[key], "model": _resource(model)}
        return await self.post_json(ctx, self._path(model, "countTokens"), request)

    async def chat_input_tokens(self, ctx: RequestContext, body: Body) -> Reply:
        """Gemini's count of the input tokens of a chat completions request: the request
        converted as `chat_completions` converts it, counted by ``countTokens`` (system
        instruction and tools included)."""
        model = body["model"]
        request, _ = build_request({**body, "stream": False}, model, self._options(ctx))
        counted = {"generateContentRequest": {**request, "model": _resource(model)}}
        reply = await self.post_json(ctx, self._path(model, "countTokens"), counted)
        tokens = reply.data.get("totalTokens")
        return Reply({"object": "response.input_tokens", "input_tokens": tokens if isinstance(tokens, int) else None})

    async def embed_content(self, ctx: RequestContext, body: Body) -> Reply:
        """``embedContent`` relayed (Gemini reports no usage: the gateway's estimate of the
        input is recorded, flagged as such)."""
        reply = await self.post_json(ctx, self._path(body["model"], "embedContent"), _strip(body))
        reply.usage = _estimated(ctx)
        return reply

    async def batch_embed_contents(self, ctx: RequestContext, body: Body) -> Reply:
        """``batchEmbedContents`` relayed, every request naming the upstream model (Gemini
        requires it to be the model of the URL)."""
        model, request = body["model"], _strip(body)
        requests = request.get("requests")
        if isinstance(requests, list):
            request["requests"] = [{**item, "model": _resource(model)} if isinstance(item, Mapping) else item
                                   for item in requests]
        reply = await self.post_json(ctx, self._path(model, "batchEmbedContents"), request)
        reply.usage = _estimated(ctx)
        return reply

    def _path(self, model: str, method: str) -> str:
        return f"/{self.api_version}/{resource_path(model)}:{method}"

    def _setting(self, ctx: RequestContext, name: str, default: Any) -> Any:
        model = ctx.route.model if ctx.route is not None else None
        if model is not None and name in model.options:
            return model.options[name]
        return self.option(name, default)

    def _options(self, ctx: RequestContext) -> Options:
        return Options(
            json_schema=self._setting(ctx, "tool_schema", "openapi") == "json_schema",
            include_thoughts=self._setting(ctx, "include_thoughts", None),
            thinking=self._setting(ctx, "thinking", "auto"),
            remote_files=self._setting(ctx, "remote_files", True),
            fill_signatures=self._setting(ctx, "fill_thought_signatures", False),
            safety_settings=tuple(self._setting(ctx, "safety_settings", ())),
        )


class _Stream:
    """The chunk stream of one request; closing it closes the upstream response at once, even
    when the consumer never started iterating."""

    def __init__(self, chunks: AsyncGenerator[Chunk, None], response: httpx2.Response) -> None:
        self._chunks = chunks
        self._response = response

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._chunks

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            await self._response.aclose()


def resource_path(model: str) -> str:
    """The resource name of ``model`` for a URL: its name percent-encoded as one segment."""
    for prefix in ("models/", "tunedModels/"):
        if model.startswith(prefix):
            return prefix + quote(model[len(prefix):], safe="")
    return "models/" + quote(model, safe="")


def _estimated(ctx: RequestContext) -> Usage:
    prompt = ctx.units.prompt_tokens if ctx.units is not None else 0
    return Usage(prompt, 0, prompt, estimated=True)


def _strip(body: Body) -> Body:
    return {key: value for key, value in body.items() if key not in ("model", "stream")}


def _candidates(request: Mapping[str, Any]) -> int:
    config = request.get("generationConfig", request.get("generation_config"))
    count = config.get("candidateCount", config.get("candidate_count")) if isinstance(config, Mapping) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1


def _resource(model: str) -> str:
    """The Gemini resource name of ``model`` (``models/...`` unless already qualified)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def _check_choices(options: Mapping[str, Any], where: str) -> None:
    for key, allowed in _CHOICES.items():
        if key in options and options[key] not in allowed:
            raise ConfigError(f"{where}.{key} must be one of {', '.join(map(repr, allowed))}")
    settings = options.get("safety_settings")
    if settings is not None and not all(isinstance(s, Mapping) for s in settings):
        raise ConfigError(f"{where}.safety_settings must be an array of tables (category, threshold)")
