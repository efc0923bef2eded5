"""The official Node SDKs against each protocol: ``@anthropic-ai/sdk`` (create, stream with
``finalMessage()``, a streamed tool_use round trip, countTokens) and ``openai`` (chat
completions and Responses: create, stream helpers, a tool round trip); through the gateway,
``@anthropic-ai/sdk`` to an OpenAI-compatible, a Gemini and an Anthropic upstream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .runner import Sandbox
from .script import Script, ToolCall
from .targets import Endpoint, GatewayTarget, Target

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


def _anthropic_sdk(sandbox: Sandbox, target: Target, via: str | None = None) -> None:
    script = _weather_script("TASK-SDK-ANTHROPIC", "toolu_01WeatherFromTheFakeModel")
    with target.anthropic(script, via) as endpoint:
        report = _run(sandbox, endpoint, "TASK-SDK-ANTHROPIC", "anthropic_sdk.cjs")
    assert report["create"]["text"] == "OK." and report["create"]["stop_reason"] == "end_turn"
    assert report["create"]["usage"]["output_tokens"] > 0
    assert report["stream"] == {"text": "OK.", "deltas": "OK.", "stop_reason": "end_turn"}
    assert report["tools"]["stop_reason"] == "tool_use"
    assert report["tools"]["call"]["name"] == "get_weather"
    assert report["tools"]["call"]["input"] == {"city": "Paris"}
    assert report["tools"]["final"] == "It is sunny in Paris."
    assert report["count_tokens"] > 0
    upstream = endpoint.upstream
    assert len(upstream.turns()) == 4  # create, stream, and the two turns of the tool round trip
    # count_tokens: the upstream's own counter where it has one, else the gateway's estimate
    counted = {"anthropic": "/v1/messages/count_tokens", "gemini": ":countTokens"}.get(upstream.protocol)
    assert len(upstream.calls(counted)) == 1 if counted else all(
        r.path.endswith(upstream.model_path) for r in upstream.received)


def test_anthropic_sdk(sandbox: Sandbox, target: Target) -> None:
    _anthropic_sdk(sandbox, target)


@pytest.mark.parametrize("via", ["gemini", "anthropic"])
def test_anthropic_sdk_through_the_gateway_to_other_upstreams(sandbox: Sandbox, via: str) -> None:
    """``@anthropic-ai/sdk`` through the gateway to a Gemini upstream (converted through chat,
    ``countTokens`` by Gemini's counter) and to an Anthropic upstream (relayed natively)."""
    _anthropic_sdk(sandbox, GatewayTarget(f"anthropic-sdk-{via}"), via)


def test_openai_sdk_chat(sandbox: Sandbox, target: Target) -> None:
    script = _weather_script("TASK-SDK-CHAT", "call_WeatherFromTheFakeModel")
    with target.chat(script) as endpoint:
        report = _run(sandbox, endpoint, "TASK-SDK-CHAT", "openai_sdk.cjs", "chat")
    assert report["create"]["text"] == "OK." and report["create"]["finish_reason"] == "stop"
    assert report["stream"]["text"] == report["stream"]["deltas"] == "OK."
    assert report["stream"]["usage"]["completion_tokens"] > 0
    assert report["tools"]["finish_reason"] == "tool_calls"
    call = report["tools"]["call"]
    assert (call["name"], call["arguments"]) == ("get_weather", {"city": "Paris"})
    # Gemini gives its function calls no ids (so the gateway makes them up); others keep theirs.
    assert call["id"] == "call_WeatherFromTheFakeModel" or (
        endpoint.upstream.protocol == "gemini" and call["id"].startswith("call_"))
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
