"""Gemini's API through a served gateway (``/{version}/models/{model}:<method>``) to each kind
of upstream: the recorded Gemini exchanges relayed natively (the recorded request in, its
events out), every OpenAI recording converted (SSE and the JSON array), Anthropic upstreams
through chat, token counts (Gemini's, Anthropic's, the local estimate), embeddings both ways,
Google-format errors, ``?key=`` authentication kept out of the query string, dropped hosted
tools, and the google-genai SDK reading what the gateway writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import compatgate_anthropic
import compatgate_gemini
import httpx2
import orjson
import pytest
from gemini_inbound_support import OPENAI_RECORDINGS, OPENAI_SSE
from gemini_support import CLIENT_KEY, SSE_SPLIT, TRACE_NAMES, UPSTREAM_KEY, gemini_response, read_trace, sse
from google import genai
from google.genai import types
from starlette.types import Send

from compatgate.testing import FakeUpstream, Received, ServedGateway, serve, serve_gateway

CONTENTS = {"contents": [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}]}
HEADERS = {"x-goog-api-key": CLIENT_KEY}
CHAT_ANSWER = {
    "id": "chatcmpl-7", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
    "usage": {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28},
}
EMBEDDINGS = {"object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 4, "total_tokens": 4},
              "data": [{"object": "embedding", "index": 1, "embedding": [0.5, 0.25]},
                       {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}]}


class Upstreams:
    """One fake answering every protocol: ``answers[path suffix]`` is the handler."""

    def __init__(self) -> None:
        self.fake = FakeUpstream(handler=self.dispatch)
        self.answers: dict[str, Any] = {}
        self.url = ""

    async def dispatch(self, request: Received, send: Send) -> None:
        for suffix, handler in self.answers.items():
            if request.path.endswith(suffix):
                await handler(request, send)
                return
        await FakeUpstream.json_reply({"error": {"message": f"no answer for {request.path}"}}, status=500)(
            request, send)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    with serve(ups.fake) as url:
        ups.url = url
        yield ups
    for received in ups.fake.received:
        assert CLIENT_KEY not in str(received.headers) and CLIENT_KEY not in received.query


@pytest.fixture
def gw(upstreams: Upstreams) -> Iterator[ServedGateway]:
    url = upstreams.url
    config = {
        "gateway": {"api_keys": [CLIENT_KEY], "load_entrypoints": False, "keepalive_seconds": 0.1},
        "providers": {
            "gem": {"type": "gemini", "base_url": url, "api_key": UPSTREAM_KEY},
            "chat": {"type": "openai", "base_url": f"{url}/v1", "api_key": UPSTREAM_KEY},
            "claude": {"type": "anthropic", "base_url": url, "api_key": UPSTREAM_KEY},
        },
        "models": [
            {"name": "gemini-2.5-flash", "provider": "gem"},
            {"name": "chat", "provider": "chat", "upstream_model": "gpt-4o"},
            {"name": "claude", "provider": "claude", "upstream_model": "claude-sonnet-4-5"},
        ],
    }
    with serve_gateway(config, (compatgate_gemini, compatgate_anthropic)) as served:
        yield served


def post(gw: ServedGateway, model: str, method: str, body: dict[str, Any], *, query: str = "",
         headers: dict[str, str] | None = None, version: str = "v1beta") -> httpx2.Response:
    return httpx2.post(f"{gw.url}/{version}/models/{model}:{method}{query}", json=body, timeout=10,
                       headers=HEADERS if headers is None else headers)


def sse_events(data: bytes) -> list[dict[str, Any]]:
    """The responses of Google's SSE framing (keep-alive blank lines between them ignored)."""
    assert data.endswith(SSE_SPLIT), data[-60:]
    blocks = [block.strip() for block in data.split(SSE_SPLIT) if block.strip()]
    assert all(block.startswith(b"data: ") for block in blocks), blocks
    return [orjson.loads(block[6:]) for block in blocks]


STREAMED = [(name, number) for name in TRACE_NAMES for number, exchange in enumerate(read_trace(name))
            if exchange.streamed and exchange.status == 200]


@pytest.mark.parametrize(("name", "number"), STREAMED)
def test_recorded_gemini_streams_are_relayed_natively(name: str, number: int, gw: ServedGateway,
                                                      upstreams: Upstreams) -> None:
    exchange = read_trace(name)[number]
    upstreams.answers[":streamGenerateContent"] = FakeUpstream.sse_reply(exchange.response_body, split=SSE_SPLIT)
    response = post(gw, "gemini-2.5-flash", "streamGenerateContent", exchange.request, query="?alt=sse")
    assert response.status_code == 200, response.text
    assert sse_events(response.content) == exchange.events()
    received = upstreams.fake.received[0]
    assert received.query == "alt=sse" and received.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert received.json == {k: v for k, v in exchange.request.items() if k != "model"}
    [record] = gw.records(1)
    assert record.endpoint == "gemini.stream_generate_content" and record.outcome == "ok"
    for event in exchange.events()[::-1]:
        if "usageMetadata" in event:
            assert record.usage.prompt_tokens == event["usageMetadata"]["promptTokenCount"]
            break


@pytest.mark.parametrize("name", OPENAI_RECORDINGS)
@pytest.mark.parametrize("sse", [True, False], ids=["sse", "array"])
def test_openai_recordings_stream_as_gemini_responses(name: str, sse: bool, gw: ServedGateway,
                                                      upstreams: Upstreams) -> None:
    upstreams.answers["/chat/completions"] = FakeUpstream.sse_reply((OPENAI_SSE / name).read_bytes(), exact=True)
    body = {**CONTENTS, "generationConfig": {"maxOutputTokens": 200, "thinkingConfig": {"includeThoughts": True}}}
    response = post(gw, "chat", "streamGenerateContent", body, query="?alt=sse" if sse else "")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream" if sse else "application/json")
    events = sse_events(response.content) if sse else orjson.loads(response.content)
    for event in events:
        types.GenerateContentResponse.model_validate(event)
        assert all(candidate["content"]["parts"] for candidate in event["candidates"])
    assert events[-1]["candidates"][0]["finishReason"] in ("STOP", "MAX_TOKENS", "SAFETY", "OTHER",
                                                            "MALFORMED_FUNCTION_CALL")
    sent = upstreams.fake.received[0].json
    assert sent["model"] == "gpt-4o" and sent["max_completion_tokens"] == 200
    assert sent["stream_options"] == {"include_usage": True}
    [record] = gw.records(1)
    assert record.outcome == "ok" and record.streamed


def test_a_converted_answer_and_its_function_call(gw: ServedGateway, upstreams: Upstreams) -> None:
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply(CHAT_ANSWER)
    tools = [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}]}, {"googleSearch": {}}]
    body = {**CONTENTS, "tools": tools, "generationConfig": {"topK": 40}}
    response = post(gw, "chat", "generateContent", body)
    assert response.status_code == 200
    parsed = types.GenerateContentResponse.model_validate(response.json())
    assert parsed.text == "Looking." and parsed.function_calls[0].args == {"city": "Paris"}
    assert parsed.usage_metadata.prompt_token_count == 21
    assert response.headers["x-compatgate-dropped-tools"] == "tools[1].googleSearch"
    assert response.headers["x-compatgate-ignored"] == "generationConfig.topK"
    assert [t["function"]["name"] for t in upstreams.fake.received[0].json["tools"]] == ["get_weather"]


def test_the_stream_is_converted_for_an_anthropic_upstream(gw: ServedGateway, upstreams: Upstreams) -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                              "model": "claude-sonnet-4-5", "stop_reason": None,
                                              "stop_sequence": None,
                                              "usage": {"input_tokens": 12, "cache_read_input_tokens": 4,
                                                        "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sunny."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    ]
    content = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)
    upstreams.answers["/v1/messages"] = FakeUpstream.sse_reply(content)
    response = post(gw, "claude", "streamGenerateContent", CONTENTS, query="?alt=sse")
    out = sse_events(response.content)
    assert "".join(p.get("text", "") for e in out for p in e["candidates"][0]["content"]["parts"]) == "Sunny."
    assert out[-1]["usageMetadata"]["cachedContentTokenCount"] == 4
    [record] = gw.records(1)
    assert (record.usage.prompt_tokens, record.usage.cached_tokens, record.usage.completion_tokens) == (16, 4, 3)


def test_a_broken_converted_stream_ends_with_googles_error(gw: ServedGateway, upstreams: Upstreams) -> None:
    content = (OPENAI_SSE / OPENAI_RECORDINGS[0]).read_bytes()
    upstreams.answers["/chat/completions"] = FakeUpstream.sse_reply(content[: len(content) // 2], then="reset")
    array = orjson.loads(post(gw, "chat", "streamGenerateContent", CONTENTS).content)
    assert set(array[-1]) == {"error"} and array[-1]["error"]["status"] == "UNAVAILABLE"
    assert not any(c.get("finishReason") for e in array[:-1] for c in e["candidates"])
    assert gw.records(1)[0].outcome == "error"


def test_count_tokens_three_ways(gw: ServedGateway, upstreams: Upstreams) -> None:
    upstreams.answers[":countTokens"] = FakeUpstream.json_reply({"totalTokens": 9})
    upstreams.answers["/v1/messages/count_tokens"] = FakeUpstream.json_reply({"input_tokens": 31})
    body = {"generateContentRequest": {**CONTENTS, "systemInstruction": {"parts": [{"text": "Brief."}]}}}
    counts = {model: post(gw, model, "countTokens", body).json() for model in ("gemini-2.5-flash", "claude", "chat")}
    assert counts["gemini-2.5-flash"] == {"totalTokens": 9} and counts["claude"] == {"totalTokens": 31}
    assert counts["chat"]["totalTokens"] > 4
    native, anthropic = upstreams.fake.received
    assert native.json["generateContentRequest"]["model"] == "models/gemini-2.5-flash"
    assert anthropic.path == "/v1/messages/count_tokens" and anthropic.json["system"][0]["text"] == "Brief."
    assert all(r.usage is None and r.outcome == "ok" for r in gw.records(3))


def test_embeddings_native_and_converted(gw: ServedGateway, upstreams: Upstreams) -> None:
    upstreams.answers[":batchEmbedContents"] = FakeUpstream.json_reply({"embeddings": [{"values": [0.1]}] * 2})
    upstreams.answers["/embeddings"] = FakeUpstream.json_reply(EMBEDDINGS)
    batch = {"requests": [{"content": {"parts": [{"text": "one"}]}}, {"content": {"parts": [{"text": "two"}]}}]}
    native = post(gw, "gemini-2.5-flash", "batchEmbedContents", batch).json()
    converted = post(gw, "chat", "batchEmbedContents", batch).json()
    single = {"content": {"parts": [{"text": "one"}]}, "outputDimensionality": 2}
    upstreams.answers["/embeddings"] = FakeUpstream.json_reply({**EMBEDDINGS, "data": EMBEDDINGS["data"][1:]})
    one = post(gw, "chat", "embedContent", single).json()
    assert native == {"embeddings": [{"values": [0.1]}] * 2}
    assert converted == {"embeddings": [{"values": [1.0, 0.0]}, {"values": [0.5, 0.25]}]}
    assert one == {"embedding": {"values": [1.0, 0.0]}}
    received = upstreams.fake.received
    assert [r["model"] for r in received[0].json["requests"]] == ["models/gemini-2.5-flash"] * 2
    assert received[1].json == {"model": "gpt-4o", "input": ["one", "two"], "encoding_format": "float"}
    assert received[2].json["dimensions"] == 2
    records = gw.records(3)
    assert records[0].usage.estimated and records[1].usage.prompt_tokens == 4


@pytest.mark.parametrize(("model", "method", "body", "headers", "status", "state"), [
    ("chat", "generateContent", {"contents": []}, HEADERS, 400, "INVALID_ARGUMENT"),
    ("chat", "generateContent", {**CONTENTS, "cachedContent": "cachedContents/x"}, HEADERS, 400, "INVALID_ARGUMENT"),
    ("nope", "generateContent", CONTENTS, HEADERS, 404, "NOT_FOUND"),
    ("chat", "generateContent", CONTENTS, {"x-goog-api-key": "wrong"}, 401, "UNAUTHENTICATED"),
    ("chat", "generateContent", CONTENTS, {}, 401, "UNAUTHENTICATED"),
    ("..", "generateContent", CONTENTS, HEADERS, 400, "INVALID_ARGUMENT"),
    ("chat", "embedContent", {"content": {"parts": [{"inlineData": {"data": "AA=="}}]}}, HEADERS, 400,
     "INVALID_ARGUMENT"),
])
def test_errors_in_googles_format(model: str, method: str, body: dict[str, Any], headers: dict[str, str],
                                  status: int, state: str, gw: ServedGateway, upstreams: Upstreams) -> None:
    response = post(gw, model, method, body, headers=headers)
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["status"]) == (status, status, state), error
    assert upstreams.fake.received == []


def test_an_unknown_version_or_method_is_a_404(gw: ServedGateway) -> None:
    assert post(gw, "chat", "generateContent", CONTENTS, version="v9").json()["error"]["code"] == 404
    assert post(gw, "chat", "predict", CONTENTS).status_code == 404


@pytest.mark.parametrize("model", ["%00", "a%0Ab", "%0D%0A"])
def test_a_model_the_routes_cannot_read_is_answered_in_googles_format(model: str, gw: ServedGateway,
                                                                      upstreams: Upstreams) -> None:
    """Control characters in the model: refused as an invalid model name (400) or, where no route
    can read it (a line feed), a 404 — in Google's format either way, never OpenAI's."""
    response = post(gw, model, "generateContent", CONTENTS)
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["status"]) in ((400, 400, "INVALID_ARGUMENT"),
                                                                      (404, 404, "NOT_FOUND")), error
    assert upstreams.fake.received == []


def test_the_key_may_come_in_the_query_and_is_taken_out_of_it(upstreams: Upstreams) -> None:
    seen: list[bytes] = []

    async def host(scope: Any, receive: Any, send: Any) -> None:  # a host app logging the query afterwards
        await gateway(scope, receive, send)
        seen.append(scope["query_string"])

    config = {"gateway": {"api_keys": [CLIENT_KEY], "load_entrypoints": False},
              "providers": {"chat": {"type": "openai", "base_url": f"{upstreams.url}/v1", "api_key": UPSTREAM_KEY}},
              "models": [{"name": "chat", "provider": "chat"}]}
    from compatgate import Gateway

    gateway = Gateway(config, plugins=(compatgate_gemini,))
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply(CHAT_ANSWER)
    with serve(host) as url:
        response = httpx2.post(f"{url}/v1beta/models/chat:streamGenerateContent?alt=sse&key={CLIENT_KEY}",
                               json=CONTENTS, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert seen == [b"alt=sse"]


def test_a_gateway_envelope_never_reaches_gemini(gw: ServedGateway, upstreams: Upstreams,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A conversation that had a converted answer (its call signed by the gateway) moves to a
    Gemini model: the envelope is replaced by Google's documented skip value."""
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply(
        {**CHAT_ANSWER, "choices": [{**CHAT_ANSWER["choices"][0], "message": {
            **CHAT_ANSWER["choices"][0]["message"], "reasoning_content": "I should call the tool."}}]})
    first = post(gw, "chat", "generateContent", CONTENTS).json()
    call = next(p for p in first["candidates"][0]["content"]["parts"] if "functionCall" in p)
    assert call["thoughtSignature"]
    upstreams.answers[":generateContent"] = FakeUpstream.json_reply(gemini_response([{"text": "Sunny."}]))
    history = {"contents": [*CONTENTS["contents"], first["candidates"][0]["content"],
                            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                            "response": {"output": "sun"}}}]}]}
    answer = post(gw, "gemini-2.5-flash", "generateContent", history)
    assert answer.status_code == 200 and answer.json()["candidates"][0]["content"]["parts"][0]["text"] == "Sunny."
    sent = upstreams.fake.received[-1].json["contents"][1]["parts"]
    signed = next(p for p in sent if "functionCall" in p)
    assert signed["thoughtSignature"] == "skip_thought_signature_validator"


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "chat"])
def test_keepalives_are_blank_lines_the_sdk_ignores(model: str, gw: ServedGateway, upstreams: Upstreams) -> None:
    """While the upstream is silent the gateway writes blank lines (natively and converted),
    and the google-genai SDK's stream still reads every response."""
    upstreams.answers[":streamGenerateContent"] = FakeUpstream.sse_reply(
        sse(gemini_response([{"text": "a"}], finish=None), gemini_response([{"text": "b"}])), split=SSE_SPLIT,
        delay=0.35)
    chunks = [b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
              b'[{"index":0,"delta":{"content":"' + text + b'"},"finish_reason":' + finish + b'}]}\n\n'
              for text, finish in ((b"a", b"null"), (b"b", b'"stop"'))]
    upstreams.answers["/chat/completions"] = FakeUpstream.sse_reply(b"".join(chunks) + b"data: [DONE]\n\n",
                                                                    delay=0.35)
    raw = post(gw, model, "streamGenerateContent", CONTENTS, query="?alt=sse").content
    assert b"\r\n\r\n\r\n" in raw  # a keep-alive went out between two responses
    client = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gw.url, api_version="v1beta"))
    texts = [chunk.text for chunk in client.models.generate_content_stream(model=model, contents="Hi")]
    assert "".join(texts) == "ab"
