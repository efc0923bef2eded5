"""The official Python SDKs through the gateway to every upstream type (no Node needed): the
``anthropic`` SDK (sync and async ``messages.create``, ``messages.stream()`` with
``get_final_message()``, a tool round trip, ``count_tokens``, ``models.list``) and the
``google-genai`` SDK (``generate_content``, ``generate_content_stream``, a function-calling round
trip, ``count_tokens``), each against an OpenAI-compatible, an Anthropic and a Gemini upstream
answering from the same protocol-neutral script (see `targets.GatewayTarget`)."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import types

from .script import Script, ToolCall
from .targets import Endpoint, GatewayTarget

UPSTREAMS = ["chat", "anthropic", "gemini"]
RESULT = "sunny, 22 degrees"
WEATHER = {"name": "get_weather", "description": "The current weather of a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _script(trigger: str, call_id: str) -> Script:
    return Script(trigger=trigger, final_text="It is sunny in Paris.", side_text="OK.",
                  call=ToolCall("get_weather", {"city": "Paris"}, call_id), expect_result=RESULT)


def _anthropic(endpoint: Endpoint) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=endpoint.url, api_key=endpoint.key, max_retries=0, timeout=20)


def _text(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


@pytest.mark.parametrize("via", UPSTREAMS)
def test_anthropic_sdk(via: str) -> None:
    script = _script("TASK-PY-ANTHROPIC", "toolu_01WeatherFromTheFakeModel")
    with GatewayTarget(f"python-anthropic-{via}").anthropic(script, via) as endpoint:
        client = _anthropic(endpoint)
        created = client.messages.create(model=endpoint.model, max_tokens=64,
                                         messages=[{"role": "user", "content": "Say OK."}])
        assert (_text(created), created.stop_reason) == ("OK.", "end_turn")
        assert created.usage.input_tokens > 0 and created.usage.output_tokens > 0

        async def async_create() -> Any:
            async with anthropic.AsyncAnthropic(base_url=endpoint.url, api_key=endpoint.key, max_retries=0) as aio:
                return await aio.messages.create(model=endpoint.model, max_tokens=64,
                                                 messages=[{"role": "user", "content": "Say OK, async."}])

        assert _text(asyncio.run(async_create())) == "OK."
        with client.messages.stream(model=endpoint.model, max_tokens=64,
                                    messages=[{"role": "user", "content": "Say OK again."}]) as stream:
            deltas = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert deltas == _text(final) == "OK." and final.stop_reason == "end_turn"
        assert final.usage.input_tokens > 0

        question = {"role": "user", "content": "TASK-PY-ANTHROPIC: what is the weather in Paris?"}
        with client.messages.stream(model=endpoint.model, max_tokens=256, tools=[WEATHER],
                                    messages=[question]) as stream:
            first = stream.get_final_message()
        assert first.stop_reason == "tool_use"
        call = next(block for block in first.content if block.type == "tool_use")
        assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
        second = client.messages.create(model=endpoint.model, max_tokens=256, tools=[WEATHER], messages=[
            question, {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": RESULT}]}])
        assert (_text(second), second.stop_reason) == ("It is sunny in Paris.", "end_turn")

        counted = client.messages.count_tokens(model=endpoint.model, messages=[question], tools=[WEATHER])
        assert counted.input_tokens > 0
        assert [model.id for model in client.models.list()] == [endpoint.model]
        records = endpoint.gateway.records(6) if endpoint.gateway else []
    endpoint.upstream.check()
    assert [r.endpoint for r in records].count("messages") == 5
    assert all(r.outcome == "ok" and r.status_code == 200 for r in records)


def _genai(endpoint: Endpoint) -> genai.Client:
    return genai.Client(api_key=endpoint.key, http_options=types.HttpOptions(base_url=endpoint.url, timeout=20_000))


@pytest.mark.parametrize("via", UPSTREAMS)
def test_google_genai_sdk(via: str) -> None:
    script = _script("TASK-PY-GENAI", "call_WeatherFromTheFakeModel")
    with GatewayTarget(f"python-genai-{via}").gemini(script, via) as endpoint:
        client = _genai(endpoint)
        answer = client.models.generate_content(model=endpoint.model, contents="Say OK.")
        assert answer.text == "OK." and answer.candidates[0].finish_reason == types.FinishReason.STOP
        assert answer.usage_metadata.prompt_token_count > 0
        streamed = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(
            model=endpoint.model, contents="Say OK again."))
        assert streamed == "OK."

        weather = types.Tool(function_declarations=[types.FunctionDeclaration(
            name="get_weather", description="The current weather of a city.",
            parameters_json_schema=WEATHER["input_schema"])])
        config = types.GenerateContentConfig(tools=[weather], automatic_function_calling={"disable": True})
        question = types.Content(role="user", parts=[types.Part(text="TASK-PY-GENAI: weather in Paris?")])
        first = client.models.generate_content(model=endpoint.model, contents=[question], config=config)
        call = first.function_calls[0]
        assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
        reply = types.Content(role="user", parts=[types.Part.from_function_response(
            name="get_weather", response={"output": RESULT})])
        second = client.models.generate_content(
            model=endpoint.model, contents=[question, first.candidates[0].content, reply], config=config)
        assert second.text == "It is sunny in Paris."

        counted = client.models.count_tokens(model=endpoint.model, contents="How many tokens is this?")
        assert counted.total_tokens > 0
    endpoint.upstream.check()
