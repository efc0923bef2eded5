"""Default plugin: the ``type = "openai"`` provider, for any OpenAI-compatible upstream
(OpenAI, vLLM, Ollama, Groq, DeepSeek, Qwen...). Bodies pass through unchanged but for
``model``; streams always ask for the usage chunk (unless ``stream_usage = false``) so that
usage is exact, and the gateway strips it when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..context import RequestContext
from ..hookspecs import hookimpl
from ..provider import Body, ChunkStream, HTTPProvider, Provider, Reply


class OpenAIProvider(HTTPProvider):
    type = "openai"
    options = {"stream_usage": bool}

    async def chat_completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        return await self._generate(ctx, "/chat/completions", body)

    async def completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        return await self._generate(ctx, "/completions", body)

    async def embeddings(self, ctx: RequestContext, body: Body) -> Reply:
        return await self.post_json(ctx, "/embeddings", body)

    async def _generate(self, ctx: RequestContext, path: str, body: Body) -> Reply | ChunkStream:
        if body.get("stream") is not True:
            return await self.post_json(ctx, path, body)
        if self.option("stream_usage", True):
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        response = await self.send(ctx, path, body, stream=True)
        return self.openai_chunks(response)


@hookimpl(trylast=True)
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenAIProvider)
