"""Chat completions through the official SDK against an upstream replaying real OpenAI streams."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import openai
import orjson
import pytest

from support import FIXTURES, UPSTREAM_KEY, Served

from compatgate.testing import OpenAISchema

RECORDINGS = sorted(p.name for p in (FIXTURES / "openai-sse").glob("*.bin"))
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def events(content: bytes) -> list[dict]:
    """The JSON events of a recorded stream (without [DONE])."""
    out = []
    for block in content.split(b"\n\n"):
        if block.startswith(b"data: ") and block != b"data: [DONE]":
            out.append(orjson.loads(block[6:]))
    return out


def raw_stream(gw: Served, body: dict) -> tuple[httpx2.Response, list[bytes]]:
    """POST a streaming request and return the raw SSE data payloads the client got."""
    with httpx2.stream(
        "POST", f"{gw.url}/chat/completions", json=body, timeout=10,
        headers={"authorization": "Bearer sk-client-1"},
    ) as response:
        payloads = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                payloads.append(line[6:].encode())
        return response, payloads


def test_non_streamed_passes_every_parameter_through(gw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    answer = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1727346172,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Sunny.", "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    }
    fake.handler = fake.json_reply(answer)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    result = gw.client().chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=tools, tool_choice="auto", n=1, stop=["x"],
        seed=7, logprobs=True, top_logprobs=2, response_format={"type": "text"}, temperature=0.3,
        extra_body={"future_field": {"nested": [1, 2]}},
    )
    assert result.choices[0].message.content == "Sunny."
    sent = fake.received[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    body = sent.json
    assert body["model"] == "gpt-4o-2024-08-06"
    assert body["tools"] == tools and body["tool_choice"] == "auto" and body["seed"] == 7
    assert body["future_field"] == {"nested": [1, 2]} and body["top_logprobs"] == 2
    assert "stream_options" not in body
    raw = httpx2.post(f"{gw.url}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES},
                     headers={"authorization": "Bearer sk-client-1"})
    openai_schema.validate("CreateChatCompletionResponse", raw.json())
    assert raw.headers["x-request-id"]
    record = gw.records(1)[0]
    assert (record.outcome, record.status_code, record.streamed) == ("ok", 200, False)
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (12, 2, 14)
    assert record.usage.cached_tokens == 4 and record.key_id == "static:0"
    assert (record.model, record.provider, record.upstream_model) == ("gpt-4o", "up", "gpt-4o-2024-08-06")


@pytest.mark.parametrize("one_write", [False, True], ids=["event-by-event", "one-write"])
@pytest.mark.parametrize("recording", RECORDINGS)
def test_recorded_stream_is_relayed_exactly(
    gw: Served, upstream, recording: str, one_write: bool, openai_schema: OpenAISchema
):
    """Event by event, or all in one network write (the gateway then writes the events of one
    read together): either way the client gets every chunk, byte for byte."""
    fake, _ = upstream
    content = (FIXTURES / "openai-sse" / recording).read_bytes()
    recorded = events(content)
    fake.handler = fake.sse_reply(content, split=b"" if one_write else b"\n\n")
    n = max(c["index"] for e in recorded for c in e["choices"]) + 1

    response, payloads = raw_stream(gw, {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "n": n})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert payloads[-1] == b"[DONE]"
    relayed = [orjson.loads(p) for p in payloads[:-1]]
    for chunk in relayed:
        openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
    # The client did not ask for usage: the usage chunk is stripped, every other chunk kept as is.
    assert relayed == [e for e in recorded if e["choices"]]
    assert fake.received[-1].json["stream_options"] == {"include_usage": True}
    usage = recorded[-1]["usage"]
    record = gw.records(1)[-1]
    assert record.outcome == "ok" and record.streamed
    assert (record.prompt_tokens, record.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert record.time_to_first_token_ms is not None and record.time_to_first_token_ms <= record.latency_ms


def test_usage_chunk_kept_when_the_client_asks(gw: Served, upstream):
    fake, _ = upstream
    content = (FIXTURES / "openai-sse" / RECORDINGS[0]).read_bytes()
    fake.handler = fake.sse_reply(content)
    stream = gw.client().chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == events(content)[-1]["usage"]["total_tokens"]
    assert fake.received[-1].json["stream_options"] == {"include_usage": True}


def test_sdk_reassembles_tool_calls(gw: Served, upstream):
    fake, _ = upstream
    name = next(r for r in RECORDINGS if b"get_weather" in (FIXTURES / "openai-sse" / r).read_bytes())
    content = (FIXTURES / "openai-sse" / name).read_bytes()
    fake.handler = fake.sse_reply(content, delay=0.001)
    with gw.client().chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    expected = "".join(
        tc["function"].get("arguments", "")
        for e in events(content) for c in e["choices"] for tc in c["delta"].get("tool_calls") or []
        if tc["index"] == 0
    )
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == expected
    assert final.choices[0].finish_reason == "tool_calls"


def test_chunks_arrive_as_the_upstream_sends_them(gw: Served, upstream):
    """No buffering: the first chunk reaches the client long before the stream ends."""
    fake, _ = upstream
    content = (FIXTURES / "openai-sse" / RECORDINGS[0]).read_bytes()
    fake.handler = fake.sse_reply(content, delay=0.15)
    started = time.monotonic()
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(iter(stream))
    first = time.monotonic() - started
    list(stream)
    total = time.monotonic() - started
    assert len(events(content)) >= 5
    assert first < total / 3


def _broken(upstream, gw: Served, handler) -> openai.APIError:
    fake, _ = upstream
    fake.handler = handler
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    return info.value


def _cut_before_finish(content: bytes) -> bytes:
    blocks = content.split(b"\n\n")
    index = next(i for i, b in enumerate(blocks) if b'"finish_reason":"' in b)
    return b"\n\n".join(blocks[:index]) + b"\n\n"


@pytest.mark.parametrize(
    "how",
    ["reset", "truncated", "invalid-json", "error-event", "partial-event"],
)
def test_broken_stream_never_looks_complete(gw: Served, upstream, how: str, openai_schema: OpenAISchema):
    content = (FIXTURES / "openai-sse" / RECORDINGS[-1]).read_bytes()
    fake, _ = upstream
    handlers = {
        "reset": lambda: fake.sse_reply(_cut_before_finish(content), then="reset"),
        "truncated": lambda: fake.sse_reply(_cut_before_finish(content)),
        "invalid-json": lambda: fake.sse_reply(_cut_before_finish(content) + b'data: {"id": "x", "choi\n\n'),
        "error-event": lambda: fake.sse_reply(
            _cut_before_finish(content) + b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
        ),
        "partial-event": lambda: fake.sse_reply(_cut_before_finish(content) + b'data: {"id": "chatcmpl', split=b""),
    }
    error = _broken(upstream, gw, handlers[how]())
    assert "[DONE]" not in str(error)
    # The raw stream ends with an OpenAI-format error event and no [DONE].
    fake.handler = handlers[how]()
    _, payloads = raw_stream(gw, {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    assert payloads[-1] != b"[DONE]"
    last = orjson.loads(payloads[-1])
    openai_schema.validate("ErrorResponse", last)
    assert UPSTREAM_KEY not in payloads[-1].decode()
    assert [r.outcome for r in gw.records(2)] == ["error", "error"]


def test_client_disconnect_cancels_the_upstream(gw: Served, upstream):
    fake, _ = upstream
    content = (FIXTURES / "openai-sse" / RECORDINGS[0]).read_bytes()
    head = b"\n\n".join(content.split(b"\n\n")[:2]) + b"\n\n"
    fake.handler = fake.sse_reply(head, then="stall", stall=20)
    with httpx2.stream("POST", f"{gw.url}/chat/completions", headers={"authorization": "Bearer sk-client-1"},
                      json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}, timeout=10) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
    # The client hung up while the upstream stalls: the gateway must hang up on the upstream at once.
    assert fake.hung_up.wait(5), "the upstream never saw the cancellation"
    (record,) = gw.records(1)
    assert record.outcome == "aborted" and record.streamed
    # The upstream never sent its usage: the record carries an estimate, flagged as such.
    assert record.usage.estimated and record.usage.completion_tokens == 1  # "I'm" was relayed
    assert record.usage.prompt_tokens > 0


def test_n_choices_all_need_a_finish(gw: Served, upstream):
    """With n=3, a stream where only some choices finished is truncated."""
    fake, _ = upstream
    name = next(r for r in RECORDINGS if b'"index":2' in (FIXTURES / "openai-sse" / r).read_bytes())
    content = (FIXTURES / "openai-sse" / name).read_bytes()
    blocks = [b for b in content.split(b"\n\n") if b]
    last_finish = max(i for i, b in enumerate(blocks) if b'"finish_reason":"' in b)
    fake.handler = fake.sse_reply(b"\n\n".join(blocks[:last_finish]) + b"\n\n")
    _, payloads = raw_stream(gw, {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "n": 3})
    assert b"error" in payloads[-1] and payloads[-1] != b"[DONE]"


def test_recordings_exist():
    assert len(RECORDINGS) >= 10, f"expected the recorded OpenAI streams in {Path(FIXTURES)}"
