"""Default plugin: the ``type = "openai"`` provider, for any OpenAI-compatible upstream
(OpenAI, vLLM, Ollama, Groq, DeepSeek, Qwen...). Bodies pass through unchanged but for
``model``; streams always ask for the usage chunk (unless ``stream_usage = false``) so that
usage is exact, and the gateway strips it when the client did not ask for it. Answers of chat,
completions and embeddings are made to follow the OpenAI schema as ``conform`` says
(`compatgate.conform`: ``"auto"`` by default, ``"strict"``, ``"off"``). Images, audio,
moderations and realtime pass through; ``/responses`` passes through with
``native_responses = true`` and is otherwise served on ``/chat/completions`` (for upstreams
that only have chat).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import ProviderConfig
from ..conform import ConformingStream, Mode, StreamConformer, conform_mode, conform_reply
from ..context import RequestContext
from ..hookspecs import hookimpl
from ..provider import Body, ChunkStream, HTTPProvider, Provider, RawReply, Reply
from ..realtime import connect_upstream
from ..responses import native_events
from ..uploads import Form


class OpenAIProvider(HTTPProvider):
    type = "openai"
    options = {"stream_usage": bool, "native_responses": bool, "conform": str}

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.conform: Mode = conform_mode(config.options.get("conform"), f"providers.{config.name}")

    async def chat_completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        return await self._generate(ctx, "/chat/completions", body, "chat.completions")

    async def completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        return await self._generate(ctx, "/completions", body, "completions")

    async def embeddings(self, ctx: RequestContext, body: Body) -> Reply:
        return self._conformed(ctx, "embeddings", body, await self.post_json(ctx, "/embeddings", body))

    def serves(self, method: str) -> bool:
        if method == "responses":
            return bool(self.option("native_responses", False))
        return super().serves(method)

    async def responses(self, ctx: RequestContext, body: Body) -> Reply | RawReply:
        if body.get("stream") is not True:
            return await self.post_json(ctx, "/responses", body)
        return native_events(self, await self.send(ctx, "/responses", body, stream=True))

    async def images_generations(self, ctx: RequestContext, body: Body) -> Reply:
        return await self.post_json(ctx, "/images/generations", body)

    async def images_edits(self, ctx: RequestContext, body: Form) -> Reply:
        return await self.post_json(ctx, "/images/edits", body)

    async def audio_transcriptions(self, ctx: RequestContext, body: Form) -> Reply | RawReply:
        return await self.passthrough(ctx, "/audio/transcriptions", body)

    async def audio_translations(self, ctx: RequestContext, body: Form) -> Reply | RawReply:
        return await self.passthrough(ctx, "/audio/translations", body)

    async def audio_speech(self, ctx: RequestContext, body: Body) -> Reply | RawReply:
        return await self.passthrough(ctx, "/audio/speech", body)

    async def moderations(self, ctx: RequestContext, body: Body) -> Reply:
        return await self.post_json(ctx, "/moderations", body)

    async def realtime(self, ctx: RequestContext, body: Body) -> Any:
        return await connect_upstream(self, ctx, body)

    async def _generate(self, ctx: RequestContext, path: str, body: Body, kind: str) -> Reply | ChunkStream:
        if body.get("stream") is not True:
            return self._conformed(ctx, kind, body, await self.post_json(ctx, path, body))
        if self.option("stream_usage", True):
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        response = await self.send(ctx, path, body, stream=True)
        chunks = self.openai_chunks(response)
        if self.conform == "off":
            return chunks
        conformer = StreamConformer("chat" if kind == "chat.completions" else "completion",
                                    strict=self.conform == "strict", request=body, model=ctx.model)
        return ConformingStream(chunks, conformer, lambda: chunks.done)

    def _conformed(self, ctx: RequestContext, kind: str, body: Body, reply: Reply) -> Reply:
        """``reply`` made to follow the OpenAI schema (see `compatgate.conform`): the upstream's
        own bytes when they already do (``conform = "auto"``)."""
        if self.conform == "off":
            return reply
        raw = conform_reply(kind, reply.data, reply.raw, mode=self.conform, request=body, model=ctx.model,
                            secrets=self.secrets)
        return Reply(reply.data, raw)


@hookimpl(trylast=True)
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenAIProvider)
