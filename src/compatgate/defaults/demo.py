"""Default plugin: the offline ``type = "demo"`` provider.

It answers without any network or key, in the exact OpenAI shapes: chat completions and legacy
completions (streamed or not, ``n`` choices, ``max_tokens`` honoured with ``finish_reason:
"length"``, usage counted) and embeddings (deterministic unit vectors from a hash of the text,
``dimensions`` and ``encoding_format: "base64"`` honoured). Options: ``chunk_delay`` (seconds
between streamed chunks, default 0.02).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any

from ..context import RequestContext
from ..exceptions import InvalidRequestError
from ..hookspecs import hookimpl
from ..provider import Body, Chunk, ChunkStream, Provider, Reply
from ..usage import Usage

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*\S+")


def count_tokens(text: str) -> int:
    """A rough token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


class DemoProvider(Provider):
    type = "demo"
    options = {"chunk_delay": float}

    @property
    def owned_by(self) -> str:
        return self.config.owned_by or "compatgate"

    async def chat_completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        messages = body.get("messages") or []
        prompt = " ".join(_text(m.get("content")) for m in messages if isinstance(m, dict))
        users = [_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        said = " ".join(users[-1].split()[:40]) if users else ""
        answer = f"Hello from the compatgate demo provider. You said: {said}" if said else (
            "Hello from the compatgate demo provider."
        )
        return self._generate(body, prompt, answer, chat=True)

    async def completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else " ".join(str(p) for p in prompt or [])
        return self._generate(body, text, " is what you wrote; the demo provider completes it.", chat=False)

    async def embeddings(self, ctx: RequestContext, body: Body) -> Reply:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if inputs and all(isinstance(i, int) for i in inputs):
            inputs = [inputs]  # one input given as token ids
        dimensions = body.get("dimensions", 256)
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
            raise InvalidRequestError("'dimensions' must be an integer from 1 to 4096.", param="dimensions")
        data, tokens = [], 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += count_tokens(text) if isinstance(item, str) else len(item)
            vector = _embed(text, dimensions)
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Reply({"object": "list", "data": data, "model": body["model"], "usage": usage})

    def _generate(self, body: Body, prompt: str, answer: str, *, chat: bool) -> Reply | ChunkStream:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        pieces = _PIECE.findall(answer)
        finish = "stop"
        if isinstance(limit, int) and 0 < limit < count_tokens(answer):
            while pieces and count_tokens("".join(pieces)) > limit:
                pieces.pop()
            finish = "length"
        text = "".join(pieces)
        n = body.get("n") or 1
        completion = count_tokens(text)
        usage = Usage(count_tokens(prompt), completion * n, count_tokens(prompt) + completion * n)
        head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_demo",
        }
        if body.get("stream") is True:
            delay = float(self.option("chunk_delay", 0.02))
            return _stream(head, pieces, finish, n, usage, delay, chat)
        if chat:
            message: Body = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
            choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)]
            return Reply({**head, "object": "chat.completion", "choices": choices, "usage": usage.to_openai()})
        choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": finish} for i in range(n)]
        return Reply({**head, "object": "text_completion", "choices": choices, "usage": usage.to_openai()})


async def _stream(
    head: Body, pieces: list[str], finish: str, n: int, usage: Usage, delay: float, chat: bool
) -> AsyncGenerator[Chunk, None]:
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(index: int, content: str | None, finish_reason: str | None, role: bool = False) -> Chunk:
        if chat:
            delta: Body = {"role": "assistant", "content": "", "refusal": None} if role else (
                {} if content is None else {"content": content}
            )
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": index, "text": content or "", "logprobs": None, "finish_reason": finish_reason}
        return Chunk({**head, "object": obj, "choices": [choice]})

    if chat:
        for index in range(n):
            yield chunk(index, None, None, role=True)
    for piece in pieces:
        if delay:
            await asyncio.sleep(delay)
        for index in range(n):
            yield chunk(index, piece, None)
    for index in range(n):
        yield chunk(index, None, finish)
    yield Chunk({**head, "object": obj, "choices": [], "usage": usage.to_openai()})


def _embed(text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vector = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@hookimpl(trylast=True)
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(DemoProvider)


def demo_config() -> dict[str, Any]:
    """The configuration of ``compatgate serve --demo``: one key, two offline models."""
    return {
        "gateway": {"api_keys": ["sk-demo"]},
        "providers": {"demo": {"type": "demo"}},
        "models": [
            {"name": "demo-chat", "provider": "demo"},
            {"name": "demo-embedding", "provider": "demo"},
        ],
    }
