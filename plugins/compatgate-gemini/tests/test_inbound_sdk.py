"""The official google-genai SDK against a tiny ASGI app made of the inbound pieces, over real
HTTP on loopback: what the core will serve, checked with the client that will call it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from compatgate_gemini.inbound import (
    ContentStream,
    count_tokens_estimate,
    embed_from_openai,
    embed_to_openai,
    error_body,
    from_chat,
    to_chat,
    validate,
    wants_thoughts,
)
from google import genai
from google.genai import errors, types
from gemini_inbound_support import HMACSigner, openai_chunks
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from test_inbound_stream import anthropic_chunks

from compatgate import AuthenticationError, GatewayError, UpstreamStreamError
from compatgate.testing import serve

KEY = "sk-gemini-client"
SIGNER = HMACSigner()


class Pivot:
    """Stands for the core and an upstream: converts like the core will, answers from a script,
    and keeps the pivot requests it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.streams: list[list[dict[str, Any]]] = []  # chunks of the next streamed answers
        self.completions: list[dict[str, Any]] = []
        self.fail_after: int | None = None  # chunks before a mid-stream error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.headers.get("x-goog-api-key") != KEY and request.query_params.get("key") != KEY:
            await self.error(AuthenticationError("API key not valid."))(scope, receive, send)
            return
        model, _, method = request.path_params.get("rest", scope["path"].rsplit("/models/", 1)[-1]).partition(":")
        body = orjson.loads(await request.body())
        try:
            response = self.answer(model, method, body, request.query_params.get("alt") == "sse")
        except GatewayError as error:
            response = self.error(error)
        await response(scope, receive, send)

    def error(self, error: GatewayError) -> Response:
        status, content, headers = error_body(error)
        return Response(content, status, headers=headers)

    def answer(self, model: str, method: str, body: dict[str, Any], sse: bool) -> Response:
        if method == "countTokens":
            return Response(orjson.dumps({"totalTokens": count_tokens_estimate(body)}), media_type="application/json")
        if method in ("embedContent", "batchEmbedContents"):
            batch = method == "batchEmbedContents"
            request = embed_to_openai(body, model=model, batch=batch)
            self.requests.append(request)
            inputs = request["input"] if batch else [request["input"]]
            data = [{"index": i, "embedding": [float(len(text)), 0.5]} for i, text in enumerate(inputs)]
            answer = embed_from_openai({"data": data}, batch=batch, count=len(inputs))
            return Response(orjson.dumps(answer), media_type="application/json")
        validate(body)
        stream = method == "streamGenerateContent"
        self.requests.append(to_chat(body, model=model, stream=stream, signer=SIGNER).body)
        thoughts = wants_thoughts(body)
        if not stream:
            reply = from_chat(self.completions.pop(0), model=model, signer=SIGNER, thoughts=thoughts)
            return Response(orjson.dumps(reply), media_type="application/json")
        encoder = ContentStream(model=model, signer=SIGNER, sse=sse, thoughts=thoughts)
        chunks = self.streams.pop(0)
        fail_after = self.fail_after

        def frames() -> Iterator[bytes]:
            yield encoder.ping()
            for number, chunk in enumerate(chunks):
                if number == fail_after:
                    yield encoder.error(UpstreamStreamError("The upstream connection broke."))
                    return
                yield encoder.feed(chunk) + encoder.ping()
            yield encoder.finish()

        return StreamingResponse(frames(), media_type="text/event-stream" if sse else "application/json")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Pivot, str]]:
    pivot = Pivot()
    with serve(pivot) as url:
        yield pivot, url


@pytest.fixture
def pivot(served: tuple[Pivot, str]) -> Pivot:
    served[0].requests.clear()
    served[0].streams.clear()
    served[0].completions.clear()
    served[0].fail_after = None
    return served[0]


@pytest.fixture
def client(served: tuple[Pivot, str]) -> genai.Client:
    """A google-genai client of a gateway mounted at ``/v1`` (the SDK adds ``v1beta/...``)."""
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=served[1] + "/v1", timeout=10_000))


def test_generate_content(client: genai.Client, pivot: Pivot):
    pivot.completions.append({
        "id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})
    weather = types.FunctionDeclaration(name="get_weather", description="Weather in a city", parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]))
    response = client.models.generate_content(
        model="gpt-4o", contents="Weather in Oslo?",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.3, max_output_tokens=100,
                                           tools=[types.Tool(function_declarations=[weather])]))
    assert [(c.name, c.args, c.id) for c in response.function_calls] == [("get_weather", {"city": "Oslo"}, "call_9")]
    assert response.usage_metadata.total_token_count == 17 and response.response_id == "1"
    sent = pivot.requests[0]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Oslo?"}]
    assert sent["temperature"] == 0.3 and sent["max_completion_tokens"] == 100
    assert sent["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_stream_a_recorded_answer(client: genai.Client, pivot: Pivot):
    chunks = openai_chunks("e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin")
    pivot.streams.append(chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    responses = list(client.models.generate_content_stream(model="gpt-4o", contents="Tell me a story"))
    assert "".join(r.text or "" for r in responses) == text
    assert responses[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert responses[-1].usage_metadata.total_token_count == chunks[-1]["usage"]["total_tokens"]


def test_a_chat_with_claude_thinking_across_a_tool_call(client: genai.Client, pivot: Pivot):
    pivot.streams.append(anthropic_chunks())
    pivot.completions.append({"id": "chatcmpl-2", "model": "claude", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "21 degrees in Paris."}}]})
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=2048))
    chat = client.chats.create(model="claude", config=config)
    streamed = list(chat.send_message_stream("Weather in Paris?"))
    thoughts = [p.text for r in streamed for p in r.candidates[0].content.parts if p.thought]
    assert "".join(thoughts) == "The user wants weather."
    call = next(p for r in streamed for p in r.candidates[0].content.parts if p.function_call)
    assert call.function_call.args == {"city": "Paris"} and isinstance(call.thought_signature, bytes)
    assert pivot.requests[0]["reasoning_effort"] == "medium"
    answer = chat.send_message(types.Part.from_function_response(name="get_weather", response={"temp": 21}))
    assert answer.text == "21 degrees in Paris."
    second = pivot.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[1]["thinking_blocks"] == [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM1gbc"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"}]
    assert second[1]["tool_calls"][0]["id"] == "toolu_01"
    assert second[2] == {"role": "tool", "tool_call_id": "toolu_01", "content": '{"temp":21}'}
    # the SDK judged every streamed chunk valid, so the turn is in the curated history
    assert chat.get_history(curated=True) == chat.get_history() and len(chat.get_history()) == 5


def test_an_error_mid_stream_raises(client: genai.Client, pivot: Pivot):
    pivot.streams.append(openai_chunks("e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin"))
    pivot.fail_after = 4
    received = []
    with pytest.raises(errors.ServerError) as caught:
        for response in client.models.generate_content_stream(model="gpt-4o", contents="Tell me a story"):
            received.append(response)  # noqa: PERF402 - what came before the error
    assert caught.value.code == 502 and caught.value.status == "UNAVAILABLE"
    assert "The upstream connection broke." in caught.value.message
    assert received and all(c.finish_reason is None for r in received for c in r.candidates)


def test_errors_keep_googles_format(client: genai.Client, served: tuple[Pivot, str], pivot: Pivot):
    bad = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=served[1] + "/v1"))
    with pytest.raises(errors.ClientError) as caught:
        bad.models.generate_content(model="gpt-4o", contents="hi")
    assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gpt-4o", contents="hi", config=types.GenerateContentConfig(temperature=5))
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert "generationConfig.temperature" in caught.value.message


def test_count_tokens_and_embeddings(client: genai.Client, pivot: Pivot):
    assert client.models.count_tokens(model="gpt-4o", contents="x" * 40).total_tokens == 10 + 4
    result = client.models.embed_content(model="text-embedding-3-small", contents=["one", "three"],
                                         config=types.EmbedContentConfig(output_dimensionality=2))
    assert [e.values for e in result.embeddings] == [[3.0, 0.5], [5.0, 0.5]]
    assert pivot.requests[-1] == {"model": "text-embedding-3-small", "input": ["one", "three"], "encoding_format": "float",
                                  "dimensions": 2}
