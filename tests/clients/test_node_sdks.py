"""The official Node SDKs against each protocol: ``@anthropic-ai/sdk`` (create, stream with
``finalMessage()``, a streamed tool_use round trip, countTokens) and ``openai`` (chat
completions and Responses: create, stream helpers, a tool round trip)."""

from __future__ import annotations

import json
from typing import Any

from .runner import Sandbox
from .script import Script, ToolCall
from .targets import Endpoint, Target

RESULT = "sunny, 22 degrees"


def _weather_script(trigger: str, call_id: str) -> Script:
    return Script(trigger=trigger, final_text="It is sunny in Paris.", side_text="OK.",
                  call=ToolCall("get_weather", {"city": "Paris"}, call_id), expect_result=RESULT)


def _run(sandbox: Sandbox, endpoint: Endpoint, trigger: str, *args: str) -> dict[str, Any]:
    result = sandbox.node(*args, BASE_URL=endpoint.url, API_KEY=endpoint.key,
                          MODEL=endpoint.model, TRIGGER=trigger, TOOL_RESULT=RESULT).ok()
    endpoint.upstream.check()
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_anthropic_sdk(sandbox: Sandbox, target: Target) -> None:
    script = _weather_script("TASK-SDK-ANTHROPIC", "toolu_01WeatherFromTheFakeModel")
    with target.anthropic(script) as endpoint:
        report = _run(sandbox, endpoint, "TASK-SDK-ANTHROPIC", "anthropic_sdk.cjs")
    assert report["create"]["text"] == "OK." and report["create"]["stop_reason"] == "end_turn"
    assert report["create"]["usage"]["output_tokens"] > 0
    assert report["stream"] == {"text": "OK.", "deltas": "OK.", "stop_reason": "end_turn"}
    assert report["tools"]["stop_reason"] == "tool_use"
    assert report["tools"]["call"]["name"] == "get_weather"
    assert report["tools"]["call"]["input"] == {"city": "Paris"}
    assert report["tools"]["final"] == "It is sunny in Paris."
    assert report["count_tokens"] > 0
    paths = [r.path for r in endpoint.upstream.received]
    assert paths.count("/v1/messages/count_tokens") == 1 and paths.count("/v1/messages") == 4


def test_openai_sdk_chat(sandbox: Sandbox, target: Target) -> None:
    script = _weather_script("TASK-SDK-CHAT", "call_WeatherFromTheFakeModel")
    with target.chat(script) as endpoint:
        report = _run(sandbox, endpoint, "TASK-SDK-CHAT", "openai_sdk.cjs", "chat")
    assert report["create"]["text"] == "OK." and report["create"]["finish_reason"] == "stop"
    assert report["stream"]["text"] == report["stream"]["deltas"] == "OK."
    assert report["stream"]["usage"]["completion_tokens"] > 0
    assert report["tools"]["finish_reason"] == "tool_calls"
    assert report["tools"]["call"] == {"id": "call_WeatherFromTheFakeModel", "name": "get_weather",
                                       "arguments": {"city": "Paris"}}
    assert report["tools"]["final"] == "It is sunny in Paris."


def test_openai_sdk_responses(sandbox: Sandbox, target: Target) -> None:
    script = _weather_script("TASK-SDK-RESPONSES", "call_WeatherFromTheFakeModel")
    with target.responses(script) as endpoint:
        report = _run(sandbox, endpoint, "TASK-SDK-RESPONSES", "openai_sdk.cjs", "responses")
    assert report["create"]["text"] == "OK." and report["create"]["status"] == "completed"
    assert report["stream"] == {"text": "OK.", "deltas": "OK.", "status": "completed"}
    assert report["tools"]["call"] == {"id": "call_WeatherFromTheFakeModel", "name": "get_weather",
                                       "arguments": {"city": "Paris"}}
    assert report["tools"]["final"] == "It is sunny in Paris."
