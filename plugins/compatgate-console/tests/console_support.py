"""What the console tests share: a gateway with billing and the console served by
``Standalone`` (as ``compatgate serve`` runs it) on loopback, a fake OpenAI upstream, and an
HTTP client that signs in like a browser (cookies, CSRF tokens from the forms)."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from compatgate import Gateway
from compatgate.cli import Standalone
from compatgate.testing import FakeUpstream, Received, serve

POSTGRES_URL = os.environ.get("COMPATGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVER_SECRET = "console-test-server-secret-0123456789"
ADMIN_KEY = "console-test-admin-key-0123456789abcdef"
UPSTREAM_KEY = "sk-upstream-console-test"
PRICES = {"gpt-4o*": {"input": 1, "output": 2, "max_tokens": 1000}}


def chat_answer(request: Received) -> dict[str, Any]:
    """A chat completion (the OpenAI wire format) counting the prompt's words as tokens."""
    body = request.json
    words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {
        "id": "chatcmpl-console-1", "object": "chat.completion", "created": 1727346172,
        "model": body.get("model", "gpt-4o"), "system_fingerprint": "fp_console",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, nice to meet.",
                                             "refusal": None}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": words + 7, "completion_tokens": 6, "total_tokens": words + 13},
    }


async def upstream_handler(request: Received, send: Any) -> None:
    body = request.json or {}
    if body.get("model") == "broken-model":
        await FakeUpstream.json_reply({"error": {"message": "The server had an error.", "type": "server_error",
                                                 "param": None, "code": None}}, status=500)(request, send)
        return
    await FakeUpstream.json_reply(chat_answer(request))(request, send)


@dataclass(frozen=True)
class Database:
    url: str
    schema: str | None = None

    def settings(self) -> dict[str, Any]:
        return {"database": self.url, **({"schema": self.schema} if self.schema else {})}


def console_config(upstream_url: str, db: Database, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"api_keys": ["sk-static-console"], **gateway},
        "providers": {"up": {"type": "openai", "base_url": f"{upstream_url}/v1", "api_key": UPSTREAM_KEY,
                             "read_timeout": 20.0, "connect_timeout": 2.0}},
        "models": [{"name": "gpt-4o", "provider": "up"}, {"name": "gpt-4o-mini", "provider": "up"},
                   {"name": "other-model", "provider": "up"}, {"name": "broken-model", "provider": "up"}],
        "plugins": {
            "billing": {**db.settings(), "secret": SERVER_SECRET, "admin_key": ADMIN_KEY, "prices": PRICES},
            "console": {"signin_attempts_per_minute": 50, "page_size": 20},
        },
    }


@contextmanager
def serve_console(config: dict[str, Any]) -> Iterator[tuple[Gateway, str]]:
    """The app of ``compatgate serve`` for ``config``, on loopback; yields the gateway and URL."""
    gateway = Gateway(config)
    with serve(Standalone(gateway)) as url:
        yield gateway, url


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Visitor:
    """A browser-like client of the console at ``url`` (cookies kept, redirects not followed)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx2.Client(base_url=url, timeout=20)
        self.csrf: str | None = None

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        response = self.http.get(path, **kwargs)
        match = _CSRF.search(response.text) if "text/html" in response.headers.get("content-type", "") else None
        if match:
            self.csrf = html.unescape(match.group(1))
        return response

    def sign_in(self, key: str) -> httpx2.Response:
        self.get("/console/signin")
        return self.http.post("/console/signin", data={"csrf": self.csrf or "", "key": key})

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx2.Response:
        if self.csrf is None:
            self.get("/console/")
        return self.http.post(path, data={"csrf": self.csrf or "", **(data or {})}, **kwargs)

    def create_key(self, **fields: Any) -> tuple[str, str]:
        """``(key id, full key)`` of a key made through the console's form."""
        self.get("/console/keys/new")
        response = self.post("/console/keys", fields)
        assert response.status_code == 200, response.text
        secret = re.search(r'id="secret"[^>]*value="([^"]+)"', response.text)
        assert secret is not None, response.text
        key = html.unescape(secret.group(1))
        return key.split("-")[2], key


def chat(url: str, key: str, model: str = "gpt-4o", content: str = "Hello from the console tests") -> httpx2.Response:
    return httpx2.post(f"{url}/v1/chat/completions", timeout=20, headers={"authorization": f"Bearer {key}"},
                       json={"model": model, "messages": [{"role": "user", "content": content}]})


def text_of(response: httpx2.Response) -> str:
    return html.unescape(response.text)


SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "console"
