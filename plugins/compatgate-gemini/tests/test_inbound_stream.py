"""ContentStream: recorded OpenAI streams (and Claude's, through the anthropic plugin) encoded as
Gemini streams that the official google-genai types accept and that say the same thing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from compatgate_gemini.inbound import ContentStream, to_chat
from compatgate_gemini.inbound.envelope import unseal
from google.genai import types
from gemini_inbound_support import OPENAI_RECORDINGS, HMACSigner, openai_chunks, sse_responses

from compatgate import InvalidRequestError, RateLimitError, UpstreamStreamError

SIGNER = HMACSigner()


def encode(chunks: list[dict[str, Any]], *, sse: bool = True, thoughts: bool = True, model: str = "m") -> tuple[bytes, ContentStream]:
    stream = ContentStream(model=model, signer=SIGNER, sse=sse, thoughts=thoughts)
    data = b"".join(stream.feed(chunk) for chunk in chunks) + stream.finish()
    return data, stream


def expected(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What the recorded chunks say, per choice: text, calls (name, args, id), finish."""
    said: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            entry = said.setdefault(choice["index"], {"text": "", "calls": {}, "finish": None})
            delta = choice["delta"]
            entry["text"] += (delta.get("content") or "") + (delta.get("refusal") or "")
            for call in delta.get("tool_calls") or ():
                slot = entry["calls"].setdefault(call["index"], {"name": "", "args": "", "id": None})
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += call.get("function", {}).get("name") or ""
                slot["args"] += call.get("function", {}).get("arguments") or ""
            entry["finish"] = choice["finish_reason"] or entry["finish"]
    return said


@pytest.mark.parametrize("name", OPENAI_RECORDINGS, ids=[n[:12] for n in OPENAI_RECORDINGS])
def test_recorded_openai_streams_become_valid_gemini_streams(name: str):
    chunks = openai_chunks(name)
    data, stream = encode(chunks)
    responses = sse_responses(data)
    parsed = [types.GenerateContentResponse.model_validate(response) for response in responses]
    said = expected(chunks)
    for index, entry in said.items():
        parts = [p for r in parsed for c in r.candidates or () if c.index == index for p in c.content.parts or ()]
        assert "".join(p.text or "" for p in parts) == entry["text"]
        calls = [p.function_call for p in parts if p.function_call]
        assert [(c.name, c.args, c.id) for c in calls] == [
            (call["name"], orjson.loads(call["args"]), call["id"]) for _, call in sorted(entry["calls"].items())]
        finishes = [c.finish_reason for r in parsed for c in r.candidates or () if c.index == index and c.finish_reason]
        want = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}[entry["finish"]]
        assert finishes == [types.FinishReason(want)]  # once, in the last response only
        assert all(c.content and c.content.parts for r in parsed for c in r.candidates)  # chats keep the turn
    usage = chunks[-1]["usage"]
    last = parsed[-1]
    assert last.usage_metadata.prompt_token_count == usage["prompt_tokens"]
    assert last.usage_metadata.candidates_token_count == usage["completion_tokens"]
    assert last.usage_metadata.total_token_count == usage["total_tokens"]
    assert all(r.usage_metadata is None for r in parsed[:-1])
    assert {r.response_id for r in parsed} == {chunks[0]["id"].removeprefix("chatcmpl-")}
    assert {r.model_version for r in parsed} == {"gpt-4o-2024-08-06"}
    assert stream.usage is not None and stream.usage.total_tokens == usage["total_tokens"]
    assert stream.generated == sum(len(e["text"]) + sum(len(c["args"]) for c in e["calls"].values()) for e in said.values())
    # the array form carries the same responses, and is one valid JSON document
    array, _ = encode(chunks, sse=False)
    assert array.startswith(b"[{") and array.endswith(b"}]")
    assert orjson.loads(array) == responses


def test_text_is_sent_as_it_comes():
    chunks = openai_chunks(next(n for n in OPENAI_RECORDINGS if n.startswith("d615")))
    stream = ContentStream(model="m", signer=SIGNER, sse=True)
    sizes = [len(stream.feed(chunk)) for chunk in chunks]
    content = [bool(c["choices"] and c["choices"][0]["delta"].get("content")) for c in chunks]
    assert [size > 0 for size in sizes] == content  # one response per text delta, nothing for the rest


def test_tool_calls_are_sent_whole_once_complete():
    name = next(n for n in OPENAI_RECORDINGS if n.startswith("f822"))  # parallel calls, arguments in fragments
    chunks = openai_chunks(name)
    stream = ContentStream(model="m", signer=SIGNER, sse=True)
    outputs = [stream.feed(chunk) for chunk in chunks]
    sent = [sse_responses(out) for out in outputs if out]
    first_call_sent_when = next(i for i, out in enumerate(outputs) if out)
    second_call_started = next(i for i, c in enumerate(chunks) if c["choices"] and any(
        t["index"] == 1 for t in c["choices"][0]["delta"].get("tool_calls") or ()))
    assert first_call_sent_when == second_call_started  # the first call goes when the next one starts
    calls = expected(chunks)[0]["calls"]
    assert len(calls) == 2
    assert sent[0][0]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": calls[0]["name"], "args": orjson.loads(calls[0]["args"]), "id": calls[0]["id"]}}]
    final = sse_responses(stream.finish())[-1]
    assert final["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": calls[1]["name"], "args": orjson.loads(calls[1]["args"]), "id": calls[1]["id"]}}]
    assert final["candidates"][0]["finishReason"] == "STOP"


def test_invalid_arguments_are_a_malformed_function_call():
    chunks = [
        {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": '}}]}}]},
        {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    responses = sse_responses(encode(chunks)[0])
    assert responses == [{"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"},
                                          "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}],
                          "modelVersion": "m", "responseId": "1"}]


def reasoning_chunks() -> list[dict[str, Any]]:
    head = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": "deepseek"}
    return [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Think"}}]},
        {**head, "choices": [{"index": 0, "delta": {"reasoning_content": "ing."}}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "Hello"}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14,
                                          "completion_tokens_details": {"reasoning_tokens": 4}}},
    ]


def test_reasoning_becomes_thought_parts_only_when_asked():
    responses = sse_responses(encode(reasoning_chunks())[0])
    parts = [p for r in responses for p in r["candidates"][0]["content"]["parts"]]
    assert parts[:3] == [{"text": "Think", "thought": True}, {"text": "ing.", "thought": True}, {"text": "Hello"}]
    assert responses[-1]["usageMetadata"] == {"promptTokenCount": 5, "candidatesTokenCount": 5,
                                              "totalTokenCount": 14, "thoughtsTokenCount": 4}
    response = types.GenerateContentResponse.model_validate(responses[0])
    assert response.candidates[0].content.parts[0].thought is True
    hidden = sse_responses(encode(reasoning_chunks(), thoughts=False)[0])
    assert not any(p.get("thought") for r in hidden for p in r["candidates"][0]["content"]["parts"])


def anthropic_chunks() -> list[dict[str, Any]]:
    """The pivot chunks the anthropic plugin makes of a Claude stream that thinks, then calls a tool."""
    converter = pytest.importorskip("compatgate_anthropic.stream").StreamConverter(None, "claude")
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 20, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "The user wants weather."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbc"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgB"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": 'is"}'}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
        {"type": "message_stop"},
    ]
    return [chunk for event in events for chunk in converter.feed(event)]


def test_claude_thinking_rides_in_the_signature_of_the_call_and_comes_back():
    chunks = anthropic_chunks()
    data, _ = encode(chunks, model="claude")
    responses = sse_responses(data)
    for response in responses:
        types.GenerateContentResponse.model_validate(response)
    parts = [p for r in responses for p in r["candidates"][0]["content"]["parts"]]
    call = next(p for p in parts if "functionCall" in p)
    assert call["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}, "id": "toolu_01"}
    state = unseal(call["thoughtSignature"], SIGNER, "claude")
    assert state.thinking_blocks == [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM1gbc"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"}]
    assert unseal(call["thoughtSignature"], SIGNER, "another-model") is None
    assert unseal(call["thoughtSignature"], HMACSigner(b"other key"), "claude") is None
    # The client sends the turn back (every streamed content, as the google-genai chats keep it).
    history = [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]
    history += [r["candidates"][0]["content"] for r in responses]
    history.append({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "id": "toolu_01",
                                                                    "response": {"temp": 21}}}]})
    chat = to_chat({"contents": history}, model="claude", stream=False, signer=SIGNER).body
    assistant = chat["messages"][1]
    assert assistant["thinking_blocks"] == state.thinking_blocks
    assert assistant["tool_calls"] == [{"id": "toolu_01", "type": "function",
                                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "toolu_01", "content": '{"temp":21}'}
    messages = pytest.importorskip("compatgate_anthropic.messages")
    _, converted = messages.convert_messages(chat["messages"])
    assert [block["type"] for block in converted[1]["content"]] == ["thinking", "redacted_thinking", "tool_use"]


def test_gemini_signatures_from_the_pivot_ride_on_their_parts():
    head = {"id": "chatcmpl-g", "model": "gemini-3"}
    sig = {"extra_content": {"google": {"thought_signature": "CmIBvj72"}}}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "a1", "type": "function", "function": {"name": "f", "arguments": "{}"}, **sig},
            {"index": 1, "id": "a2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    responses = sse_responses(encode(chunks, model="gem")[0])
    parts = [p for r in responses for p in r["candidates"][0]["content"]["parts"]]
    assert unseal(parts[0]["thoughtSignature"], SIGNER, "gem").signature == "CmIBvj72"
    assert "thoughtSignature" not in parts[1]
    history = [{"role": "user", "parts": [{"text": "go"}]}, {"role": "model", "parts": parts}]
    assistant = to_chat({"contents": history}, model="gem", stream=False, signer=SIGNER).body["messages"][1]
    assert assistant["tool_calls"][0]["extra_content"] == sig["extra_content"]
    assert "extra_content" not in assistant["tool_calls"][1]


def test_a_tool_loop_keeps_its_reasoning_for_the_next_turn():
    head = {"id": "chatcmpl-d", "model": "deepseek"}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Need the tool."}}]},
        {**head, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    responses = sse_responses(encode(chunks, model="ds", thoughts=False)[0])
    parts = [p for r in responses for p in r["candidates"][0]["content"]["parts"]]
    history = [{"role": "user", "parts": [{"text": "go"}]}, {"role": "model", "parts": parts},
               {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]
    assistant = to_chat({"contents": history}, model="ds", stream=False, signer=SIGNER).body["messages"][1]
    assert assistant["reasoning_content"] == "Need the tool."


@pytest.mark.parametrize("sse", [True, False], ids=["sse", "array"])
def test_an_error_ends_the_stream_and_never_looks_complete(sse: bool):
    chunks = openai_chunks(next(n for n in OPENAI_RECORDINGS if n.startswith("e2aa")))
    stream = ContentStream(model="m", signer=SIGNER, sse=sse)
    data = b"".join(stream.feed(chunk) for chunk in chunks[:5])
    data += stream.error(UpstreamStreamError("The upstream stream broke."))
    if sse:
        responses = sse_responses(data)
    else:
        responses = orjson.loads(data)
    assert responses[-1] == {"error": {"code": 502, "message": "The upstream stream broke.", "status": "UNAVAILABLE",
                                       "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                    "reason": "UPSTREAM_STREAM_ERROR", "domain": "compatgate"}]}}
    assert not any(c.get("finishReason") for r in responses[:-1] for c in r["candidates"])
    limited = ContentStream(model="m", signer=SIGNER, sse=sse).error(RateLimitError("Slow down.", retry_after=7))
    body = sse_responses(limited)[0] if sse else orjson.loads(limited)[0]
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED" and body["error"]["code"] == 429
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in body["error"]["details"]


def test_ping_is_whitespace_that_parsers_ignore():
    stream = ContentStream(model="m", signer=SIGNER, sse=False)
    chunks = openai_chunks(next(n for n in OPENAI_RECORDINGS if n.startswith("83b0")))
    data = stream.ping() + b"".join(stream.feed(c) + stream.ping() for c in chunks) + stream.finish()
    assert orjson.loads(data)[0]["candidates"][0]["content"]["parts"] == [{"text": "Foo"}]
    assert ContentStream(model="m", signer=SIGNER, sse=True).ping() == b"\r\n"


def test_a_stream_with_nothing_but_a_finish_still_has_a_part():
    chunks = [{"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "content_filter"}]}]
    response = sse_responses(encode(chunks)[0])[0]
    assert response["candidates"] == [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "SAFETY", "index": 0}]
    with pytest.raises(InvalidRequestError):  # an unknown envelope is no error, a bad request is
        to_chat({"contents": []}, model="m", stream=True, signer=SIGNER)
