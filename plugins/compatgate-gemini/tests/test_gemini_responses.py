"""Gemini answers -> what the client gets: finish reasons, thoughts, usage, several candidates,
blocked prompts, and streams that end badly."""

from __future__ import annotations

import re

import httpx2
import openai
import orjson
import pytest
from gemini_support import CLIENT_KEY, SSE_SPLIT, USER, Served, chunks_of, gemini_response, read_trace, sse

from compatgate.testing import FakeUpstream, OpenAISchema

REQUEST = {"model": "gemini-2.5-flash", "messages": USER}
FINISHES = [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"), ("OTHER", "stop"), ("LANGUAGE", "stop"), ("MALFORMED_FUNCTION_CALL", "stop"),
    ("FINISH_REASON_UNSPECIFIED", "stop"), ("SOMETHING_NEW", "stop"),
]


@pytest.mark.parametrize(("native", "expected"), FINISHES)
def test_finish_reasons(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema, native: str, expected: str):
    upstream.handler = upstream.json_reply(gemini_response([{"text": "partial"}], finish=native))
    completion = gw.post("/chat/completions", REQUEST).json()
    openai_schema.validate("CreateChatCompletionResponse", completion)
    choice = completion["choices"][0]
    assert (choice["finish_reason"], choice["native_finish_reason"]) == (expected, native)
    upstream.handler = upstream.sse_reply(sse(gemini_response([{"text": "par"}], finish=None),
                                              gemini_response([{"text": "tial"}], finish=native)), split=SSE_SPLIT)
    chunks = chunks_of(gw.stream(REQUEST)[1])
    for chunk in chunks:
        openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, expected]
    assert chunks[-1]["choices"][0]["native_finish_reason"] == native


def test_function_calls_finish_with_tool_calls_unless_cut(gw: Served, upstream: FakeUpstream):
    call = {"functionCall": {"name": "f", "args": {"x": [1, {"y": None}]}}}
    upstream.handler = upstream.json_reply(gemini_response([{"text": ""}, call, call]))
    choice = gw.client().chat.completions.create(**REQUEST).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    first, second = choice.message.tool_calls
    assert re.fullmatch(r"call_[0-9a-f]{24}", first.id) and first.id != second.id
    assert first.function.arguments == '{"x":[1,{"y":null}]}'
    upstream.handler = upstream.json_reply(gemini_response([call], finish="MAX_TOKENS"))
    assert gw.client().chat.completions.create(**REQUEST).choices[0].finish_reason == "length"


def test_thoughts_are_reasoning_never_content(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema):
    parts = [{"text": "Let me think.", "thought": True}, {"text": " More.", "thought": True, "thoughtSignature": "c2ln"},
             {"text": "Paris."}]
    upstream.handler = upstream.json_reply(gemini_response(parts, usageMetadata={
        "promptTokenCount": 10, "candidatesTokenCount": 2, "thoughtsTokenCount": 30, "totalTokenCount": 42}))
    completion = gw.post("/chat/completions", REQUEST).json()
    openai_schema.validate("CreateChatCompletionResponse", completion)
    message = completion["choices"][0]["message"]
    assert message["content"] == "Paris." and message["reasoning_content"] == "Let me think. More."
    assert message["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert completion["usage"] == {"prompt_tokens": 10, "completion_tokens": 32, "total_tokens": 42,
                                   "prompt_tokens_details": {"cached_tokens": 0},
                                   "completion_tokens_details": {"reasoning_tokens": 30}}


def test_usage_counted_once_with_cached_and_tool_prompt_tokens(gw: Served, upstream: FakeUpstream):
    """usageMetadata is cumulative and repeated: the last event's counts, never their sum."""
    def meta(candidates: int) -> dict:
        return {"usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60, "toolUsePromptTokenCount": 5,
                                  "candidatesTokenCount": candidates, "thoughtsTokenCount": 7, "totalTokenCount": 112 + candidates}}
    events = [gemini_response([{"text": "a"}], finish=None, **meta(1)), gemini_response([{"text": "b"}], finish=None, **meta(2)),
              gemini_response([{"text": "c"}], **meta(3))]
    upstream.handler = upstream.sse_reply(sse(*events), split=SSE_SPLIT)
    chunks = list(gw.client().chat.completions.create(**REQUEST, stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "abc"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (105, 10, 115)
    assert usage.prompt_tokens_details.cached_tokens == 60 and usage.completion_tokens_details.reasoning_tokens == 7
    record = gw.records(1)[0]
    assert (record.prompt_tokens, record.completion_tokens, record.usage.cached_tokens) == (105, 10, 60)


def test_two_candidates_streamed(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema):
    def candidate(index: int, text: str, finish: str | None = None) -> dict:
        out = {"content": {"parts": [{"text": text}], "role": "model"}, "index": index}
        return {**out, "finishReason": finish} if finish else out
    events = [{"candidates": [candidate(0, "A1"), candidate(1, "B1")]},
              {"candidates": [candidate(1, "B2", "STOP")]},
              {"candidates": [candidate(0, "A2", "MAX_TOKENS")], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 8}}]
    upstream.handler = upstream.sse_reply(sse(*events), split=SSE_SPLIT)
    chunks = chunks_of(gw.stream({**REQUEST, "n": 2})[1])
    for chunk in chunks:
        openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
    text = {0: "", 1: ""}
    finish = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            text[choice["index"]] += choice["delta"].get("content", "")
            if choice["finish_reason"]:
                finish[choice["index"]] = choice["finish_reason"]
    assert text == {0: "A1A2", 1: "B1B2"} and finish == {0: "length", 1: "stop"}
    assert upstream.received[-1].json["generationConfig"] == {"candidateCount": 2}


def test_a_choice_left_unfinished_is_an_error(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema):
    events = [{"candidates": [{"content": {"parts": [{"text": "A"}]}, "index": 0, "finishReason": "STOP"},
                              {"content": {"parts": [{"text": "B"}]}, "index": 1}]}]
    upstream.handler = upstream.sse_reply(sse(*events), split=SSE_SPLIT)
    _, payloads = gw.stream({**REQUEST, "n": 2})
    error = orjson.loads(payloads[-1])
    openai_schema.validate("ErrorResponse", error)
    assert "finishReason for choice 1" in error["error"]["message"] and b"[DONE]" not in payloads


@pytest.mark.parametrize("stream", [False, True])
def test_blocked_prompt_is_a_content_filter_finish(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema, stream: bool):
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}
    if stream:
        upstream.handler = upstream.sse_reply(sse(blocked), split=SSE_SPLIT)
        chunks = chunks_of(gw.stream({**REQUEST, "n": 2, "stream_options": {"include_usage": True}})[1])
        for chunk in chunks:
            openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
        choices = [c["choices"][0] for c in chunks[:-1]]
        assert chunks[-1]["usage"]["prompt_tokens"] == 9
    else:
        upstream.handler = upstream.json_reply(blocked)
        completion = gw.post("/chat/completions", {**REQUEST, "n": 2}).json()
        openai_schema.validate("CreateChatCompletionResponse", completion)
        choices = completion["choices"]
        assert all(c["message"]["content"] is None for c in choices)
    assert [(c["index"], c["finish_reason"], c["native_finish_reason"]) for c in choices] == [
        (0, "content_filter", "PROHIBITED_CONTENT"), (1, "content_filter", "PROHIBITED_CONTENT")]


def test_an_answer_without_candidates_is_a_502(gw: Served, upstream: FakeUpstream):
    upstream.handler = upstream.json_reply({"usageMetadata": {"promptTokenCount": 1}})
    response = gw.post("/chat/completions", REQUEST)
    assert response.status_code == 502 and "without any candidate" in response.json()["error"]["message"]


# -- streams that end badly, built from the recorded stream ---------------------------------

RECORDED = read_trace("TestA2ASingleHopFinalResponse_llm_mid-response_error.httprr")[0].response_body
FIRST_EVENT = RECORDED.split(SSE_SPLIT)[0] + SSE_SPLIT  # text, no finishReason yet


@pytest.mark.parametrize(
    ("tail", "then", "message", "code"),
    [
        (b"", "end", "ended without a finishReason", "upstream_stream_error"),
        (b"", "reset", "broke", "upstream_stream_error"),
        (b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n',
         "end", "The model is overloaded.", "unavailable"),
        (b'data: {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}}\r\n\r\n',
         "end", "Quota exceeded.", "resource_exhausted"),
        (b'data: {"candidates": [{"content": \r\n\r\n', "end", "not valid JSON", "upstream_stream_error"),
        (b"data: [1, 2]\r\n\r\n", "end", "not a JSON object", "upstream_stream_error"),
    ],
    ids=["truncated", "reset", "error-unavailable", "error-quota", "invalid-json", "not-an-object"],
)
def test_a_broken_stream_never_looks_complete(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema,
                                              tail: bytes, then: str, message: str, code: str):
    upstream.handler = upstream.sse_reply(FIRST_EVENT + tail, split=SSE_SPLIT, then=then)
    response, payloads = gw.stream({**REQUEST, "stream_options": {"include_usage": True}})
    assert response.status_code == 200 and b"[DONE]" not in payloads
    first = orjson.loads(payloads[0])
    assert first["choices"][0]["delta"]["content"].startswith("I can help you with that!")
    error = orjson.loads(payloads[-1])
    openai_schema.validate("ErrorResponse", error)
    assert message in error["error"]["message"] and error["error"]["code"] == code
    assert len(payloads) == 2  # the text, then the error: no usage chunk, no fake finish
    record = gw.records(1)[0]
    assert record.outcome == "error" and message in record.error
    upstream.handler = upstream.sse_reply(FIRST_EVENT + tail, split=SSE_SPLIT, then=then)
    with pytest.raises(openai.APIError, match=re.escape(message)):
        for _ in gw.client().chat.completions.create(**REQUEST, stream=True):
            pass


def test_client_disconnect_closes_the_upstream(gw: Served, upstream: FakeUpstream):
    upstream.handler = upstream.sse_reply(FIRST_EVENT, split=SSE_SPLIT, then="stall", stall=20)
    with httpx2.stream("POST", f"{gw.url}/chat/completions", json={**REQUEST, "stream": True}, timeout=10,
                       headers={"authorization": f"Bearer {CLIENT_KEY}"}) as response:
        assert next(line for line in response.iter_lines() if line.startswith("data: "))
    assert upstream.hung_up.wait(5), "the gateway kept the Gemini stream open after the client left"
    record = gw.records(1)[0]
    assert record.outcome == "aborted" and record.usage.estimated
