"""OpenAI requests -> Anthropic requests: every mapping, and a 400 naming the parameter for
what Claude cannot honour. Every body the fake upstream receives is also checked against
Anthropic's request schema (CreateMessageParams) by the ``upstream`` fixture."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic_support import MESSAGES, MODEL, UPSTREAM_MODEL, Served, message

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather somewhere.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                 "additionalProperties": False}


def sent(gw: Served, upstream, **body: Any) -> dict[str, Any]:
    """What the upstream received for a (non-streamed) request with ``body``."""
    fake, _ = upstream
    fake.handler = fake.json_reply(message({"type": "text", "text": "ok"}))
    response = gw.post({"model": MODEL, "messages": MESSAGES, **body})
    assert response.status_code == 200, response.text
    return fake.received[-1].json


def refused(gw: Served, upstream, **body: Any) -> dict[str, Any]:
    """The 400 error for ``body``, which must not reach the upstream."""
    fake, _ = upstream
    response = gw.post({"model": MODEL, "messages": MESSAGES, **body})
    assert response.status_code == 400, response.text
    assert fake.received == []
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    return error


def test_a_full_conversation_is_converted_exactly(gw: Served, upstream):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "Long document...", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "text", "text": "What is the weather in Paris and Rome?"},
        ]},
        {"role": "developer", "content": [{"type": "text", "text": "Use Celsius."}]},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
        {"role": "user", "content": "And tomorrow?", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    body = sent(
        gw, upstream, messages=messages, max_completion_tokens=300, temperature=0.2, top_p=0.9,
        stop="###", tools=[{**WEATHER_TOOL, "cache_control": {"type": "ephemeral"}}, TIME_TOOL],
        tool_choice="required", parallel_tool_calls=False, user="user-42", service_tier="default",
    )
    assert body == {
        "model": UPSTREAM_MODEL,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use Celsius."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Long document...", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What is the weather in Paris and Rome?"},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
                {"type": "text", "text": "And tomorrow?", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ]},
        ],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["###"],
        "tools": [
            {"name": "get_weather", "description": "The weather somewhere.",
             "input_schema": WEATHER_TOOL["function"]["parameters"], "cache_control": {"type": "ephemeral"}},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "user-42"},
        "service_tier": "standard_only",
    }


def test_consecutive_turns_merge_and_tool_results_come_first(gw: Served, upstream):
    messages = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call:1/x", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "assistant", "content": ""},  # said nothing: dropped
        {"role": "user", "content": "meanwhile"},
        {"role": "tool", "tool_call_id": "call:1/x", "content": "noon"},
        {"role": "system", "content": "late system text"},
        {"role": "assistant", "content": [{"type": "text", "text": "It is "}, {"type": "refusal", "refusal": "no"}]},
        {"role": "assistant", "content": "noon."},
        {"role": "user", "content": "thanks"},
    ]
    body = sent(gw, upstream, messages=messages, tools=[TIME_TOOL])
    assert body["system"] == [{"type": "text", "text": "late system text"}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1_x", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1_x", "content": "noon"},
            {"type": "text", "text": "meanwhile"},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "It is "}, {"type": "text", "text": "no"}, {"type": "text", "text": "noon."}]},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
    ]


def test_cache_control_everywhere(gw: Served, upstream):
    messages = [
        {"role": "system", "content": "rules", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": [{"type": "text", "text": "doc", "prompt_cache_breakpoint": {"mode": "explicit"}},
                                     {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": None, "cache_control": {"type": "ephemeral"}, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "noon", "cache_control": {"type": "ephemeral"}},
    ]
    body = sent(gw, upstream, messages=messages, tools=[TIME_TOOL])
    assert body["system"] == [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][0]["content"][0] == {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}}
    assert "cache_control" not in body["messages"][0]["content"][1]
    assert body["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result", "tool_use_id": "c1", "content": "noon", "cache_control": {"type": "ephemeral"}}


def test_files_become_documents(gw: Served, upstream):
    content = [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}},
        {"type": "file", "file": {"file_data": "data:text/plain;base64,aGVsbG8="}},
        {"type": "text", "text": "Summarise."},
    ]
    body = sent(gw, upstream, messages=[{"role": "user", "content": content}])
    assert body["messages"][0]["content"][:2] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
         "title": "a.pdf"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}},
    ]


def test_thinking_blocks_go_back_first(gw: Served, upstream):
    thinking = [{"index": 0, "type": "thinking", "thinking": "hmm", "signature": "sig=="},
                {"type": "redacted_thinking", "data": "opaque"}]
    messages = [*MESSAGES, {"role": "assistant", "content": "Sunny.", "reasoning_content": "hmm",
                            "thinking_blocks": thinking}, {"role": "user", "content": "Sure?"}]
    body = sent(gw, upstream, messages=messages, reasoning_effort="low")
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Sunny."},
    ]


@pytest.mark.parametrize(("given", "max_tokens"), [
    ({}, 4096),
    ({"max_tokens": 77}, 77),
    ({"max_completion_tokens": 55, "max_tokens": 77}, 55),
    ({"max_tokens": None}, 4096),
])
def test_max_tokens(gw: Served, upstream, given: dict[str, Any], max_tokens: int):
    assert sent(gw, upstream, **given)["max_tokens"] == max_tokens


def test_default_max_tokens_per_provider_and_model(make_gateway, upstream):
    _, url = upstream
    from anthropic_support import gateway_config

    config = gateway_config(url, provider={"default_max_tokens": 1000}, models=[
        {"name": MODEL, "provider": "claude", "upstream_model": UPSTREAM_MODEL},
        {"name": "claude-big", "provider": "claude", "upstream_model": "claude-opus-4-5", "default_max_tokens": 32000},
    ])
    gw = make_gateway(config)
    assert sent(gw, upstream)["max_tokens"] == 1000
    assert sent(gw, upstream, model="claude-big")["max_tokens"] == 32000


@pytest.mark.parametrize(("choice", "expected", "tool_names"), [
    ("auto", {"type": "auto"}, ["get_weather", "get_time"]),
    ("none", {"type": "none"}, ["get_weather", "get_time"]),
    ("required", {"type": "any"}, ["get_weather", "get_time"]),
    ({"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"},
     ["get_weather", "get_time"]),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "get_time"}}]}}, {"type": "any"}, ["get_time"]),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
        {"type": "function", "function": {"name": "get_weather"}}]}}, {"type": "auto"}, ["get_weather"]),
])
def test_tool_choice(gw: Served, upstream, choice: Any, expected: dict[str, Any], tool_names: list[str]):
    body = sent(gw, upstream, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice)
    assert body["tool_choice"] == expected
    assert [tool["name"] for tool in body["tools"]] == tool_names


@pytest.mark.parametrize(("choice", "expected"), [
    (None, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", {"type": "any", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "get_time"}},
     {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}),
    ("none", {"type": "none"}),
])
def test_parallel_tool_calls_false(gw: Served, upstream, choice: Any, expected: dict[str, Any]):
    body = sent(gw, upstream, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice, parallel_tool_calls=False)
    assert body["tool_choice"] == expected


def test_no_tools_no_tool_choice(gw: Served, upstream):
    body = sent(gw, upstream, tool_choice="auto", parallel_tool_calls=False)
    assert "tools" not in body and "tool_choice" not in body
    assert "tool_choice" not in sent(gw, upstream, tools=[WEATHER_TOOL], parallel_tool_calls=True)


def test_stop_sequences(gw: Served, upstream):
    assert sent(gw, upstream, stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in sent(gw, upstream, stop=[])


def test_structured_output_native(gw: Served, upstream):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True}}
    body = sent(gw, upstream, response_format=fmt, tools=[WEATHER_TOOL])
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}
    assert [t["name"] for t in body["tools"]] == ["get_weather"] and "tool_choice" not in body
    assert "output_config" not in sent(gw, upstream, response_format={"type": "text"})


def _answer_tool(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "json_response", "description": "Give the final answer by calling this tool with it as input.",
            "input_schema": schema, **extra}


@pytest.mark.parametrize(("options", "fmt", "tool"), [
    ({"structured_output": "tool"},
     {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True}},
     _answer_tool(ANSWER_SCHEMA, strict=True)),
    ({}, {"type": "json_object"}, _answer_tool({"type": "object"})),
])
def test_structured_output_as_a_forced_tool(make_gateway, upstream, options, fmt, tool):
    gw = make_gateway(provider=options)
    body = sent(gw, upstream, response_format=fmt)
    assert body["tools"] == [tool]
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert "output_config" not in body
    # The client's tools stay callable: a tool call or the answer, but a tool in any case.
    body = sent(gw, upstream, response_format=fmt, tools=[TIME_TOOL])
    assert [t["name"] for t in body["tools"]] == ["get_time", "json_response"]
    assert body["tool_choice"] == {"type": "any"}
    # tool_choice "none": only the answer may be called.
    assert sent(gw, upstream, response_format=fmt, tools=[TIME_TOOL], tool_choice="none")["tool_choice"] == {
        "type": "tool", "name": "json_response"}
    # The client forces its own tool: no answer this turn, so no answer tool.
    body = sent(gw, upstream, response_format=fmt, tools=[TIME_TOOL], tool_choice="required")
    assert [t["name"] for t in body["tools"]] == ["get_time"] and body["tool_choice"] == {"type": "any"}


def test_reasoning_effort_becomes_a_thinking_budget(make_gateway, upstream):
    from anthropic_support import gateway_config

    _, url = upstream
    config = gateway_config(url, provider={"thinking_budgets": {"high": 20000}}, models=[
        {"name": MODEL, "provider": "claude", "upstream_model": UPSTREAM_MODEL, "thinking_budgets": {"low": 3000}},
        {"name": "claude-new", "provider": "claude", "upstream_model": "claude-opus-4-7", "thinking": "adaptive"},
    ])
    gw = make_gateway(config)
    body = sent(gw, upstream, reasoning_effort="low")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert body["max_tokens"] == 4096 + 3000
    assert sent(gw, upstream, reasoning_effort="high")["thinking"]["budget_tokens"] == 20000
    assert sent(gw, upstream, reasoning_effort="medium")["thinking"]["budget_tokens"] == 8192
    body = sent(gw, upstream, reasoning_effort="medium", max_completion_tokens=9000, temperature=1, top_p=0.95)
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (9000, 1, 0.95)
    assert "thinking" not in sent(gw, upstream, reasoning_effort="none")
    body = sent(gw, upstream, model="claude-new", reasoning_effort="minimal")
    assert (body["thinking"], body["output_config"], body["max_tokens"]) == (
        {"type": "adaptive"}, {"effort": "low"}, 4096)


def test_user_and_safety_identifier(gw: Served, upstream):
    assert sent(gw, upstream, safety_identifier="s-1")["metadata"] == {"user_id": "s-1"}
    assert sent(gw, upstream, user="u-1", safety_identifier="s-1")["metadata"] == {"user_id": "u-1"}


def test_hints_without_effect_are_accepted(gw: Served, upstream):
    body = sent(gw, upstream, n=1, logprobs=False, presence_penalty=0, frequency_penalty=0, store=False,
                modalities=["text"], logit_bias={}, seed=None, prompt_cache_key="k", metadata={"a": "b"},
                service_tier="auto", stream_options=None)
    assert body["service_tier"] == "auto"
    assert set(body) == {"model", "messages", "max_tokens", "service_tier"}


@pytest.mark.parametrize(("param", "value"), [
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"50256": -100}),
    ("presence_penalty", 0.5), ("frequency_penalty", -0.1), ("seed", 42), ("store", True),
    ("modalities", ["text", "audio"]), ("audio", {"voice": "alloy", "format": "mp3"}),
    ("prediction", {"type": "content", "content": "x"}), ("web_search_options", {}), ("verbosity", "low"),
    ("moderation", {"model": "omni-moderation-latest"}), ("functions", [{"name": "f"}]),
    ("function_call", "auto"), ("service_tier", "flex"), ("temperature", 1.5), ("top_p", -0.1),
    ("reasoning_effort", "extreme"), ("user", "u" * 513), ("max_tokens", 0), ("stop", [1]),
    ("response_format", {"type": "grammar"}), ("tools", [{"type": "custom", "custom": {"name": "x"}}]),
    ("tool_choice", "required"), ("parallel_tool_calls", "no"),
])
def test_what_claude_cannot_honour_is_refused_by_name(gw: Served, upstream, param: str, value: Any):
    error = refused(gw, upstream, **{param: value})
    assert error["param"] == param or error["param"].startswith(f"{param}[")


@pytest.mark.parametrize(("body", "param"), [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [WEATHER_TOOL]}, "tool_choice"),
    ({"reasoning_effort": "low", "tool_choice": "required", "tools": [WEATHER_TOOL]}, "tool_choice"),
    ({"reasoning_effort": "low", "response_format": {"type": "json_object"}}, "response_format"),
    ({"reasoning_effort": "low", "temperature": 0.5}, "temperature"),
    ({"reasoning_effort": "low", "top_p": 0.5}, "top_p"),
    ({"reasoning_effort": "medium", "max_completion_tokens": 8192}, "max_completion_tokens"),
    ({"response_format": {"type": "json_object"}, "tools": [
        {"type": "function", "function": {"name": "json_response"}}]}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
     "tools[0].function.parameters"),
])
def test_conflicts_are_refused_by_name(gw: Served, upstream, body: dict[str, Any], param: str):
    assert refused(gw, upstream, **body)["param"] == param


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "system", "content": "only rules"}], "messages"),
    ([{"role": "user", "content": ""}], "messages[0].content"),
    ([{"role": "user"}], "messages[0].content"),
    ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}],
     "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}], "messages[0].content[0].file"),
    ([{"role": "user", "content": [{"type": "file", "file": {"file_data": "data:application/zip;base64,UEs="}}]}],
     "messages[0].content[0].file.file_data"),
    ([*MESSAGES, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"city": "Par'}}]}],
     "messages[1].tool_calls[0].function.arguments"),
    ([*MESSAGES, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}],
     "messages[1].tool_calls[0].function.arguments"),
    ([*MESSAGES, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}],
     "messages[1].tool_calls[0].id"),
    ([*MESSAGES, {"role": "tool", "content": "x"}], "messages[1].tool_call_id"),
    ([*MESSAGES, {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "thinking", "thinking": "t"}]}],
     "messages[1].thinking_blocks[0]"),
    ([*MESSAGES, {"role": "assistant", "audio": {"id": "audio_1"}}], "messages[1].audio"),
])
def test_invalid_messages_are_refused_by_name(gw: Served, upstream, messages: list[Any], param: str):
    assert refused(gw, upstream, messages=messages)["param"] == param


def test_unknown_fields_are_refused_unless_passed_through(make_gateway, upstream):
    gw = make_gateway()
    assert refused(gw, upstream, top_k=5)["param"] == "top_k"
    fake, _ = upstream
    gw = make_gateway(provider={"passthrough_unknown_fields": True})
    body = sent(gw, upstream, top_k=5, cache_control={"type": "ephemeral"})
    assert (body["top_k"], body["cache_control"]) == (5, {"type": "ephemeral"})
    # A passed-through field never silently overrides a converted one.
    count = len(fake.received)
    response = gw.post({"model": MODEL, "messages": MESSAGES, "reasoning_effort": "low",
                        "thinking": {"type": "enabled", "budget_tokens": 5000}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "thinking"
    assert len(fake.received) == count
