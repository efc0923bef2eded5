"""What the cache tests share: the recordings, an upstream that answers like OpenAI (a JSON
completion, or a recorded stream when the request streams), configurations, a served gateway
with helpers that read the cache header, and an authentication plugin that puts keys in teams."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import httpx2
import orjson
from starlette.types import Send

from compatgate import Principal, hookimpl
from compatgate.testing import FakeUpstream, Received, ServedGateway

SHARED = Path(os.environ.get("COMPATGATE_SHARED", Path(__file__).resolve().parents[3].parent / "shared"))
RECORDINGS = SHARED / "fixtures" / "openai-sse"
SPEC = SHARED / "spec" / "openai-openapi.yaml"
REDIS_URL = os.environ.get("COMPATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
UPSTREAM_KEY = "sk-upstream-SECRET-0123456789"
KEYS = ("sk-client-a", "sk-client-b")
ADMIN_KEY = "admin-key-0123456789abcdef"


def recording(name: str) -> bytes:
    return next(RECORDINGS.glob(f"{name}*.bin")).read_bytes()


TEXT = recording("7e5ea4d1")  # one choice, finish_reason "stop"
THREE = recording("a491adda")  # n = 3
TOOLS = recording("2018feb6")  # a tool call
REFUSAL = recording("173417d5")  # a refusal
LOGPROBS = recording("83b060ba")  # logprobs

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF",
    "object": "chat.completion",
    "created": 1727346169,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_5050236cbd",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21,
              "prompt_tokens_details": {"cached_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0}},
}  # fmt: skip

TEXT_COMPLETION: dict[str, Any] = {
    "id": "cmpl-9zX1", "object": "text_completion", "created": 1727346169,
    "model": "gpt-3.5-turbo-instruct",
    "choices": [{"text": " a quiet morning.", "index": 0, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
}  # fmt: skip

EMBEDDINGS: dict[str, Any] = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292, 0.015797347]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 5, "total_tokens": 5},
}


def answering(fake: FakeUpstream, stream: bytes = TEXT, body: dict[str, Any] | None = None, **sse: Any) -> None:
    """Make ``fake`` answer like OpenAI: ``stream`` (a recording) to streamed requests, ``body``
    (by the path: a chat completion, a text completion or embeddings) to the others."""
    streamed = FakeUpstream.sse_reply(stream, **sse)

    async def handler(request: Received, send: Send) -> None:
        data = request.json
        if data.get("stream") is True:
            await streamed(request, send)
            return
        answer = body
        if answer is None:
            answer = {"/v1/embeddings": EMBEDDINGS, "/v1/completions": TEXT_COMPLETION}.get(request.path, COMPLETION)
        await FakeUpstream.json_reply(answer)(request, send)

    fake.handler = handler


def config(upstream_url: str, cache: dict[str, Any] | None, **plugins: Any) -> dict[str, Any]:
    provider = {"type": "openai", "base_url": f"{upstream_url}/v1", "api_key": UPSTREAM_KEY,
                "read_timeout": 10.0, "connect_timeout": 2.0}  # fmt: skip
    result: dict[str, Any] = {
        "gateway": {"api_keys": list(KEYS), "load_entrypoints": True},
        "providers": {"up": provider, "other": dict(provider)},
        "models": [
            {"name": "gpt-4o", "provider": "up", "upstream_model": "gpt-4o-2024-08-06"},
            {"name": "gpt-4o-mini", "provider": "up"},
            {"name": "gpt-4o-elsewhere", "provider": "other", "upstream_model": "gpt-4o-2024-08-06"},
            {"name": "text-embedding-3-small", "provider": "up"},
            {"name": "gpt-3.5-turbo-instruct", "provider": "up"},
        ],
        "plugins": dict(plugins),
    }
    if cache is not None:
        result["plugins"]["cache"] = cache
    return result


class Served(ServedGateway):
    """A served gateway; `chat` and `stream` post with httpx2 and return the response (status,
    headers, body) so tests see the cache header and the exact bytes."""

    default_key = KEYS[0]

    def post(self, path: str, body: dict[str, Any], key: str | None = None, **headers: str) -> httpx2.Response:
        headers = {"authorization": f"Bearer {key or self.key}", **headers}
        return httpx2.post(f"{self.url}{path}", json=body, headers=headers, timeout=10)

    def chat(self, body: dict[str, Any], key: str | None = None, **headers: str) -> httpx2.Response:
        return self.post("/chat/completions", {"model": "gpt-4o", **body}, key, **headers)


def cache_status(response: httpx2.Response) -> str | None:
    return response.headers.get("x-compatgate-cache")


def events(body: bytes) -> list[bytes]:
    """The data of each SSE event of a body."""
    return [block[6:] for block in body.split(b"\n\n") if block.startswith(b"data: ")]


def chunks(body: bytes) -> list[dict[str, Any]]:
    data = events(body)
    assert data[-1] == b"[DONE]", body[-200:]
    return [orjson.loads(item) for item in data[:-1]]


def text_of(stream_chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in stream_chunks for choice in chunk["choices"] if choice["index"] == index
    )  # fmt: skip


class Teams:
    """Authentication for the tests of ``scope = "team"``: ``sk-team-<team>-<n>`` is key
    ``<team>-<n>`` of team ``<team>``; ``sk-solo-<n>`` has no team."""

    @hookimpl
    def authenticate(self, api_key: str | None) -> Principal | None:
        if api_key and api_key.startswith("sk-team-"):
            team, _, number = api_key[8:].partition("-")
            return Principal(f"{team}-{number}", metadata={"team": team})
        if api_key and api_key.startswith("sk-solo-"):
            return Principal(f"solo-{api_key[8:]}")
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def toml(config: dict[str, Any]) -> str:
    """The TOML of a configuration dict (nested tables of strings, numbers, booleans, lists)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return orjson.dumps(v).decode()
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(v)

    def table(name: str, data: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{orjson.dumps(k).decode()} = {value(v)}" for k, v in data.items() if not isinstance(v, dict))
        for k, v in data.items():
            if isinstance(v, dict):
                table(f"{name}.{orjson.dumps(k).decode()}", v)

    for key, data in config.items():
        if key == "models":
            for model in data:
                lines.append("[[models]]")
                lines.extend(f"{k} = {value(v)}" for k, v in model.items())
        else:
            table(key, data)
    return "\n".join(lines) + "\n"


def compatgate_cli() -> str:
    """The installed ``compatgate`` command of this environment."""
    import sys

    return str(Path(sys.executable).with_name("compatgate"))
