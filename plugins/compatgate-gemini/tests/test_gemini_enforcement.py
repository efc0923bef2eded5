"""Issue 14, defect 1: path traversal past the allow-list, through a router wildcard to a
Gemini provider.

Before the operation table (commit 1ba4be6), a key allowed only ``gemini-flash*`` sent
``model = "gemini-flash/../gemini-pro-2"``: the router's wildcard passed the name through, the
Gemini provider put it in its URL, and the upstream received
``/v1beta/models/gemini-pro-2:generateContent`` with the operator's key (billed at the flash
price); ``../../../v1/files/abc`` reached any path on the host. Now model names are checked in
the core (no ``.``/``..`` segments, no control characters, a length bound) and the provider
puts a name in its URL as one percent-encoded segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx2
import pytest
from gemini_support import UPSTREAM_KEY, gemini_response
from starlette.types import Receive, Scope, Send

from compatgate import Principal, hookimpl
from compatgate.testing import FakeUpstream, ServedGateway, serve, serve_gateway

KEY = "sk-flash-only-key"


class FlashOnly:
    """Authentication: ``KEY`` may use ``gemini-flash*`` models only."""

    def __init__(self, gateway: object) -> None:
        pass

    @hookimpl
    def authenticate(self, api_key: str | None) -> Principal | None:
        return Principal("flash-only", ("gemini-flash*",)) if api_key == KEY else None


class RawPaths:
    """The fake upstream, noting each request's path as it came on the wire (undecoded)."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.paths: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope.get("raw_path") or scope["path"].encode())
        await self.fake(scope, receive, send)


@pytest.fixture
def routed() -> Iterator[tuple[ServedGateway, RawPaths]]:
    fake = FakeUpstream()
    fake.handler = fake.json_reply(gemini_response([{"text": "Hi"}], usageMetadata={
        "promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3}))
    upstream = RawPaths(fake)
    with serve(upstream) as url:
        config: dict[str, Any] = {
            "gateway": {"api_keys": []},
            "providers": {"google": {"type": "gemini", "base_url": url, "api_key": UPSTREAM_KEY,
                                     "read_timeout": 5.0}},
            "plugins": {"router": {"routes": [{"match": "gemini-*", "provider": "google"}]}},
        }
        with serve_gateway(config, (FlashOnly,)) as gw:
            yield gw, upstream


def _chat(gw: ServedGateway, model: str) -> httpx2.Response:
    return httpx2.post(f"{gw.url}/chat/completions", timeout=10, headers={"authorization": f"Bearer {KEY}"},
                       json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})


@pytest.mark.parametrize("model", [
    "gemini-flash/../gemini-pro-2",
    "gemini-flash/../../../v1/files/abc",
    "gemini-flash/./x",
    "gemini-flash\\..\\gemini-pro-2",
    "gemini-flash\n",
])
def test_traversal_in_an_allowed_name_is_refused_before_any_upstream_call(routed, model):
    gw, upstream = routed
    response = _chat(gw, model)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "model"
    assert upstream.paths == [] and upstream.fake.received == []


def test_a_name_outside_the_allow_list_is_refused_and_the_allowed_one_served(routed):
    gw, upstream = routed
    assert _chat(gw, "../../../v1/files/abc").status_code in (400, 403)
    assert _chat(gw, "gemini-pro-2").status_code == 403
    assert upstream.paths == []
    assert _chat(gw, "gemini-flash").status_code == 200
    assert upstream.paths == [b"/v1beta/models/gemini-flash:generateContent"]


@pytest.mark.parametrize("model", [
    "gemini-flash?key=x", "gemini-flash#frag", "gemini-flash%2F..%2Fgemini-pro", "gemini-flash/sub",
    "gemini-flash:streamGenerateContent", "gemini-flash;v=1", "gemini-flash ü",
])
def test_a_model_name_reaches_the_upstream_as_one_encoded_segment(routed, model):
    """``?``, ``#``, ``%2F``, ``/`` and ``:`` cannot add a query, a fragment, a segment or a
    method to the upstream URL: the name is one percent-encoded segment that decodes to it."""
    gw, upstream = routed
    response = _chat(gw, model)
    assert response.status_code == 200, response.text
    (path,) = upstream.paths
    prefix, method = b"/v1beta/models/", b":generateContent"
    assert path.startswith(prefix) and path.endswith(method), path
    segment = path[len(prefix):-len(method)]
    assert not any(c in segment for c in (b"/", b"?", b"#", b":", b" ")), path
    assert unquote(segment.decode("ascii")) == model
    assert upstream.fake.received[0].query == ""
