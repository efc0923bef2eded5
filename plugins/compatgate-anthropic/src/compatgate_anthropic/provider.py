"""The ``type = "anthropic"`` provider: OpenAI chat completions served by Anthropic's Messages
API (``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``), and the
Anthropic Messages API relayed natively (`AnthropicProvider.messages`,
`AnthropicProvider.messages_count_tokens`): the client's body, ``anthropic-version`` and
``anthropic-beta`` go upstream as they are, with the provider's key; and Anthropic's token
counter for a chat completions request (`AnthropicProvider.chat_input_tokens`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

import httpx2

from compatgate import (
    ChunkStream,
    HTTPProvider,
    ModelConfig,
    ProviderConfig,
    RawReply,
    Reply,
    ServerSentEvent,
    UpstreamError,
)

from .errors import map_upstream_error, rate_limit_headers
from .inbound import message_usage, strip_gateway_thinking
from .native import MEDIA_TYPE, relay
from .request import build_request
from .response import openai_response
from .settings import MODEL_OPTIONS, PROVIDER_OPTIONS, Settings
from .stream import TerminatedResponse, openai_stream

if TYPE_CHECKING:
    from compatgate import RequestContext

__all__ = ["AnthropicProvider"]

Body = dict[str, Any]

_STATE = "anthropic"  # ctx.state key: the headers of a native request


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
        native = ctx.state.get(_STATE)
        if native:
            headers.update(native)
        return headers

    def error_for(self, status: int, content: bytes) -> UpstreamError:
        """Anthropic's error answer in OpenAI terms (see `map_upstream_error`)."""
        return map_upstream_error(super().error_for(status, content))

    def received(self, ctx: RequestContext, response: httpx2.Response) -> None:
        """Keep the upstream's rate-limit headers for the client's response (errors included):
        in OpenAI terms for chat completions, as they are (``anthropic-ratelimit-*``) for a
        native Anthropic request, whose clients read them (Claude Code shows its limits)."""
        if ctx.state.get(_STATE):
            ctx.response_headers.update(
                (name, value) for name, value in response.headers.items()
                if name.lower().startswith("anthropic-ratelimit-")
            )
        else:
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

    # -- the Anthropic Messages API, relayed ------------------------------------------------

    async def messages(self, ctx: RequestContext, body: Body) -> Reply | RawReply:
        """``POST /v1/messages`` with the client's body (``model`` already the upstream's;
        thinking blocks signed by the gateway for a converted answer taken out, see
        `strip_gateway_thinking`): the upstream's JSON as a `Reply` (``raw``: its bytes;
        ``usage``: its usage), or for ``stream: true`` its event stream relayed byte for byte as a
        `RawReply` whose ``usage`` and ``generated`` follow the events (see `native`). Upstream
        errors keep their status (`error_for`)."""
        path = self._native(ctx, self.path)
        body = strip_gateway_thinking(body, ctx.gateway.signer)
        if body.get("stream") is not True:
            reply = await self.post_json(ctx, path, body)
            reply.usage = message_usage(reply.data)
            return reply
        response = await self.send(ctx, path, body, stream=True)
        reply = RawReply(_nothing(), MEDIA_TYPE)
        reply.chunks = relay(response, reply, self.name)
        return reply

    async def messages_count_tokens(self, ctx: RequestContext, body: Body) -> Reply:
        """``POST /v1/messages/count_tokens`` with the client's body: Anthropic's own count."""
        body = strip_gateway_thinking(body, ctx.gateway.signer)
        return await self.post_json(ctx, self._native(ctx, f"{self.path}/count_tokens"), body)

    async def chat_input_tokens(self, ctx: RequestContext, body: Body) -> Reply:
        """Anthropic's count of the input tokens of a chat completions request: the request
        converted as `chat_completions` converts it, sent to ``/v1/messages/count_tokens``."""
        settings = self.settings_for(ctx.route.model if ctx.route else None)
        converted = build_request({**body, "stream": False}, settings).body
        request = {key: converted[key] for key in _COUNTED if key in converted}
        reply = await self.post_json(ctx, f"{self.path}/count_tokens", request)
        tokens = reply.data.get("input_tokens")
        return Reply({"object": "response.input_tokens", "input_tokens": tokens})

    def _native(self, ctx: RequestContext, path: str) -> str:
        """Prepare the headers of a native call (see `headers`); the path, with ``?beta=true``
        when the client used it."""
        request = ctx.request.headers
        native = {"anthropic-version": request.get("anthropic-version") or self.settings.anthropic_version}
        betas = [*_betas([self._base_headers.get("anthropic-beta", "")]), *_betas(request.getlist("anthropic-beta"))]
        if betas:
            native["anthropic-beta"] = ",".join(dict.fromkeys(betas))
        ctx.state[_STATE] = native
        return f"{path}?beta=true" if ctx.request.query_params.get("beta") == "true" else path


# The fields of a Messages request that count_tokens accepts.
_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config")


def _betas(values: list[str]) -> list[str]:
    return [beta.strip() for value in values for beta in value.split(",") if beta.strip()]


async def _nothing() -> AsyncGenerator[bytes, None]:
    return
    yield b""  # pragma: no cover - makes this an async generator
