"""POST /responses through the official SDK: converted on chat (OpenAI-compatible, Claude- and
Gemini-type upstreams replaying real recordings), passed through to OpenAI-type upstreams, and
continued with previous_response_id from the gateway's store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest

from support import CLIENT_KEY, FIXTURES, UPSTREAM_KEY, Served, gateway_config

from compatgate.testing import OpenAISchema

TEXT_RECORDING = "7e5ea4d12e7cc064399b6631415e65923f182256b6e6b752950a3aaa2ad2320a.bin"
TOOL_RECORDING = "2018feb66ae13fcf5333d61b95849decc68d3f63bd38172889367e1afb1e04f7.bin"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                         "required": ["location"]}}]


def config(url: str, tmp_path: Path, **gateway: Any) -> dict[str, Any]:
    cfg = gateway_config(url, response_store_path=str(tmp_path / "responses.sqlite3"), **gateway)
    cfg["gateway"]["api_keys"].append("sk-client-2")
    cfg["providers"]["native"] = {**cfg["providers"]["up"], "native_responses": True}
    cfg["providers"]["claude"] = {"type": "anthropic", "base_url": url, "api_key": UPSTREAM_KEY}
    cfg["providers"]["gem"] = {"type": "gemini", "base_url": url, "api_key": UPSTREAM_KEY}
    cfg["models"] += [
        {"name": "gpt-native", "provider": "native", "upstream_model": "gpt-4o"},
        {"name": "claude", "provider": "claude", "upstream_model": "claude-sonnet-4-20250514"},
        {"name": "gemini", "provider": "gem", "upstream_model": "gemini-2.5-flash"},
    ]
    return cfg


@pytest.fixture
def rgw(make_gateway, upstream, tmp_path) -> Served:
    return make_gateway(config(upstream[1], tmp_path))


def chat_answer(content: str | None, tool_calls: list | None = None, finish: str = "stop") -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
                      "prompt_tokens_details": {"cached_tokens": 3}}}


def stream_events(gw: Served, body: dict) -> list[dict]:
    """The raw events of a streamed /responses call."""
    with httpx2.stream("POST", f"{gw.url}/responses", json={**body, "stream": True}, timeout=10,
                       headers={"authorization": f"Bearer {CLIENT_KEY}"}) as response:
        assert response.status_code == 200, response.read()
        return [orjson.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def check_events(events: list[dict], schema: OpenAISchema) -> None:
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[1]["type"] == "response.in_progress"
    terminal = [e for e in events if e["type"] in ("response.completed", "response.incomplete", "response.failed")]
    assert terminal == [events[-1]]
    names = {}
    for ref in schema.components["schemas"]["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        names[schema.components["schemas"][name]["properties"]["type"]["enum"][0]] = name
    for event in events:
        schema.validate(names[event["type"]], event)
    schema.validate("Response", events[-1]["response"])


def test_converted_non_streamed(rgw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer("Sunny."))
    result = rgw.client().responses.create(
        model="gpt-4o", instructions="Be brief.", input="Weather in Paris?", max_output_tokens=50,
        text={"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
        reasoning={"effort": "low"}, temperature=0.2,
    )
    assert result.output_text == "Sunny." and result.status == "completed"
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.total_tokens) == (11, 5, 16)
    assert result.usage.input_tokens_details.cached_tokens == 3
    sent = fake.received[-1]
    assert sent.path == "/v1/chat/completions"
    body = sent.json
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Weather in Paris?"}]
    assert body["max_completion_tokens"] == 50 and body["reasoning_effort"] == "low"
    assert body["response_format"]["json_schema"]["name"] == "w" and body["temperature"] == 0.2
    raw = httpx2.post(f"{rgw.url}/responses", json={"model": "gpt-4o", "input": "hi"},
                      headers={"authorization": f"Bearer {CLIENT_KEY}"})
    openai_schema.validate("Response", raw.json())
    record = rgw.records(2)[0]
    assert (record.endpoint, record.outcome, record.prompt_tokens, record.completion_tokens) == (
        "responses", "ok", 11, 5)


def test_converted_stream_replays_recording(rgw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    text = FIXTURES / "openai-sse" / TEXT_RECORDING
    fake.handler = fake.sse_reply(text.read_bytes())
    with rgw.client().responses.stream(model="gpt-4o", input="Weather in Paris?") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas) and final.output_text
    assert final.usage is not None and final.usage.output_tokens > 0
    fake.handler = fake.sse_reply(text.read_bytes())
    check_events(stream_events(rgw, {"model": "gpt-4o", "input": "hi"}), openai_schema)
    records = rgw.records(2)
    assert records[0].streamed and records[0].usage.completion_tokens == final.usage.output_tokens


def test_tool_call_round_trip_with_previous_response(rgw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    tools = FIXTURES / "openai-sse" / TOOL_RECORDING
    fake.handler = fake.sse_reply(tools.read_bytes())
    client = rgw.client()
    with client.responses.stream(model="gpt-4o", input="Weather in Paris?", tools=TOOLS,
                                 tool_choice={"type": "function", "name": "get_weather"}) as stream:
        first = stream.get_final_response()
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].arguments and orjson.loads(calls[0].arguments)
    sent = fake.received[-1].json
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    fake.handler = fake.json_reply(chat_answer("It is sunny in Paris."))
    second = client.responses.create(
        model="gpt-4o", previous_response_id=first.id, tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert second.output_text == "It is sunny in Paris." and second.previous_response_id == first.id
    messages = fake.received[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert messages[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny"}
    stored = client.responses.retrieve(second.id)
    assert stored.output_text == "It is sunny in Paris."
    openai_schema.validate("Response", stored.model_dump(mode="json", exclude_unset=True))
    other = rgw.client("sk-client-2")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError, match="not found"):
        other.responses.create(model="gpt-4o", previous_response_id=second.id, input="and?")
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_store_false_and_storage_off(make_gateway, upstream, tmp_path):
    fake, url = upstream
    fake.handler = fake.json_reply(chat_answer("ok"))
    gw = make_gateway(config(url, tmp_path))
    unstored = gw.client().responses.create(model="gpt-4o", input="hi", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        gw.client().responses.retrieve(unstored.id)
    off = make_gateway(config(url, tmp_path, response_store="off"))
    assert off.client().responses.create(model="gpt-4o", input="hi").store is False
    for kwargs in ({"previous_response_id": unstored.id}, {"store": True}):
        with pytest.raises(openai.BadRequestError) as caught:
            off.client().responses.create(model="gpt-4o", input="hi", **kwargs)
        assert caught.value.code == "storage_disabled"


def test_native_pass_through(rgw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_up", "status": "in_progress"}},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": "Hi", "logprobs": []},
        {"type": "response.completed", "sequence_number": 2,
         "response": {"id": "resp_up", "status": "completed",
                      "usage": {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}}},
    ]
    stream = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)
    fake.handler = fake.sse_reply(stream)
    got = stream_events(rgw, {"model": "gpt-native", "input": "hi"})
    assert got == events
    assert fake.received[-1].path == "/v1/responses" and fake.received[-1].json["model"] == "gpt-4o"
    answer = {"id": "resp_up", "object": "response", "status": "completed", "model": "gpt-4o", "output": [],
              "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}}
    fake.handler = fake.json_reply(answer)
    result = rgw.client().responses.create(model="gpt-native", input="hi", previous_response_id="resp_prev")
    assert result.id == "resp_up" and fake.received[-1].json["previous_response_id"] == "resp_prev"
    records = rgw.records(2)
    assert [(r.total_tokens, r.streamed) for r in records[:2]] == [(9, True), (4, False)]


def _anthropic(name: str) -> bytes:
    return (FIXTURES / "anthropic-sse" / name).read_bytes()


def _gemini(name: str) -> bytes:
    trace = (FIXTURES / "gemini" / name).read_bytes()
    response = trace[trace.rindex(b"HTTP/2.0 200"):]
    return response.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(("model", "recording", "tool"), [
    ("claude", "basic_response.txt", False),
    ("claude", "tool_use_response.txt", True),
    ("gemini", "TestModel_GenerateStream_ok.httprr", False),
])
def test_stream_against_claude_and_gemini(rgw: Served, upstream, openai_schema, model, recording, tool):
    fake, _ = upstream
    content = _anthropic(recording) if model == "claude" else _gemini(recording)
    fake.handler = fake.sse_reply(content)
    kwargs: dict[str, Any] = {"tools": TOOLS} if tool else {}
    with rgw.client().responses.stream(model=model, input="Weather in Paris?", **kwargs) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.usage.total_tokens > 0
    if tool:
        call = next(item for item in final.output if item.type == "function_call")
        assert call.name == "get_weather" and "Paris" in call.arguments
    else:
        assert final.output_text
    path = fake.received[-1].path
    assert path.endswith("/v1/messages") if model == "claude" else ":streamGenerateContent" in path
    fake.handler = fake.sse_reply(content)
    check_events(stream_events(rgw, {"model": model, "input": "hi", **kwargs}), openai_schema)


POSTGRES_URL = os.environ.get("COMPATGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_error() -> str | None:
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed (compatgate[postgres])"

    async def check() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await connection.close()

    try:
        asyncio.run(check())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request, tmp_path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    error = _postgres_error()
    if error is not None:
        message = f"PostgreSQL is unreachable at {POSTGRES_URL} ({error}); set COMPATGATE_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return {"response_store": "postgres", "response_store_url": POSTGRES_URL}


def test_previous_response_continues_conversation(make_gateway, upstream, tmp_path, store_config):
    fake, url = upstream
    gw = make_gateway(config(url, tmp_path, **store_config))
    client = gw.client()
    fake.handler = fake.json_reply(chat_answer("Paris."))
    first = client.responses.create(model="gpt-4o", instructions="Be brief.", input="Capital of France?")
    fake.handler = fake.sse_reply((FIXTURES / "openai-sse" / TEXT_RECORDING).read_bytes())
    with client.responses.stream(model="gpt-4o", previous_response_id=first.id, input="And Italy?") as stream:
        second = stream.get_final_response()
    assert fake.received[-1].json["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And Italy?"},
    ]
    fake.handler = fake.json_reply(chat_answer("Rome, then."))
    third = client.responses.create(model="gpt-4o", previous_response_id=second.id, input="Sure?")
    messages = fake.received[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[3]["content"] == second.output_text
    assert client.responses.retrieve(third.id).output_text == "Rome, then."
    assert client.responses.delete(third.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(third.id)


def test_refusal_stream(rgw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    refusal = (FIXTURES / "openai-sse" / "173417d553406f034f643e5db3f8d591fb691ebac56f5ae39a22cc7d455c5353.bin")
    fake.handler = fake.sse_reply(refusal.read_bytes())
    events = stream_events(rgw, {"model": "gpt-4o", "input": "something forbidden"})
    check_events(events, openai_schema)
    content = events[-1]["response"]["output"][0]["content"][0]
    assert content["type"] == "refusal" and content["refusal"]
    assert "response.refusal.delta" in {e["type"] for e in events}


def test_reasoning_text_and_parallel_calls_stream(rgw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        data = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + orjson.dumps(data) + b"\n\n"

    calls = [{"index": i, "id": f"call_{i}", "type": "function",
              "function": {"name": "get_weather", "arguments": ""}} for i in range(2)]
    stream = b"".join([
        chunk({"role": "assistant", "reasoning_content": "Think"}), chunk({"reasoning_content": "ing."}),
        chunk({"content": "Checking "}), chunk({"content": "both."}),
        chunk({"tool_calls": [calls[0]]}), chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]}),
        chunk({"tool_calls": [calls[1]]}), chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"location": "Rome"}'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}), chunk({}, "tool_calls"),
        b"data: " + orjson.dumps({**head, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 20,
                                                                   "total_tokens": 29,
                                                                   "completion_tokens_details": {"reasoning_tokens": 4}}}),
        b"\n\ndata: [DONE]\n\n",
    ])
    fake.handler = fake.sse_reply(stream)
    events = stream_events(rgw, {"model": "gpt-4o", "input": "Weather?", "tools": TOOLS})
    check_events(events, openai_schema)
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][0]["summary"][0]["text"] == "Thinking."
    assert final["output"][1]["content"][0]["text"] == "Checking both."
    assert [orjson.loads(c["arguments"])["location"] for c in final["output"][2:]] == ["Paris", "Rome"]
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 4
    # Cut before its finish reason (no [DONE] either): never a completed response.
    fake.handler = fake.sse_reply(stream.replace(b'"finish_reason":"tool_calls"', b'"finish_reason":null')
                                  .replace(b"data: [DONE]\n\n", b""))
    failed = stream_events(rgw, {"model": "gpt-4o", "input": "Weather?"})
    assert failed[-1]["type"] == "response.failed" and failed[-1]["response"]["error"]["code"] == "server_error"
    check_events(failed, openai_schema)
