"""The ``type = "gemini"`` provider: the Gemini API behind OpenAI chat completions (streamed
or not) and embeddings.

``POST {base_url}/{api_version}/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:batchEmbedContents``, the key in the
``x-goog-api-key`` header (never in the URL, so that it cannot reach a log).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from compatgate import (
    Chunk,
    ChunkStream,
    ConfigError,
    HTTPProvider,
    ModelConfig,
    ProviderConfig,
    Reply,
    RequestContext,
    UpstreamError,
)
from compatgate.probe import get_json, listed_ids

from .embeddings import BATCH, batch_request, embedding_inputs, embedding_response, embedding_vectors
from .errors import http_error
from .request import Options, build_request
from .response import StreamConverter, chat_completion

if TYPE_CHECKING:
    import httpx2

__all__ = ["GeminiProvider"]

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

    def _path(self, model: str, method: str) -> str:
        return f"/{self.api_version}/{quote(_resource(model), safe='/')}:{method}"

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
