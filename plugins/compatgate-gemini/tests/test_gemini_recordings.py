"""Every recorded Gemini exchange, replayed byte for byte through the gateway: the request the
gateway sends equals the recorded one, and the client gets exactly what Gemini said."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from gemini_support import (
    SSE_SPLIT,
    TRACE_NAMES,
    UPSTREAM_KEY,
    Answer,
    Exchange,
    Served,
    chunks_of,
    expected_upstream_request,
    model_of,
    openai_request,
    read_trace,
    recorded_answer,
)

from compatgate.testing import FakeUpstream, OpenAISchema

EXCHANGES = [(name, index) for name in TRACE_NAMES for index in range(len(read_trace(name)))]
GENERATED_ID = re.compile(r"call_[0-9a-f]{24}")


def test_all_recordings_are_here():
    assert len(TRACE_NAMES) == 7 and len(EXCHANGES) == 15, f"expected the Gemini traces, found {TRACE_NAMES}"


def _gateway(make_gateway: Callable[..., Served], upstream: FakeUpstream, exchange: Exchange) -> Served:
    recorded = exchange.request
    options: dict[str, Any] = {}
    if "tools" in recorded:  # the recordings declare their tools with parametersJsonSchema
        options["tool_schema"] = "json_schema"
    if "thinkingConfig" in recorded["generationConfig"]:
        options["include_thoughts"] = True
    if exchange.streamed:
        upstream.handler = upstream.sse_reply(exchange.response_body, split=SSE_SPLIT)
    else:
        upstream.handler = upstream.json_reply(exchange.response_body)
    return make_gateway(**options)


def _check_request(upstream: FakeUpstream, exchange: Exchange) -> None:
    sent = upstream.received[-1]
    method = "streamGenerateContent" if exchange.streamed else "generateContent"
    assert sent.method == "POST" and sent.path == f"/v1beta/models/{model_of(exchange)}:{method}"
    assert sent.query == ("alt=sse" if exchange.streamed else "")
    assert sent.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert "authorization" not in sent.headers and UPSTREAM_KEY not in sent.query
    assert sent.json == expected_upstream_request(exchange)


def _check_usage(usage: dict[str, Any], answer: Answer) -> None:
    assert usage["prompt_tokens"] == answer.usage["prompt"]
    assert usage["completion_tokens"] == answer.usage["candidates"] + answer.usage["thoughts"]
    assert usage["total_tokens"] == answer.usage["total"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": answer.usage["thoughts"]}
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


def _check_calls(tool_calls: list[dict[str, Any]], answer: Answer) -> None:
    assert [call["index"] for call in tool_calls] == list(range(len(answer.calls)))
    for call, (name, args, call_id, signature) in zip(tool_calls, answer.calls, strict=True):
        assert call["type"] == "function" and call["function"]["name"] == name
        assert orjson.loads(call["function"]["arguments"]) == args
        assert call["id"] == call_id if call_id else GENERATED_ID.fullmatch(call["id"])
        carried = call.get("extra_content", {}).get("google", {}).get("thought_signature")
        assert carried == signature


@pytest.mark.parametrize(("name", "index"), EXCHANGES, ids=[f"{n.removesuffix('.httprr')}-{i}" for n, i in EXCHANGES])
def test_recorded_exchange(make_gateway, upstream: FakeUpstream, openai_schema: OpenAISchema, name: str, index: int):
    exchange = read_trace(name)[index]
    answer = recorded_answer(exchange)
    gw = _gateway(make_gateway, upstream, exchange)
    body = openai_request(exchange)
    assert answer.finish == "STOP"
    if exchange.streamed:
        response, payloads = gw.stream({**body, "stream_options": {"include_usage": True}})
        assert response.status_code == 200
        chunks = chunks_of(payloads)
        for chunk in chunks:
            openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
        *answer_chunks, usage_chunk = chunks
        # One chunk per Gemini event, as it arrives; then the usage chunk.
        assert len(answer_chunks) == len(exchange.events()) and usage_chunk["choices"] == []
        assert {c["id"] for c in chunks} == {f"chatcmpl-{exchange.events()[0]['responseId']}"}
        deltas = [c["choices"][0]["delta"] for c in answer_chunks]
        assert deltas[0]["role"] == "assistant" and all("role" not in d for d in deltas[1:])
        assert "".join(d.get("content", "") for d in deltas) == answer.text
        assert "".join(d.get("reasoning_content", "") for d in deltas) == answer.reasoning
        _check_calls([call for d in deltas for call in d.get("tool_calls", [])], answer)
        finishes = [c["choices"][0]["finish_reason"] for c in answer_chunks]
        assert finishes[:-1] == [None] * (len(finishes) - 1)
        assert finishes[-1] == ("tool_calls" if answer.calls else "stop")
        assert answer_chunks[-1]["choices"][0]["native_finish_reason"] == "STOP"
        _check_usage(usage_chunk["usage"], answer)
    else:
        response = gw.post("/chat/completions", body)
        assert response.status_code == 200, response.text
        completion = response.json()
        openai_schema.validate("CreateChatCompletionResponse", completion)
        (choice,) = completion["choices"]
        message = choice["message"]
        assert message["content"] == (answer.text or None)
        assert message.get("reasoning_content", "") == answer.reasoning
        _check_calls([{**c, "index": i} for i, c in enumerate(message.get("tool_calls", []))], answer)
        assert choice["finish_reason"] == ("tool_calls" if answer.calls else "stop")
        assert completion["model"] == orjson.loads(exchange.response_body)["modelVersion"]
        _check_usage(completion["usage"], answer)
    _check_request(upstream, exchange)
    record = gw.records(1)[0]
    assert record.outcome == "ok" and record.streamed == exchange.streamed
    assert (record.prompt_tokens, record.total_tokens) == (answer.usage["prompt"], answer.usage["total"])
    assert record.usage.reasoning_tokens == answer.usage["thoughts"] and not record.usage.estimated


@pytest.mark.parametrize(("name", "index"), EXCHANGES, ids=[f"{n.removesuffix('.httprr')}-{i}" for n, i in EXCHANGES])
def test_what_the_sdk_receives(make_gateway, upstream: FakeUpstream, name: str, index: int):
    exchange = read_trace(name)[index]
    answer = recorded_answer(exchange)
    client = _gateway(make_gateway, upstream, exchange).client()
    body = openai_request(exchange)
    if exchange.streamed:
        stream = client.chat.completions.create(**body, stream=True)  # no usage asked: none relayed
        chunks = list(stream)
        assert all(chunk.choices for chunk in chunks)
        deltas = [chunk.choices[0].delta for chunk in chunks]
        assert "".join(d.content or "" for d in deltas) == answer.text
        assert "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas) == answer.reasoning
        calls = [call for d in deltas for call in d.tool_calls or []]
        assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [(n, a) for n, a, _, _ in answer.calls]
        finish = chunks[-1].choices[0].finish_reason
    else:
        completion = client.chat.completions.create(**body)
        message = completion.choices[0].message
        assert message.content == (answer.text or None)
        assert (message.model_extra or {}).get("reasoning_content", "") == answer.reasoning
        calls = message.tool_calls or []
        assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [(n, a) for n, a, _, _ in answer.calls]
        assert completion.usage.completion_tokens_details.reasoning_tokens == answer.usage["thoughts"]
        finish = completion.choices[0].finish_reason
    assert finish == ("tool_calls" if answer.calls else "stop")
    signatures = [(c.model_extra or {}).get("extra_content", {}).get("google", {}).get("thought_signature") for c in calls]
    assert signatures == [s for _, _, _, s in answer.calls]
