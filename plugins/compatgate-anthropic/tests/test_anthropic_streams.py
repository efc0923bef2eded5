"""Streams that are not the happy path: errors mid-stream, truncation, protocol violations,
tool numbering across interleaved blocks, client disconnects, latency."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import openai
import orjson
import pytest
from anthropic_support import (
    CLIENT_KEY,
    MESSAGES,
    MODEL,
    Served,
    block_start,
    block_stop,
    chunks,
    delta,
    exact_reply,
    message_end,
    message_start,
    recording,
    sse,
    stream_error,
)

from compatgate.testing import OpenAISchema

TEXT = (message_start(), block_start(0, {"type": "text", "text": ""}), delta(0, type="text_delta", text="Hel"))
COMPLETE = sse(*TEXT, delta(0, type="text_delta", text="lo"), block_stop(0), *message_end())


def broken(gw: Served, upstream, content: bytes, schema: OpenAISchema, **reply: Any) -> tuple[list[dict], dict]:
    """The chunks a client got before the error event that ended the stream, and the error."""
    fake, _ = upstream
    fake.handler = exact_reply(content, **reply)
    response, payloads = gw.stream({"model": MODEL, "messages": MESSAGES, "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    error = stream_error(payloads, schema)
    before = [orjson.loads(p) for p in payloads[:-1]]
    # Never a fake finish: no finish_reason and no usage chunk before the error.
    assert all(c["choices"] and c["choices"][0]["finish_reason"] is None for c in before)
    assert gw.records(1)[0].outcome == "error"
    return before, error


def test_error_event_mid_stream(gw: Served, upstream, openai_schema: OpenAISchema):
    content = sse(*TEXT) + b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    before, error = broken(gw, upstream, content, openai_schema)
    assert [c["choices"][0]["delta"] for c in before] == [{"role": "assistant"}, {"content": "Hel"}]
    assert (error["message"], error["type"], error["code"]) == ("Overloaded", "server_error", "overloaded_error")
    # The official SDK raises instead of returning a truncated answer.
    fake, _ = upstream
    fake.handler = exact_reply(content)
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in gw.client().chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            pass


@pytest.mark.parametrize(("event", "type_", "code"), [
    ({"type": "error", "error": {"type": "api_error", "message": "Internal"}}, "server_error", "api_error"),
    ({"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}, "rate_limit_error",
     "rate_limit_error"),
    ({"type": "error", "error": {"type": "a_new_error", "message": "New"}}, "server_error", "a_new_error"),
    ({"type": "error"}, "server_error", "upstream_stream_error"),
])
def test_error_event_types(gw: Served, upstream, openai_schema: OpenAISchema, event, type_, code):
    _, error = broken(gw, upstream, sse(message_start(), event), openai_schema)
    assert (error["type"], error["code"]) == (type_, code)


@pytest.mark.parametrize(("name", "content"), [
    ("no message_stop", sse(*TEXT, block_stop(0), message_end()[0])),
    ("no message_delta", sse(*TEXT, block_stop(0), {"type": "message_stop"})),
    ("cut mid-event", sse(*TEXT) + b'event: content_block_delta\ndata: {"type":"content_block_del'),
    ("cut between lines", sse(*TEXT) + b"event: message_stop\n"),
    ("not json", sse(*TEXT) + b"event: content_block_delta\ndata: {not json}\n\n"),
    ("not an object", sse(*TEXT) + b"event: ping\ndata: [1]\n\n"),
    ("delta before its block", sse(message_start(), delta(3, type="text_delta", text="x"), *message_end())),
    ("block before message_start", sse(block_start(0, {"type": "text", "text": ""}), *message_end())),
    ("two messages", sse(message_start(), message_start(), *message_end())),
    ("block started twice", sse(*TEXT, block_start(0, {"type": "text", "text": ""}), *message_end())),
    ("nothing at all", b""),
    ("only pings", b'event: ping\ndata: {"type": "ping"}\n\n'),
])
def test_truncated_or_invalid_streams_end_with_an_error(gw: Served, upstream, openai_schema: OpenAISchema,
                                                       name: str, content: bytes):
    _, error = broken(gw, upstream, content, openai_schema)
    assert error["code"] == "upstream_stream_error"


def test_reset_mid_stream(gw: Served, upstream, openai_schema: OpenAISchema):
    before, error = broken(gw, upstream, sse(*TEXT), openai_schema, then="reset")
    assert before[-1]["choices"][0]["delta"] == {"content": "Hel"}
    assert error["code"] == "upstream_stream_error"


def test_tool_calls_are_numbered_in_order_whatever_the_block_index(gw: Served, upstream, openai_schema):
    """Thinking, text and a server tool before and between the calls never shift their numbers;
    id and name come once; Anthropic's block indexes need not be contiguous."""
    fake, _ = upstream
    fake.handler = exact_reply(sse(
        message_start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, type="thinking_delta", thinking="plan"),
        delta(0, type="signature_delta", signature="S"),
        block_stop(0),
        block_start(1, {"type": "text", "text": "Let me"}),
        delta(1, type="text_delta", text=" look."),
        block_stop(1),
        block_start(4, {"type": "tool_use", "id": "toolu_a", "name": "first", "input": {}}),
        block_start(7, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
        delta(7, type="input_json_delta", partial_json='{"query": "x"}'),
        delta(4, type="input_json_delta", partial_json='{"a": 1'),
        block_start(9, {"type": "tool_use", "id": "toolu_b", "name": "second", "input": {"ready": True}}),
        delta(4, type="input_json_delta", partial_json="}"),
        block_stop(7),
        block_stop(4),
        block_stop(9),
        block_start(10, {"type": "redacted_thinking", "data": "opaque"}),
        block_stop(10),
        block_start(11, {"type": "tool_use", "id": "toolu_c", "name": "third", "input": {}}),
        delta(11, type="input_json_delta", partial_json=""),
        block_stop(11),
        block_stop(11),
        *message_end("tool_use"),
    ))
    _, payloads = gw.stream({"model": MODEL, "messages": MESSAGES})
    received = chunks(payloads, openai_schema)
    assert [c["choices"][0]["delta"] for c in received] == [
        {"role": "assistant"},
        {"reasoning_content": "plan"},
        {"thinking_blocks": [{"index": 0, "type": "thinking", "thinking": "plan", "signature": "S"}]},
        {"content": "Let me"},
        {"content": " look."},
        {"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "first", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1'}}]},
        {"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "second", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"ready":true}'}}]},  # all of it at the start
        {"thinking_blocks": [{"index": 1, "type": "redacted_thinking", "data": "opaque"}]},
        {"tool_calls": [{"index": 2, "id": "toolu_c", "type": "function", "function": {"name": "third", "arguments": ""}}]},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in received].count("tool_calls") == 1


def test_the_sdk_assembles_interleaved_calls(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = exact_reply(sse(
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="Two calls."),
        block_start(1, {"type": "tool_use", "id": "toolu_a", "name": "first", "input": {}}),
        block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "second", "input": {}}),
        delta(2, type="input_json_delta", partial_json='{"b":'),
        delta(1, type="input_json_delta", partial_json='{"a":'),
        delta(1, type="input_json_delta", partial_json=" 1}"),
        delta(2, type="input_json_delta", partial_json=" 2}"),
        block_stop(0), block_stop(1), block_stop(2),
        *message_end("tool_use"),
    ))
    with gw.client().chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Two calls."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("toolu_a", "first", '{"a": 1}'), ("toolu_b", "second", '{"b": 2}')]


def test_crlf_comments_and_empty_events(gw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    content = b": keep-alive\r\n\r\nevent: ping\r\n\r\n" + COMPLETE.replace(b"\n", b"\r\n")
    fake.handler = exact_reply(content, piece=5)
    _, payloads = gw.stream({"model": MODEL, "messages": MESSAGES})
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks(payloads, openai_schema)) == "Hello"


def test_the_stream_ends_at_message_stop(gw: Served, upstream, openai_schema: OpenAISchema):
    """The client's stream completes at message_stop, even if the upstream keeps the
    connection open, and the gateway hangs up on it."""
    fake, _ = upstream
    fake.handler = exact_reply(COMPLETE, then="stall", stall=20)
    started = time.monotonic()
    _, payloads = gw.stream({"model": MODEL, "messages": MESSAGES})
    assert time.monotonic() - started < 3
    assert chunks(payloads, openai_schema)[-1]["choices"][0]["finish_reason"] == "stop"
    assert fake.hung_up.wait(5)


def test_client_disconnect_closes_the_upstream(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = exact_reply(sse(*TEXT), then="stall", stall=20)
    with httpx2.stream("POST", f"{gw.url}/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"},
                       json={"model": MODEL, "messages": MESSAGES, "stream": True}, timeout=10) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if '"Hel"' in line)
    assert fake.hung_up.wait(5), "the upstream never saw the cancellation"
    (record,) = gw.records(1)
    assert record.outcome == "aborted" and record.usage.estimated


def test_chunks_are_not_buffered(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = exact_reply(recording("stream-b-fallback.sse"), delay=0.1)
    started = time.monotonic()
    stream = gw.client().chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    next(iter(stream))
    first = time.monotonic() - started
    list(stream)
    assert first < (time.monotonic() - started) / 3


def test_error_event_carrying_the_upstream_key_is_scrubbed(gw: Served, upstream, openai_schema: OpenAISchema,
                                                           caplog):
    """Issue 14, defect 7: an Anthropic ``event: error`` echoing the provider's key reaches
    neither the client, the usage record nor the logs. Before the operation table (commit
    1ba4be6) mid-stream error text went out as the upstream wrote it."""
    from anthropic_support import UPSTREAM_KEY

    caplog.set_level("DEBUG")
    event = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {UPSTREAM_KEY}"}}
    _, error = broken(gw, upstream, sse(*TEXT) + b"event: error\ndata: " + orjson.dumps(event) + b"\n\n",
                      openai_schema)
    assert error["message"] == "invalid x-api-key ***"
    assert UPSTREAM_KEY not in repr(gw.records(1)) and UPSTREAM_KEY not in caplog.text
