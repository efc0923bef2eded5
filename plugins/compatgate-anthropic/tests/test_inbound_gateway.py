"""``POST /messages`` and ``/messages/count_tokens`` through a served gateway, to each kind of
upstream: every OpenAI recording converted and every event emitted validated against
Anthropic's spec (and the sequence rules); Anthropic recordings relayed byte for byte with the
request checked against ``CreateMessageParams``; errors, keep-alive pings before the first
chunk, dropped server tools, token counts (Anthropic's, Gemini's, the local estimate), and the
model list in Anthropic's shapes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from anthropic_inbound_support import OPENAI_RECORDINGS, OPENAI_RECORDINGS_DIR, check_events, parse_events
from anthropic_support import CLIENT_KEY, PLUGINS, RECORDINGS, UPSTREAM_KEY, Served, recording
from starlette.types import Send

from compatgate.testing import FakeUpstream, OpenAISchema, Received, serve, serve_gateway

BODY = {"max_tokens": 300, "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
HEADERS = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
CHAT_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39,
              "prompt_tokens_details": {"cached_tokens": 10}},
}
TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


class Upstreams:
    """One fake answering as OpenAI (``/v1/chat/completions``), Anthropic (``/v1/messages``)
    and Gemini (``/v1beta/models/...``): ``answers[path suffix]`` is the handler."""

    def __init__(self) -> None:
        self.fake = FakeUpstream(handler=self.dispatch)
        self.answers: dict[str, Any] = {}

    async def dispatch(self, request: Received, send: Send) -> None:
        for suffix, handler in self.answers.items():
            if request.path.endswith(suffix):
                await handler(request, send)
                return
        await FakeUpstream.json_reply({"error": {"message": f"no answer for {request.path}"}}, status=500)(
            request, send)


@pytest.fixture
def upstreams(anthropic_schema: OpenAISchema) -> Iterator[Upstreams]:
    ups = Upstreams()
    with serve(ups.fake) as url:
        ups.url = url  # type: ignore[attr-defined]
        yield ups
    for received in ups.fake.received:
        if received.path == "/v1/messages":
            assert received.headers["x-api-key"] == UPSTREAM_KEY and "authorization" not in received.headers
            anthropic_schema.validate("CreateMessageParams", received.json)
        elif received.path == "/v1/messages/count_tokens":
            anthropic_schema.validate("CountMessageTokensParams", received.json)
        else:
            assert received.headers.get("authorization", f"Bearer {UPSTREAM_KEY}") == f"Bearer {UPSTREAM_KEY}"
        assert CLIENT_KEY not in str(received.headers)


@pytest.fixture
def gw(upstreams: Upstreams) -> Iterator[Served]:
    url = upstreams.url  # type: ignore[attr-defined]
    config = {
        "gateway": {"api_keys": [CLIENT_KEY], "load_entrypoints": False, "keepalive_seconds": 0.1},
        "providers": {
            "claude": {"type": "anthropic", "base_url": url, "api_key": UPSTREAM_KEY},
            "chat": {"type": "openai", "base_url": f"{url}/v1", "api_key": UPSTREAM_KEY},
            "gem": {"type": "gemini", "base_url": url, "api_key": UPSTREAM_KEY},
        },
        "models": [
            {"name": "claude", "provider": "claude", "upstream_model": "claude-sonnet-4-5"},
            {"name": "chat", "provider": "chat", "upstream_model": "gpt-4o"},
            {"name": "gem", "provider": "gem", "upstream_model": "gemini-2.5-flash"},
        ],
    }
    import compatgate_gemini

    with serve_gateway(config, (*PLUGINS, compatgate_gemini), served=Served) as served:
        yield served


def post(gw: Served, body: dict[str, Any], path: str = "/messages", **headers: str) -> httpx2.Response:
    return httpx2.post(f"{gw.url}{path}", json=body, headers={**HEADERS, **headers}, timeout=10)


def stream(gw: Served, body: dict[str, Any], **headers: str) -> tuple[httpx2.Response, bytes]:
    with httpx2.stream("POST", f"{gw.url}/messages", json={**body, "stream": True}, timeout=10,
                       headers={**HEADERS, **headers}) as response:
        return response, response.read()


@pytest.mark.parametrize("name", OPENAI_RECORDINGS)
def test_every_openai_recording_streams_as_valid_anthropic_events(
        name: str, gw: Served, upstreams: Upstreams, anthropic_schema: OpenAISchema) -> None:
    content = (OPENAI_RECORDINGS_DIR / name).read_bytes()
    upstreams.answers["/chat/completions"] = FakeUpstream.sse_reply(content, exact=True)
    response, data = stream(gw, {"model": "chat", **BODY})
    assert response.status_code == 200 and response.headers["request-id"] == response.headers["x-request-id"]
    message = check_events(parse_events(data), anthropic_schema)
    [record] = gw.records(1)
    assert record.endpoint == "messages" and record.outcome == "ok" and record.streamed
    sent = upstreams.fake.received[0].json
    assert sent["model"] == "gpt-4o" and sent["stream_options"] == {"include_usage": True}
    assert sent["max_completion_tokens"] == 300
    if record.usage is not None and not record.usage.estimated:  # the recording's usage chunk
        assert message["usage"]["output_tokens"] == record.usage.completion_tokens


def test_a_converted_answer_is_a_valid_message(gw: Served, upstreams: Upstreams,
                                               anthropic_schema: OpenAISchema) -> None:
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply(CHAT_ANSWER)
    response = post(gw, {"model": "chat", **BODY, "tools": TOOLS})
    assert response.status_code == 200
    message = response.json()
    anthropic_schema.validate("Message", message)
    assert [block["type"] for block in message["content"]] == ["text", "tool_use"]
    assert message["stop_reason"] == "tool_use" and message["content"][1]["input"] == {"city": "Paris"}
    assert message["usage"]["input_tokens"] == 20 and message["usage"]["cache_read_input_tokens"] == 10
    [record] = gw.records(1)
    assert (record.usage.prompt_tokens, record.usage.cached_tokens, record.usage.completion_tokens) == (30, 10, 9)


@pytest.mark.parametrize("name", RECORDINGS)
def test_native_streams_are_relayed_byte_for_byte(name: str, gw: Served, upstreams: Upstreams) -> None:
    content = recording(name)
    upstreams.answers["/v1/messages"] = FakeUpstream.sse_reply(content, exact=True)
    response, data = stream(gw, {"model": "claude", **BODY}, **{"anthropic-beta": "beta-a,beta-b"})
    assert response.status_code == 200
    # as sent; a last event left without its blank line gets one, so that clients dispatch it
    assert data == (content if content.endswith(b"\n\n") else content + b"\n\n")
    received = upstreams.fake.received[0]
    assert received.json["model"] == "claude-sonnet-4-5" and received.headers["anthropic-beta"] == "beta-a,beta-b"
    [record] = gw.records(1)
    assert record.outcome == "ok" and record.usage is not None and record.usage.prompt_tokens > 0


def test_native_usage_carries_the_cache_tokens(gw: Served, upstreams: Upstreams) -> None:
    upstreams.answers["/v1/messages"] = FakeUpstream.sse_reply(recording("message_delta_fields_response.txt"),
                                                               exact=True)
    response, _ = stream(gw, {"model": "claude", **BODY}, )
    assert response.status_code == 200
    [record] = gw.records(1)
    usage = record.usage
    # message_delta's cumulative counts: 40 fresh + 7 read + 12 written in, 8 out.
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.completion_tokens) == (
        59, 7, 12, 8)
    assert not usage.estimated


def test_native_beta_query_and_version_reach_the_upstream(gw: Served, upstreams: Upstreams) -> None:
    upstreams.answers["/v1/messages"] = FakeUpstream.json_reply(
        {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
         "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
         "usage": {"input_tokens": 5, "cache_read_input_tokens": 3, "output_tokens": 2}})
    response = post(gw, {"model": "claude", **BODY}, "/messages?beta=true", **{"anthropic-version": "2026-10-21"})
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "Hi"
    received = upstreams.fake.received[0]
    assert received.query == "beta=true" and received.headers["anthropic-version"] == "2026-10-21"
    [record] = gw.records(1)
    assert (record.usage.prompt_tokens, record.usage.cached_tokens, record.usage.completion_tokens) == (8, 3, 2)


def test_message_start_and_pings_go_out_while_the_upstream_is_silent(
        gw: Served, upstreams: Upstreams, anthropic_schema: OpenAISchema) -> None:
    content = (OPENAI_RECORDINGS_DIR / OPENAI_RECORDINGS[0]).read_bytes()
    replay = FakeUpstream.sse_reply(content, exact=True)

    async def slow(request: Received, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0.6)  # the model thinks; the gateway pings every 0.1 s meanwhile

        async def later(message: Any) -> None:
            if message["type"] == "http.response.body":
                await send(message)

        await replay(request, later)

    upstreams.answers["/chat/completions"] = slow
    _, data = stream(gw, {"model": "chat", **BODY})
    events = parse_events(data)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[1] == "ping"
    assert names.index("content_block_start") > names.index("ping")
    check_events(events, anthropic_schema)


def test_a_broken_converted_stream_ends_with_an_error_event(gw: Served, upstreams: Upstreams,
                                                             anthropic_schema: OpenAISchema) -> None:
    content = (OPENAI_RECORDINGS_DIR / OPENAI_RECORDINGS[0]).read_bytes()
    upstreams.answers["/chat/completions"] = FakeUpstream.sse_reply(content[: len(content) // 2], then="reset")
    _, data = stream(gw, {"model": "chat", **BODY})
    events = parse_events(data)
    assert events[-1][0] == "error" and "message_stop" not in [name for name, _ in events]
    check_events(events, anthropic_schema, complete=False)
    [record] = gw.records(1)
    assert record.outcome == "error"


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")])
def test_upstream_errors_keep_anthropic_types(status: int, kind: str, gw: Served, upstreams: Upstreams,
                                              anthropic_schema: OpenAISchema) -> None:
    error = {"type": "error", "error": {"type": kind, "message": "upstream says no"}}
    upstreams.answers["/v1/messages"] = FakeUpstream.json_reply(error, status=status, headers={"retry-after": "3"})
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply({"error": {"message": "no"}}, status=status,
                                                                     headers={"retry-after": "3"})
    for model in ("claude", "chat"):
        response = post(gw, {"model": model, **BODY})
        body = response.json()
        anthropic_schema.validate("ErrorResponse", body)
        assert response.status_code == status and body["error"]["type"] == kind, (model, body)
        assert body["request_id"] == response.headers["request-id"]
        assert response.headers["retry-after"] == "3" and response.headers["x-compatgate-error-source"] == "upstream"


@pytest.mark.parametrize(("body", "headers", "status", "kind"), [
    ({"model": "chat", "messages": []}, {}, 400, "invalid_request_error"),
    ({"model": "chat", **BODY, "temperature": 3}, {}, 400, "invalid_request_error"),
    ({"model": "nope", **BODY}, {}, 404, "not_found_error"),
    ({"model": "chat", **BODY}, {"x-api-key": "sk-wrong"}, 401, "authentication_error"),
    ({"model": "../x", **BODY}, {}, 400, "invalid_request_error"),
])
def test_gateway_errors_are_anthropic_errors(body: dict[str, Any], headers: dict[str, str], status: int, kind: str,
                                             gw: Served, upstreams: Upstreams,
                                             anthropic_schema: OpenAISchema) -> None:
    response = post(gw, body, **headers)
    assert response.status_code == status and response.json()["error"]["type"] == kind
    anthropic_schema.validate("ErrorResponse", response.json())
    assert response.headers["x-compatgate-error-source"] == "gateway"
    assert upstreams.fake.received == []


def test_bearer_auth_is_accepted_too(gw: Served, upstreams: Upstreams) -> None:
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply(CHAT_ANSWER)
    response = httpx2.post(f"{gw.url}/messages", json={"model": "chat", **BODY}, timeout=10,
                           headers={"authorization": f"Bearer {CLIENT_KEY}", "anthropic-version": "2023-06-01"})
    assert response.status_code == 200 and response.json()["type"] == "message"


def test_server_tools_are_dropped_and_said(gw: Served, upstreams: Upstreams, caplog: pytest.LogCaptureFixture) -> None:
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply(CHAT_ANSWER)
    web = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    with caplog.at_level(logging.INFO, logger="compatgate"):
        response = post(gw, {"model": "chat", **BODY, "tools": [*TOOLS, web], "top_k": 5})
    assert response.status_code == 200
    assert response.headers["x-compatgate-dropped-tools"] == "web_search"
    assert response.headers["x-compatgate-ignored"] == "top_k"
    assert [t["function"]["name"] for t in upstreams.fake.received[0].json["tools"]] == ["get_weather"]
    assert any("web_search" in r.getMessage() and r.name == "compatgate" for r in caplog.records)


def test_count_tokens_native_gemini_and_estimated(gw: Served, upstreams: Upstreams) -> None:
    upstreams.answers["/v1/messages/count_tokens"] = FakeUpstream.json_reply({"input_tokens": 42})
    upstreams.answers[":countTokens"] = FakeUpstream.json_reply({"totalTokens": 17})
    body = {"messages": BODY["messages"], "system": "Be brief.", "tools": TOOLS}
    counts = {model: post(gw, {"model": model, **body}, "/messages/count_tokens").json()
              for model in ("claude", "gem", "chat")}
    assert counts["claude"] == {"input_tokens": 42} and counts["gem"] == {"input_tokens": 17}
    assert counts["chat"]["input_tokens"] > 10  # the local estimate: system, message and tool
    paths = [r.path for r in upstreams.fake.received]
    assert paths == ["/v1/messages/count_tokens", "/v1beta/models/gemini-2.5-flash:countTokens"]
    gemini = upstreams.fake.received[1].json["generateContentRequest"]
    assert gemini["systemInstruction"]["parts"][0]["text"] == "Be brief." and gemini["tools"]
    records = gw.records(3)
    assert all(r.endpoint == "messages.count_tokens" and r.usage is None for r in records)
    assert all(r.units is None or r.units.tokens == 0 for r in records)


def test_count_tokens_refuses_bad_bodies_in_anthropic_format(gw: Served, upstreams: Upstreams) -> None:
    response = post(gw, {"model": "chat", "messages": "hi"}, "/messages/count_tokens")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert upstreams.fake.received == []


def test_models_in_anthropic_shapes(gw: Served, anthropic_schema: OpenAISchema) -> None:
    page = httpx2.get(f"{gw.url}/models?limit=2", headers=HEADERS).json()
    anthropic_schema.validate("ListResponse_ModelInfo_", page)
    assert [m["id"] for m in page["data"]] == ["claude", "chat"] and page["has_more"] is True
    rest = httpx2.get(f"{gw.url}/models?after_id=chat", headers=HEADERS).json()
    assert [m["id"] for m in rest["data"]] == ["gem"] and rest["has_more"] is False
    one = httpx2.get(f"{gw.url}/models/gem", headers=HEADERS).json()
    anthropic_schema.validate("ModelInfo", one)
    openai = httpx2.get(f"{gw.url}/models", headers={"authorization": f"Bearer {CLIENT_KEY}"}).json()
    assert openai["object"] == "list"
    bad = httpx2.get(f"{gw.url}/models?limit=0", headers=HEADERS)
    assert bad.status_code == 400


def test_gateway_signed_thinking_never_reaches_anthropic(gw: Served, upstreams: Upstreams) -> None:
    """A conversation that had a converted answer (thinking signed by the gateway) moves to an
    Anthropic model: the gateway's block is taken out, Anthropic's own kept."""
    reasoning = {**CHAT_ANSWER, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Sunny.", "reasoning_content": "Paris is sunny."}}]}
    upstreams.answers["/chat/completions"] = FakeUpstream.json_reply(reasoning)
    first = post(gw, {"model": "chat", **BODY}).json()
    assert first["content"][0]["type"] == "thinking"
    upstreams.answers["/v1/messages"] = FakeUpstream.json_reply(
        {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
         "content": [{"type": "text", "text": "Yes"}], "stop_reason": "end_turn", "stop_sequence": None,
         "usage": {"input_tokens": 5, "output_tokens": 2}})
    theirs = {"type": "thinking", "thinking": "mine", "signature": "EqQBCkgIARABGAIiQL"}
    history = [*BODY["messages"], {"role": "assistant", "content": [*first["content"], theirs]},
               {"role": "user", "content": "And tomorrow?"}]
    assert post(gw, {"model": "claude", "max_tokens": 50, "messages": history}).status_code == 200
    sent = upstreams.fake.received[-1].json["messages"][1]["content"]
    assert [block["type"] for block in sent] == ["text", "thinking"] and sent[1] == theirs
