"""Multi-turn tool conversations through the official SDK: the assistant message the client got
goes back as it is, and the gateway restores Gemini's thoughtSignature (and ids) from it."""

from __future__ import annotations

import orjson
import pytest
from gemini_support import (
    SSE_SPLIT,
    Served,
    expected_upstream_request,
    gemini_response,
    model_of,
    openai_request,
    read_trace,
    sse,
)

from compatgate.testing import FakeUpstream, Received

PARALLEL = {
    "gemini-2.5-flash": "TestParallelFunctionCalls_test_parallel_function_calls_gemini-2.5-flash.httprr",
    "gemini-3-flash-preview": "TestParallelFunctionCalls_test_parallel_function_calls_gemini-3-flash-preview.httprr",
}


def _replay_in_turn(upstream: FakeUpstream, bodies: list[bytes]) -> None:
    """Answer the n-th request with the n-th recorded stream."""

    async def handler(request: Received, send) -> None:
        await upstream.sse_reply(bodies[len(upstream.received) - 1], split=SSE_SPLIT)(request, send)

    upstream.handler = handler


@pytest.mark.parametrize("model", sorted(PARALLEL))
@pytest.mark.parametrize("helper", [True, False], ids=["stream-helper", "raw-chunks"])
def test_parallel_calls_over_four_turns(make_gateway, upstream: FakeUpstream, model: str, helper: bool):
    """The recorded four-request agent run, rebuilt by a client from what it received: every
    upstream request equals the recorded one, signatures and Gemini's call ids included."""
    exchanges = read_trace(PARALLEL[model])
    _replay_in_turn(upstream, [e.response_body for e in exchanges])
    gw: Served = make_gateway(tool_schema="json_schema")
    client = gw.client()
    first = openai_request(exchanges[0])
    messages = list(first["messages"])
    follow_ups = ["Great, now can you add 10 and 20? Also 40 and 50? And 60 and 70?"]
    for turn, exchange in enumerate(exchanges):
        assert model_of(exchange) == model
        request = {"model": model, "messages": messages, "tools": first["tools"]}
        if helper:
            with client.chat.completions.stream(**request) as stream:
                message = stream.get_final_completion().choices[0].message
        else:
            message = _accumulate(client.chat.completions.create(**request, stream=True))
        assert upstream.received[-1].json == expected_upstream_request(exchange), f"request {turn}"
        messages.append(message)
        calls = message.get("tool_calls") if isinstance(message, dict) else message.model_dump()["tool_calls"]
        if calls:
            for call in calls:
                arguments = orjson.loads(call["function"]["arguments"])
                result = orjson.dumps({"sum": arguments["a"] + arguments["b"]}).decode()
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        elif follow_ups:
            messages.append({"role": "user", "content": follow_ups.pop()})
    assert len(upstream.received) == 4 and not follow_ups


def _accumulate(stream) -> dict:
    """What a client that folds the raw chunks itself sends back: content and the tool calls,
    keeping each call's extra fields (where the signature travels)."""
    content, calls = "", {}
    for chunk in stream:
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for call in delta.tool_calls or []:
            calls[call.index] = call.model_dump(exclude_none=True, exclude={"index"})
    message: dict = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


def test_non_streamed_call_signature_round_trips(gw: Served, upstream: FakeUpstream):
    """Gemini 2.5 gives no call id: the client gets a generated one, which maps the tool result
    back to the function name and never goes upstream; the signature comes back in place."""
    exchange = read_trace("TestFunctionTool_Simple.httprr")[0]
    recorded = orjson.loads(exchange.response_body)["candidates"][0]["content"]["parts"][0]
    upstream.handler = upstream.json_reply(exchange.response_body)
    client = gw.client()
    tools = [{"type": "function", "function": {"name": "get_weather_report", "description": "Weather.",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    messages: list = [{"role": "user", "content": "Report the current weather of the capital city of U.K."}]
    completion = client.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=tools)
    message = completion.choices[0].message
    (call,) = message.tool_calls
    assert call.id.startswith("call_") and call.function.name == "get_weather_report"
    messages += [message, {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 18 degrees"}]
    upstream.handler = upstream.json_reply(gemini_response([{"text": "It is sunny in London."}]))
    final = client.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=tools)
    assert final.choices[0].message.content == "It is sunny in London."
    contents = upstream.received[-1].json["contents"]
    assert contents[1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather_report", "args": {"city": "London"}},
                                     "thoughtSignature": recorded["thoughtSignature"]}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather_report",
                                                         "response": {"output": "Sunny, 18 degrees"}}}]},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_text_signature_round_trips(gw: Served, upstream: FakeUpstream, stream: bool):
    """A signature on a text part travels on the message (on a delta when streamed, which the
    SDK folds into the message) and comes back on the last text part."""
    parts = [{"text": "Hello"}, {"text": " there", "thoughtSignature": "c2ln"}]
    client = gw.client()
    messages: list = [{"role": "user", "content": "Hi"}]
    if stream:
        events = [gemini_response(parts[:1], finish=None), gemini_response(parts[1:], finish=None), gemini_response([])]
        upstream.handler = upstream.sse_reply(sse(*events), split=SSE_SPLIT)
        with client.chat.completions.stream(model="gemini-2.5-flash", messages=messages) as response:
            message = response.get_final_completion().choices[0].message
    else:
        upstream.handler = upstream.json_reply(gemini_response(parts))
        message = client.chat.completions.create(model="gemini-2.5-flash", messages=messages).choices[0].message
    assert message.content == "Hello there"
    assert message.model_extra["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    upstream.handler = upstream.json_reply(gemini_response([{"text": "More."}]))
    client.chat.completions.create(model="gemini-2.5-flash", messages=[*messages, message, {"role": "user", "content": "And?"}])
    assert upstream.received[-1].json["contents"][1] == {"role": "model", "parts": [{"text": "Hello there", "thoughtSignature": "c2ln"}]}


@pytest.mark.parametrize("fill", [False, True])
def test_missing_signatures_can_be_filled(make_gateway, upstream: FakeUpstream, fill: bool):
    """A history whose signatures were lost (or made by another model): with
    fill_thought_signatures the first call of each step gets Google's documented skip value."""
    upstream.handler = upstream.json_reply(gemini_response([{"text": "ok"}]))
    gw: Served = make_gateway(fill_thought_signatures=fill)
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "sum", "arguments": "{}"}} for i in range(2)]
    messages = [
        {"role": "user", "content": "add"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c0", "content": "1"},
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
    ]
    gw.client().chat.completions.create(model="gemini-3-flash-preview", messages=messages)
    parts = upstream.received[-1].json["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == (["skip_thought_signature_validator", None] if fill else [None, None])
    assert [p["functionCall"]["id"] for p in parts] == ["c0", "c1"]
    # A message that kept a signature is left as it is.
    calls[1]["extra_content"] = {"google": {"thought_signature": "real"}}
    gw.client().chat.completions.create(model="gemini-3-flash-preview", messages=messages)
    parts = upstream.received[-1].json["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == [None, "real"]
