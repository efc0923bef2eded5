"""The scripted fakes themselves (no Node needed): what they stream is valid against the
official OpenAPI schemas or framed like the real recordings, and their scripts fail a test
when a client misbehaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from compatgate.testing import OpenAISchema

from .anthropic_fake import AnthropicUpstream
from .chat_fake import ChatUpstream
from .gemini_fake import GeminiUpstream
from .responses_fake import ResponsesUpstream
from .script import Answer, Script, ToolCall, Turn

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
CALL = ToolCall("get_weather", {"city": "Paris"}, "call_1")
PATCH = ToolCall("apply_patch", {}, "call_2", freeform="*** Begin Patch\n*** End Patch\n")


def _events(raw: list[bytes]) -> list[tuple[str | None, str]]:
    events = []
    for chunk in b"".join(raw).decode().replace("\r\n", "\n").split("\n\n"):
        if not chunk.strip():
            continue
        lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
        events.append((lines.get("event"), lines["data"]))
    return events


def _event_schema(schema: OpenAISchema, kind: str) -> str:
    """The schema of the ``ResponseStreamEvent`` variant whose ``type`` is ``kind``."""
    schemas = schema.components["schemas"]
    for variant in schemas["ResponseStreamEvent"]["anyOf"]:
        name = variant["$ref"].rsplit("/", 1)[1]
        kind_schema = schemas[name].get("properties", {}).get("type", {})
        if kind in kind_schema.get("enum", []) or kind_schema.get("const") == kind:
            return str(name)
    raise AssertionError(f"no ResponseStreamEvent has type {kind!r}")


def _types(events: list[tuple[str | None, str]]) -> list[str]:
    collapsed: list[str] = []
    for name, _ in events:
        if name and (not collapsed or collapsed[-1] != name):
            collapsed.append(name)
    return collapsed


@pytest.mark.parametrize("call", [None, CALL, PATCH], ids=["text", "function", "custom"])
def test_responses_stream_is_valid(call: ToolCall | None, openai_schema: OpenAISchema) -> None:
    body = {"model": "m", "input": "hi", "stream": True}
    events = _events(ResponsesUpstream.stream_events(Answer("Hello there", call), body, 7))
    for number, (name, data) in enumerate(events):
        event = json.loads(data)
        assert event["type"] == name and event["sequence_number"] == number
        openai_schema.validate(_event_schema(openai_schema, name or ""), event)
    completed = json.loads(events[-1][1])["response"]
    openai_schema.validate("Response", completed)
    assert [item["type"] for item in completed["output"]] == ["message"] + (
        [] if call is None else ["custom_tool_call" if call.freeform else "function_call"])


@pytest.mark.parametrize("call", [None, CALL], ids=["text", "tool"])
def test_chat_chunks_are_valid(call: ToolCall | None, openai_schema: OpenAISchema) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 12, "total_tokens": 15}
    events = _events(ChatUpstream.chunks(Answer("Hello there", call), "chatcmpl-1", "m", usage))
    assert events[-1][1] == "[DONE]"
    for _, data in events[:-1]:
        openai_schema.validate("CreateChatCompletionStreamResponse", json.loads(data))
    openai_schema.validate("CreateChatCompletionResponse",
                           ChatUpstream.completion(Answer("Hi", call), "chatcmpl-1", "m", usage))


def test_anthropic_stream_is_framed_like_the_recording() -> None:
    recording = (FIXTURES / "anthropic-sse" / "tool_use_response.txt").read_bytes()
    recorded = _events([recording])
    ours = _events(AnthropicUpstream.stream_events(Answer("I'll check.", CALL), "msg_1", "m", 3))
    assert _types(ours) == _types(recorded)
    for (name, data), (_, real) in zip(ours[:3], recorded[:3], strict=True):
        assert set(json.loads(data)) == set(json.loads(real)), name


def test_gemini_stream_is_framed_like_the_recording() -> None:
    recording = (FIXTURES / "gemini" / "TestModel_GenerateStream_ok.httprr").read_bytes()
    real = json.loads(recording.split(b"\r\n\r\ndata: ", 1)[1].split(b"\r\n\r\n", 1)[0])
    chunks = GeminiUpstream.chunks(Answer("Paris", CALL), "gemini-2.5-flash", 11)
    last = chunks[-1]
    assert set(real) - {"usageMetadata"} <= set(chunks[0]) and set(real) <= set(last)
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["candidates"][0]["content"]["parts"][0]["functionCall"] == {
        "name": "get_weather", "args": {"city": "Paris"}}


def test_the_python_sdk_parses_the_responses_fake() -> None:
    script = Script(trigger="GO", final_text="done", call=CALL, expect_result="sunny")
    with ResponsesUpstream(script, key="sk-test").served() as fake:
        client = openai.OpenAI(base_url=f"{fake.url}/v1", api_key="sk-test", max_retries=0)
        tools: Any = [{"type": "function", "name": "get_weather", "parameters": {}}]
        with client.responses.stream(model="m", input="GO", tools=tools) as stream:
            first = stream.get_final_response()
        call = next(item for item in first.output if item.type == "function_call")
        second = client.responses.create(model="m", tools=tools, input=[
            {"role": "user", "content": "GO"},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text == "done"
    fake.check()


def test_a_script_fails_when_the_result_never_comes_back() -> None:
    script = Script(trigger="GO", final_text="done", call=CALL, expect_result="sunny")
    turn = Turn(("get_weather",), "GO", {}, True, "m")
    assert script.answer(turn).call == CALL
    with pytest.raises(AssertionError, match="scripted steps"):
        script.check()
    script.answer(Turn(("get_weather",), "GO", {"call_1": "rainy"}, True, "m"))
    with pytest.raises(AssertionError, match="lacks 'sunny'"):
        script.check()


def test_a_script_treats_requests_without_the_tool_as_side_requests() -> None:
    script = Script(trigger="GO", final_text="done", call=CALL)
    assert script.answer(Turn((), "GO", {}, True, "m")) == Answer("OK")
    assert script.answer(Turn(("x",), "title for: hello", {}, True, "m")) == Answer("OK")
    assert script.steps == ["side", "side"]
