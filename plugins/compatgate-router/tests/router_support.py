"""What the router tests share: configurations, a served gateway with its usage log, and a
fault-injecting upstream (scripted per request: errors with Retry-After, resets, stalls,
truncated and empty streams, slow answers and slow first tokens)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import orjson
from starlette.types import Send

from compatgate.testing import FakeUpstream, Received, ServedGateway
from compatgate_router import Router

if TYPE_CHECKING:
    import openai

SHARED = Path(os.environ.get("COMPATGATE_SHARED", Path(__file__).resolve().parents[3].parent / "shared"))
REDIS_URL = os.environ.get("COMPATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLIENT_KEY = "sk-router-client"
UPSTREAM_KEY = "sk-router-upstream-0123456789"
MESSAGES = [{"role": "user", "content": "Say hello."}]

Handler = Callable[[Received, Send], Awaitable[None]]


class Served(ServedGateway):
    """A gateway served on loopback, with its usage log and an SDK client."""

    default_key = CLIENT_KEY
    client_timeout = 15.0
    _client: openai.OpenAI | None = None

    @property
    def router(self) -> Router:
        return next(p for p in self.gateway.pm.get_plugins() if isinstance(p, Router))

    def chat(self, model: str = "gpt-4o", **kwargs: Any) -> Any:
        """A non-streamed chat request; the raw response (``.headers``, ``.parse()``)."""
        if self._client is None:
            self._client = self.client()
        return self._client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **kwargs)


def gateway_config(urls: dict[str, str], router: dict[str, Any] | None, **provider: Any) -> dict[str, Any]:
    """Providers named like ``urls`` (OpenAI-compatible, short timeouts), one ``[[models]]``
    entry ``plain-<name>`` per provider, and ``router`` as ``[plugins.router]``."""
    config: dict[str, Any] = {
        "gateway": {"api_keys": [CLIENT_KEY], "load_entrypoints": False},
        "providers": {
            name: {"type": "openai", "base_url": f"{url}/v1", "api_key": UPSTREAM_KEY,
                   "connect_timeout": 1.0, "read_timeout": 3.0, **provider}
            for name, url in urls.items()
        },
        "models": [{"name": f"plain-{name}", "provider": name} for name in urls],
    }
    if router is not None:
        config["plugins"] = {"router": router}
    return config


def group(*providers: str, **extra: Any) -> dict[str, Any]:
    """A group table with one deployment per provider (upstream model ``<provider>-model``)."""
    return {"deployments": [{"provider": p, "upstream_model": f"{p}-model"} for p in providers], **extra}


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- answers ----------------------------------------------------------------------------------


def completion(content: str = "Hello.", model: str = "m") -> dict[str, Any]:
    return {
        "id": "chatcmpl-r", "object": "chat.completion", "created": 1727346172, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    data = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def sse(pieces: Sequence[str], *, finish: bool = True, done: bool = True) -> bytes:
    """A chat stream: one chunk per piece, then a finish chunk and ``[DONE]``."""
    content = b"".join(chunk(piece) for piece in pieces)
    if finish:
        content += chunk(finish="stop")
    return content + (b"data: [DONE]\n\n" if done else b"")


def error_reply(status: int, message: str = "upstream failed", *, code: str | None = None,
                retry_after: str | None = None) -> Handler:
    headers = {"retry-after": retry_after} if retry_after is not None else None
    body = {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                      "param": None, "code": code}}
    return FakeUpstream.json_reply(body, status=status, headers=headers)


def ok_reply(content: str = "Hello.") -> Handler:
    return FakeUpstream.json_reply(completion(content))


def sequence(fake: FakeUpstream, *handlers: Handler) -> None:
    """Answer the n-th request with ``handlers[n]`` (the last one repeats)."""
    script = list(handlers)

    async def handler(request: Received, send: Send) -> None:
        index = min(len(fake.received) - 1, len(script) - 1)
        await script[index](request, send)

    fake.handler = handler


def slow(fake: FakeUpstream, delay: float, then: Handler) -> Handler:
    """Wait ``delay`` seconds (less when the gateway hangs up), then answer with ``then``."""

    async def handler(request: Received, send: Send) -> None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not fake.hung_up.is_set():
            await asyncio.sleep(0.01)
        if not fake.hung_up.is_set():
            await then(request, send)

    return handler


def slow_first_chunk(fake: FakeUpstream, delay: float, content: bytes) -> Handler:
    """Headers at once, then nothing for ``delay`` seconds, then ``content``."""

    async def handler(request: Received, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not fake.hung_up.is_set():
            await asyncio.sleep(0.01)
        if not fake.hung_up.is_set():
            await send({"type": "http.response.body", "body": content})

    return handler


def raw_stream(url: str, model: str) -> tuple[int, dict[str, str], list[bytes]]:
    """A streamed chat request over plain HTTP: status, headers and the data payloads."""
    with httpx2.stream("POST", f"{url}/chat/completions", timeout=15,
                       headers={"authorization": f"Bearer {CLIENT_KEY}"},
                       json={"model": model, "messages": MESSAGES, "stream": True}) as response:
        payloads = [line[6:].encode() for line in response.iter_lines() if line.startswith("data: ")]
        return response.status_code, dict(response.headers), payloads
