"""What the rate-limit tests share: configurations, a served gateway, scripted upstream replies,
a fake clock, concurrent requests and checks of the error format."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx2
import orjson
from compatgate_ratelimit import RateLimit

from compatgate import Gateway
from compatgate.testing import FakeUpstream, Received, ServedGateway

REDIS_URL = os.environ.get("COMPATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UPSTREAM_KEY = "sk-upstream-ratelimit-test"
KEYS = ("sk-rl-0", "sk-rl-1", "sk-rl-2")  # key ids static:0, static:1, static:2
MESSAGES = [{"role": "user", "content": "Say hello."}]
CHAT = {"model": "gpt-4o", "messages": MESSAGES}


def gateway_config(
    upstream_url: str, ratelimit: dict[str, Any] | None, **gateway: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "gateway": {"api_keys": list(KEYS), **gateway},
        "providers": {
            "up": {
                "type": "openai",
                "base_url": f"{upstream_url}/v1",
                "api_key": UPSTREAM_KEY,
                "read_timeout": 20.0,
                "connect_timeout": 2.0,
            },
            "other": {
                "type": "openai",
                "base_url": f"{upstream_url}/v1",
                "api_key": UPSTREAM_KEY,
                "read_timeout": 20.0,
                "connect_timeout": 2.0,
            },
        },
        "models": [
            {"name": "gpt-4o", "provider": "up"},
            {"name": "gpt-4o-mini", "provider": "up"},
            {"name": "other-model", "provider": "other"},
            {"name": "text-embedding-3-small", "provider": "up"},
        ],
    }
    if ratelimit is not None:
        config["plugins"] = {"ratelimit": ratelimit}
    return config


def chat_answer(prompt_tokens: int = 10, completion_tokens: int = 5) -> dict[str, Any]:
    return {
        "id": "chatcmpl-rl",
        "object": "chat.completion",
        "created": 1727346172,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def sse_stream(pieces: Sequence[str], prompt_tokens: int = 10, completion_tokens: int = 5) -> bytes:
    """A chat stream: one chunk per piece, a finish chunk, the usage chunk and ``[DONE]``."""

    def chunk(choices: list[Any], usage: Any = None) -> bytes:
        data = {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": choices,
            "usage": usage,
        }
        return b"data: " + orjson.dumps(data) + b"\n\n"

    out = b"".join(
        chunk([{"index": 0, "delta": {"content": p}, "finish_reason": None}]) for p in pieces
    )
    out += chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    out += chunk(
        [],
        {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    )
    return out + b"data: [DONE]\n\n"


def slow_reply(
    fake: FakeUpstream,
    delay: float,
    body: dict[str, Any] | None = None,
    peak: list[int] | None = None,
) -> Callable[..., Any]:
    """A handler answering ``body`` after ``delay`` s; ``peak[0]`` keeps the most requests the
    upstream ever had in flight at once (read from `FakeUpstream.in_flight`)."""
    content = orjson.dumps(body or chat_answer())

    async def handler(request: Received, send: Any) -> None:
        if peak is not None:
            peak[0] = max(peak[0], fake.in_flight)
        await asyncio.sleep(delay)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": content})

    return handler


class Served(ServedGateway):
    """A gateway served on loopback, with its usage log."""

    def post(
        self,
        body: dict[str, Any] | None = None,
        key: str = KEYS[0],
        path: str = "/chat/completions",
        timeout: float = 15.0,
    ) -> httpx2.Response:
        return httpx2.post(
            f"{self.url}{path}",
            json=body or CHAT,
            timeout=timeout,
            headers={"authorization": f"Bearer {key}"},
        )

    @property
    def limiter(self) -> RateLimit:
        return self.gateway.state["ratelimit"]


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def clocked(clock: Callable[[], float]) -> type[RateLimit]:
    """A RateLimit class whose backend reads ``clock`` (passed to `Gateway(plugins=...)`, this
    subclass replaces the entry point's instance)."""

    class ClockedRateLimit(RateLimit):
        def __init__(self, gateway: Gateway) -> None:
            super().__init__(gateway, clock=clock)

    return ClockedRateLimit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def fire(
    urls: Sequence[str],
    count: int,
    *,
    concurrency: int,
    body: dict[str, Any] | None = None,
    key: str = KEYS[0],
    timeout: float = 20.0,
) -> list[httpx2.Response]:
    """POST ``count`` chat requests, spread over ``urls`` in turn, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(timeout=timeout, limits=limits) as client:

        async def one(i: int) -> httpx2.Response:
            async with gate:
                return await client.post(
                    f"{urls[i % len(urls)]}/chat/completions",
                    json=body or CHAT,
                    headers={"authorization": f"Bearer {key}"},
                )

        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout * 3)


def statuses(responses: Iterable[httpx2.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return counts


def error_of(response: httpx2.Response) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-format error body (checked to be exactly that)."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def assert_rate_limited(response: httpx2.Response) -> dict[str, Any]:
    """A 429 ``rate_limit_exceeded`` with its Retry-After headers; returns its error object."""
    assert response.status_code == 429, response.text
    error = error_of(response)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert int(response.headers["retry-after"]) >= 1
    assert int(response.headers["retry-after-ms"]) >= 1
    return error
