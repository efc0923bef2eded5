"""The ``type = "anthropic"`` provider: OpenAI chat completions served by Anthropic's Messages
API (``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

import httpx2

from compatgate import (
    ChunkStream,
    HTTPProvider,
    ModelConfig,
    ProviderConfig,
    Reply,
    ServerSentEvent,
    UpstreamError,
)

from .errors import map_upstream_error, rate_limit_headers
from .request import build_request
from .response import openai_response
from .settings import MODEL_OPTIONS, PROVIDER_OPTIONS, Settings
from .stream import TerminatedResponse, openai_stream

if TYPE_CHECKING:
    from compatgate import RequestContext

__all__ = ["AnthropicProvider"]

Body = dict[str, Any]


class AnthropicProvider(HTTPProvider):
    """Claude through the OpenAI Chat Completions API (see the plugin's README)."""

    type = "anthropic"
    options = PROVIDER_OPTIONS
    model_options = MODEL_OPTIONS

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.settings = Settings().merge(config.options, f"providers.{config.name}")
        self._models: dict[str, Settings] = {}
        base = (config.base_url or "").rstrip("/")
        self.path = "/messages" if base.endswith("/v1") else "/v1/messages"
        self.models_path = ("/models" if base.endswith("/v1") else "/v1/models") + "?limit=1000"

    @property
    def owned_by(self) -> str:
        return self.config.owned_by or "anthropic"

    def check_model(self, model: ModelConfig) -> None:
        super().check_model(model)
        self._models[model.name] = self.settings.merge(model.options, f"models {model.name!r}")

    def settings_for(self, model: ModelConfig | None) -> Settings:
        """The settings of a configured model (the provider's for a model routed without one)."""
        if model is None:
            return self.settings
        settings = self._models.get(model.name)
        if settings is None:
            self.check_model(model)
            settings = self._models[model.name]
        return settings

    def headers(self, ctx: RequestContext) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "x-request-id": ctx.request_id,
            "anthropic-version": self.settings.anthropic_version,
        }
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def error_for(self, status: int, content: bytes) -> UpstreamError:
        """Anthropic's error answer in OpenAI terms (see `map_upstream_error`)."""
        return map_upstream_error(super().error_for(status, content))

    def received(self, ctx: RequestContext, response: httpx2.Response) -> None:
        """Keep the upstream's rate-limit headers, in OpenAI terms, for the client's response
        (errors included)."""
        ctx.response_headers.update(rate_limit_headers(response.headers))

    async def chat_completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        settings = self.settings_for(ctx.route.model if ctx.route else None)
        conversion = build_request(body, settings)
        if not conversion.stream:
            reply = await self.post_json(ctx, self.path, conversion.body)
            return Reply(openai_response(reply.data, conversion.json_tool, body["model"]))
        response = await self.send(ctx, self.path, conversion.body, stream=True)
        batches = self.event_batches(cast(httpx2.Response, TerminatedResponse(response)))
        upstream = cast(AsyncGenerator[list[ServerSentEvent], None], batches)  # an async generator
        return openai_stream(upstream, conversion.json_tool, body["model"])
