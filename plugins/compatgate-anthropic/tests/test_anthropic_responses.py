"""Anthropic answers -> OpenAI chat completions (non-streamed), a multi-turn tool-use
conversation through the official SDK, and structured outputs with ``parse``."""

from __future__ import annotations

from typing import Any

import orjson
import pydantic
import pytest
from anthropic_support import (
    MESSAGES,
    MODEL,
    UPSTREAM_MODEL,
    Served,
    block_start,
    block_stop,
    delta,
    exact_reply,
    message,
    message_end,
    message_start,
    sse,
)

from compatgate.testing import OpenAISchema

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def answer(gw: Served, upstream, reply: dict[str, Any], schema: OpenAISchema, **body: Any) -> dict[str, Any]:
    fake, _ = upstream
    fake.handler = fake.json_reply(reply)
    response = gw.post({"model": MODEL, "messages": MESSAGES, **body})
    assert response.status_code == 200, response.text
    data = response.json()
    schema.validate("CreateChatCompletionResponse", data)
    return data


def test_text_answer(gw: Served, upstream, openai_schema: OpenAISchema):
    reply = message({"type": "text", "text": "Sunny, "}, {"type": "text", "text": "18°C.", "citations": []},
                    input_tokens=100, output_tokens=7, cache_read_input_tokens=50, cache_creation_input_tokens=30)
    data = answer(gw, upstream, reply, openai_schema)
    assert (data["id"], data["object"], data["model"]) == ("msg_test", "chat.completion", UPSTREAM_MODEL)
    assert data["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Sunny, 18°C.", "refusal": None, "annotations": []}}]
    assert data["usage"] == {"prompt_tokens": 180, "completion_tokens": 7, "total_tokens": 187,
                             "prompt_tokens_details": {"cached_tokens": 50, "cache_write_tokens": 30}}
    record = gw.records(1)[0]
    assert (record.outcome, record.prompt_tokens, record.completion_tokens) == ("ok", 180, 7)
    assert (record.usage.cached_tokens, record.usage.cache_write_tokens) == (50, 30)


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "stop"), ("refusal", "content_filter"),
    ("a_future_reason", "stop"),
])
def test_stop_reasons(gw: Served, upstream, openai_schema: OpenAISchema, stop_reason: str, finish: str):
    data = answer(gw, upstream, message({"type": "text", "text": "x"}, stop_reason=stop_reason), openai_schema)
    assert data["choices"][0]["finish_reason"] == finish


def test_tool_calls_thinking_and_server_blocks(gw: Served, upstream, openai_schema: OpenAISchema):
    reply = message(
        {"type": "thinking", "thinking": "Two cities.", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}},
        stop_reason="tool_use", output_tokens_details={"thinking_tokens": 12},  # type: ignore[arg-type]
    )
    data = answer(gw, upstream, reply, openai_schema, tools=[WEATHER_TOOL])
    (choice,) = data["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant", "content": "Checking.", "refusal": None, "annotations": [],
        "tool_calls": [
            {"id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_b", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        ],
        "reasoning_content": "Two cities.",
        "thinking_blocks": [{"type": "thinking", "thinking": "Two cities.", "signature": "sig1"},
                            {"type": "redacted_thinking", "data": "opaque"}],
    }
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 12}


def test_refusal_without_text(gw: Served, upstream, openai_schema: OpenAISchema):
    data = answer(gw, upstream, message(stop_reason="refusal", output_tokens=0), openai_schema)
    assert data["choices"][0]["message"]["content"] is None
    assert data["choices"][0]["finish_reason"] == "content_filter"


def _tool_round(turn: int) -> bytes:
    """Claude's answer at each turn of the conversation below, as a real stream."""
    if turn == 0:
        return sse(
            message_start(id="msg_turn0"),
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(0, type="thinking_delta", thinking="Need both cities."),
            delta(0, type="signature_delta", signature="SIG0"),
            block_stop(0),
            block_start(1, {"type": "text", "text": ""}),
            delta(1, type="text_delta", text="Checking both."),
            block_stop(1),
            block_start(2, {"type": "tool_use", "id": "toolu_paris", "name": "get_weather", "input": {}}),
            delta(2, type="input_json_delta", partial_json='{"city": '),
            delta(2, type="input_json_delta", partial_json='"Paris"}'),
            block_stop(2),
            block_start(3, {"type": "tool_use", "id": "toolu_rome", "name": "get_weather", "input": {}}),
            delta(3, type="input_json_delta", partial_json='{"city": "Rome"}'),
            block_stop(3),
            *message_end("tool_use"),
        )
    return sse(
        message_start(id="msg_turn1"),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="Paris 18°C, Rome 24°C."),
        block_stop(0),
        *message_end("end_turn"),
    )


def test_multi_turn_tool_use_round_trip(gw: Served, upstream):
    """The SDK's assembled message goes back as is; tool results follow; Claude sees a valid
    conversation with its thinking (signature included) and tool_use ids kept."""
    fake, _ = upstream
    client = gw.client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    fake.handler = exact_reply(_tool_round(0))
    with client.chat.completions.stream(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                        reasoning_effort="low") as stream:
        first = stream.get_final_completion()
    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("toolu_paris", "get_weather", '{"city": "Paris"}'), ("toolu_rome", "get_weather", '{"city": "Rome"}')]
    messages.append(choice.message.model_dump(exclude_none=True, exclude={"parsed"}))
    for call, result in zip(choice.message.tool_calls, ("18°C", "24°C"), strict=True):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})

    fake.handler = exact_reply(_tool_round(1))
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                            reasoning_effort="low", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in second if c.choices) == "Paris 18°C, Rome 24°C."

    assert fake.received[1].json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Need both cities.", "signature": "SIG0"},
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_paris", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_rome", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_paris", "content": "18°C"},
            {"type": "tool_result", "tool_use_id": "toolu_rome", "content": "24°C"},
        ]},
    ]


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


@pytest.mark.parametrize("mode", ["native", "tool"])
def test_parse_with_a_pydantic_model(make_gateway, upstream, mode: str):
    fake, _ = upstream
    gw = make_gateway(provider={"structured_output": mode})
    result = {"city": "Paris", "celsius": 18}
    if mode == "native":
        fake.handler = fake.json_reply(message({"type": "text", "text": orjson.dumps(result).decode()}))
    else:
        fake.handler = fake.json_reply(message(
            {"type": "tool_use", "id": "toolu_1", "name": "json_response", "input": result}, stop_reason="tool_use"))
    parsed = gw.client().chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=Weather)
    (choice,) = parsed.choices
    assert choice.message.parsed == Weather(city="Paris", celsius=18)
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    sent = fake.received[-1].json
    schema = Weather.model_json_schema()
    if mode == "native":
        assert sent["output_config"]["format"]["schema"]["properties"] == schema["properties"]
    else:
        assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}
        assert sent["tools"][0]["input_schema"]["properties"] == schema["properties"]
        assert sent["tools"][0]["strict"] is True


def test_streamed_answer_tool_becomes_content(make_gateway, upstream, openai_schema: OpenAISchema):
    """In tool mode the answer's JSON streams as content, and the finish is "stop"."""
    fake, _ = upstream
    gw = make_gateway(provider={"structured_output": "tool"})
    fake.handler = exact_reply(sse(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "json_response", "input": {}}),
        delta(0, type="input_json_delta", partial_json=""),
        delta(0, type="input_json_delta", partial_json='{"city": "Pa'),
        delta(0, type="input_json_delta", partial_json='ris", "celsius": 18}'),
        block_stop(0),
        *message_end("tool_use"),
    ))
    with gw.client().chat.completions.stream(model=MODEL, messages=MESSAGES, response_format=Weather) as stream:
        final = stream.get_final_completion()
    (choice,) = final.choices
    assert choice.message.content == '{"city": "Paris", "celsius": 18}'
    assert choice.message.parsed == Weather(city="Paris", celsius=18)
    assert choice.finish_reason == "stop" and not choice.message.tool_calls


def test_cache_writes_reach_the_usage_record_and_back():
    """compatgate's Usage reads the cache writes from prompt_tokens_details.cache_write_tokens
    (the field of OpenAI's schema this plugin fills) and writes them back the same way."""
    from compatgate_anthropic.response import openai_usage

    from compatgate import Usage

    converted = openai_usage({"input_tokens": 3, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 7,
                              "output_tokens": 2, "output_tokens_details": {"thinking_tokens": 1}})
    usage = Usage.from_openai(converted)
    assert usage == Usage(15, 2, 17, cached_tokens=5, reasoning_tokens=1, cache_write_tokens=7)
    assert usage.to_openai() == converted
