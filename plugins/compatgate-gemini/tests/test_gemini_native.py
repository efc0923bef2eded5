"""The native path: GeminiProvider relays a Gemini client's body to a fake Gemini upstream that
replays the recordings; and every upstream URL names the model as one encoded path segment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from compatgate_gemini import GeminiProvider
from gemini_support import SSE_SPLIT, UPSTREAM_KEY, gemini_config, model_of, read_trace
from gemini_inbound_support import sse_responses
from starlette.types import Receive, Scope, Send

from compatgate import Gateway, GatewayError, RequestContext, UpstreamError
from compatgate.testing import read_body, serve


class Upstream:
    """A Gemini upstream keeping the raw path of each request and answering from a script."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []  # raw path, query, headers, body
        self.answers: list[tuple[int, str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["raw_path"].decode(), scope["query_string"].decode(), headers, orjson.loads(body)))
        status, media, content = self.answers.pop(0)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", media.encode())]})
        await send({"type": "http.response.body", "body": content})


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Upstream, str]]:
    upstream = Upstream()
    with serve(upstream) as url:
        yield upstream, url


@pytest.fixture
def upstream(served: tuple[Upstream, str]) -> Upstream:
    served[0].requests.clear()
    served[0].answers.clear()
    return served[0]


@pytest.fixture
def gateway(served: tuple[Upstream, str]) -> Gateway:
    return Gateway(gemini_config(served[1]))


def call(gateway: Gateway, method: str, body: dict[str, Any]) -> tuple[Any, bytes]:
    """Run a provider method as the core would; the reply and, for a stream, its bytes."""
    provider = gateway.providers["google"]
    assert isinstance(provider, GeminiProvider)

    async def run() -> tuple[Any, bytes]:
        ctx = RequestContext(gateway, "req-1", "gemini." + method, None)  # type: ignore[arg-type]
        try:
            reply = await getattr(provider, method)(ctx, body)
            data = b""
            if hasattr(reply, "chunks"):
                try:
                    async for piece in reply.chunks:
                        data += piece
                except GatewayError as error:
                    return error, data
            return reply, data
        finally:
            await provider.aclose()

    return asyncio.run(run())


STREAMED = [(name, i) for name in ("TestModel_GenerateStream_ok.httprr", "TestLLMAgentStreamingModeSSE.httprr",
                                   "TestParallelFunctionCalls_test_parallel_function_calls_gemini-3-flash-preview.httprr")
            for i in range(len(read_trace(name)))]


@pytest.mark.parametrize(("name", "index"), STREAMED, ids=[f"{n[:30]}-{i}" for n, i in STREAMED])
@pytest.mark.parametrize("sse", [True, False], ids=["sse", "array"])
def test_streams_are_relayed_event_by_event(gateway: Gateway, upstream: Upstream, name: str, index: int, sse: bool):
    exchange = read_trace(name)[index]
    upstream.answers.append((200, "text/event-stream", exchange.response_body))
    body = {**exchange.request, "model": model_of(exchange), "stream": True, "sse": sse}
    reply, data = call(gateway, "generate_content", body)
    path, query, headers, sent = upstream.requests[0]
    assert path == f"/v1beta/models/{model_of(exchange)}:streamGenerateContent" and query == "alt=sse"
    assert sent == exchange.request and headers["x-goog-api-key"] == UPSTREAM_KEY
    events = exchange.events()
    assert (sse_responses(data) if sse else orjson.loads(data)) == events
    assert reply.media_type == ("text/event-stream" if sse else "application/json; charset=UTF-8")
    meta = events[-1]["usageMetadata"]
    assert reply.usage.prompt_tokens == meta["promptTokenCount"]
    assert reply.usage.completion_tokens == meta["candidatesTokenCount"] + meta.get("thoughtsTokenCount", 0)
    assert reply.generated == sum(len(p.get("text", "")) + (len(orjson.dumps(p["functionCall"]["args"])) if "functionCall" in p else 0)
                                  for e in events for c in e["candidates"] for p in c["content"]["parts"])


def test_a_whole_answer_is_relayed_as_gemini_encoded_it(gateway: Gateway, upstream: Upstream):
    exchange = read_trace("TestFunctionTool_Simple.httprr")[0]
    upstream.answers.append((200, "application/json; charset=UTF-8", exchange.response_body))
    reply, data = call(gateway, "generate_content", {**exchange.request, "model": "gemini-2.5-flash", "stream": False})
    assert data == exchange.response_body
    assert upstream.requests[0][0] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert reply.usage.prompt_tokens == 113 and reply.usage.reasoning_tokens == 135
    assert reply.generated == len(b'{"city":"London"}')


RECORDED = read_trace("TestA2ASingleHopFinalResponse_llm_mid-response_error.httprr")[0]
FIRST = RECORDED.response_body.split(SSE_SPLIT)[0] + SSE_SPLIT


@pytest.mark.parametrize(("tail", "message", "status"), [
    (b"", "without a finishReason", "UNAVAILABLE"),
    (b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n',
     "The model is overloaded.", "UNAVAILABLE"),
    (b'data: {"candidates": [\r\n\r\n', "not valid JSON", "UNAVAILABLE"),
], ids=["truncated", "error-event", "invalid-json"])
@pytest.mark.parametrize("sse", [True, False], ids=["sse", "array"])
def test_a_broken_stream_ends_with_an_error(gateway: Gateway, upstream: Upstream, tail: bytes, message: str,
                                            status: str, sse: bool):
    upstream.answers.append((200, "text/event-stream", FIRST + tail))
    error, data = call(gateway, "generate_content", {**RECORDED.request, "model": "gemini-2.5-flash", "stream": True, "sse": sse})
    assert isinstance(error, GatewayError) and message in error.message
    events = sse_responses(data) if sse else orjson.loads(data)
    assert events[0]["candidates"][0]["content"]["parts"][0]["text"].startswith("I can help")
    assert events[-1]["error"]["status"] == status and message in events[-1]["error"]["message"]
    assert len(events) == 2


def test_an_upstream_error_keeps_its_status(gateway: Gateway, upstream: Upstream):
    answer = {"error": {"code": 429, "message": f"Quota exceeded for key {UPSTREAM_KEY}.", "status": "RESOURCE_EXHAUSTED",
                        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}
    upstream.answers.append((429, "application/json", orjson.dumps(answer)))
    with pytest.raises(UpstreamError) as caught:
        call(gateway, "generate_content", {**RECORDED.request, "model": "gemini-2.5-flash", "stream": True})
    assert caught.value.status_code == 429 and caught.value.headers["retry-after"] == "12"
    assert UPSTREAM_KEY not in caught.value.message


def test_count_tokens_and_embeddings_are_relayed(gateway: Gateway, upstream: Upstream):
    upstream.answers.append((200, "application/json", b'{"totalTokens": 31}'))
    reply, _ = call(gateway, "count_tokens", {"model": "gemini-2.5-flash", "generateContentRequest": {
        "model": "models/client-name", "contents": [{"parts": [{"text": "hi"}]}]}})
    assert reply.data == {"totalTokens": 31}
    path, _, _, sent = upstream.requests[-1]
    assert path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert sent["generateContentRequest"]["model"] == "models/gemini-2.5-flash" and "model" not in sent
    upstream.answers.append((200, "application/json", b'{"embeddings": [{"values": [0.1]}, {"values": [0.2]}]}'))
    requests = [{"model": "models/client-name", "content": {"parts": [{"text": t}]}} for t in ("a", "b")]
    reply, _ = call(gateway, "batch_embed_contents", {"model": "gemini-embedding-001", "requests": requests})
    assert reply.data["embeddings"][1] == {"values": [0.2]}
    path, _, _, sent = upstream.requests[-1]
    assert path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["model"] for r in sent["requests"]] == ["models/gemini-embedding-001"] * 2
    upstream.answers.append((200, "application/json", b'{"embedding": {"values": [0.5]}}'))
    reply, _ = call(gateway, "embed_content", {"model": "gemini-embedding-001", "content": {"parts": [{"text": "a"}]}})
    assert reply.data == {"embedding": {"values": [0.5]}}
    assert upstream.requests[-1][0] == "/v1beta/models/gemini-embedding-001:embedContent"


HOSTILE = [
    ("gemini-flash/../gemini-pro-2", "/v1beta/models/gemini-flash%2F..%2Fgemini-pro-2"),
    ("a?key=stolen#frag", "/v1beta/models/a%3Fkey%3Dstolen%23frag"),
    ("100%", "/v1beta/models/100%25"),
    ("x:countTokens", "/v1beta/models/x%3AcountTokens"),
    ("..", "/v1beta/models/.."),
    ("tunedModels/my/../model", "/v1beta/tunedModels/my%2F..%2Fmodel"),
]


@pytest.mark.parametrize(("model", "path"), HOSTILE, ids=[m for m, _ in HOSTILE])
@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
def test_the_model_is_one_encoded_path_segment(served: tuple[Upstream, str], upstream: Upstream, model: str, path: str,
                                               transport: str):
    """Issue 14: ``gemini-flash/../gemini-pro-2`` reached ``models/gemini-pro-2``. With httpx the
    upstream receives exactly the percent-encoded segment; aiohttp's URL library re-normalises
    the characters that may stand unescaped in a segment (``:``, ``=``), which changes nothing:
    the segment still decodes to the model name and the path and query stay the same."""
    gateway = Gateway(gemini_config(served[1], transport=transport))
    ok = orjson.dumps({"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP", "index": 0}]})
    upstream.answers.append((200, "application/json", ok))
    call(gateway, "chat_completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]})
    upstream.answers.append((200, "application/json", b'{"embeddings": [{"values": [0.1]}]}'))
    call(gateway, "embeddings", {"model": model, "input": "hi"})
    upstream.answers.append((200, "application/json", ok))
    call(gateway, "generate_content", {"model": model, "contents": [{"parts": [{"text": "hi"}]}]})
    received = [(p, q) for p, q, _, _ in upstream.requests]
    methods = [":generateContent", ":batchEmbedContents", ":generateContent"]
    if transport == "httpx":
        assert received == [(path + method, "") for method in methods]
    prefix = path.rsplit("/", 1)[0] + "/"
    for (raw, query), method in zip(received, methods, strict=True):
        assert raw.startswith(prefix) and raw.endswith(method) and query == ""
        segment = raw[len(prefix):-len(method)]
        assert "/" not in segment and unquote(segment) == model.removeprefix("tunedModels/")
