"""to_chat: Gemini requests -> the OpenAI pivot. Real recorded Gemini requests go through
to_chat and back through this plugin's own OpenAI -> Gemini builder and must come out equal,
but for what the conversion documents as lost."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from compatgate_gemini.inbound import EFFORT_BUDGETS, to_chat, wants_thoughts
from compatgate_gemini.request import Options, build_request
from gemini_support import TRACE_NAMES, expected_upstream_request, model_of, read_trace
from gemini_inbound_support import HMACSigner

from compatgate import InvalidRequestError

SIGNER = HMACSigner()
EXCHANGES = [(name, index) for name in TRACE_NAMES for index in range(len(read_trace(name)))]
USER = [{"role": "user", "parts": [{"text": "Hi"}]}]


def chat(body: dict[str, Any], model: str = "m") -> dict[str, Any]:
    return to_chat(body, model=model, stream=False, signer=SIGNER).body


def without_documented_losses(request: dict[str, Any]) -> dict[str, Any]:
    """A recorded request minus what to_chat documents as dropped: Gemini's own thought
    signatures (only a gateway envelope is restored) and ``includeThoughts`` without a budget
    (the pivot has no such flag: the client's flag shapes the answer instead)."""
    request = copy.deepcopy(request)
    for content in request["contents"]:
        for part in content["parts"]:
            part.pop("thoughtSignature", None)
    thinking = request.get("generationConfig", {}).get("thinkingConfig", {})
    if set(thinking) == {"includeThoughts"}:
        del request["generationConfig"]["thinkingConfig"]
    return request


@pytest.mark.parametrize(("name", "index"), EXCHANGES, ids=[f"{n.removesuffix('.httprr')}-{i}" for n, i in EXCHANGES])
def test_recorded_requests_survive_the_round_trip(name: str, index: int):
    exchange = read_trace(name)[index]
    recorded = exchange.request
    pivot = to_chat(copy.deepcopy(recorded), model=model_of(exchange), stream=exchange.streamed, signer=SIGNER)
    assert pivot.dropped == ()
    assert pivot.body["stream"] is True if exchange.streamed else "stream" not in pivot.body
    rebuilt, _ = build_request(pivot.body, model_of(exchange), Options(json_schema=True))
    assert rebuilt == without_documented_losses(expected_upstream_request(exchange))


def test_calls_without_ids_get_stable_ids_that_their_responses_find():
    exchange = read_trace("TestParallelFunctionCalls_test_parallel_function_calls_gemini-2.5-flash.httprr")[1]
    first = chat(exchange.request)
    again = chat(exchange.request)
    assert first == again  # the same history gives the same ids every time
    calls = first["messages"][2]["tool_calls"]
    answers = first["messages"][3:6]
    assert [a["tool_call_id"] for a in answers] == [c["id"] for c in calls]
    assert len({c["id"] for c in calls}) == 3 and all(c["id"].startswith("call_") for c in calls)
    assert [a["content"] for a in answers] == ['{"sum":5}', '{"sum":9}', '{"sum":13}']


def test_responses_are_matched_by_id_then_by_name():
    history = [*USER,
               {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}, "id": "x1"}},
                                           {"functionCall": {"name": "b", "args": {"q": 1}}}]},
               {"role": "user", "parts": [{"functionResponse": {"name": "b", "response": {"r": 2}}},
                                          {"functionResponse": {"name": "a", "id": "x1", "response": {"r": 1}}},
                                          {"text": "and then?"}]}]
    messages = chat({"contents": history})["messages"]
    ids = [c["id"] for c in messages[1]["tool_calls"]]
    assert ids[0] == "x1" and ids[1].startswith("call_")
    assert [(m["role"], m.get("tool_call_id")) for m in messages[2:]] == [("tool", ids[1]), ("tool", "x1"), ("user", None)]
    assert messages[4]["content"] == "and then?"
    with pytest.raises(InvalidRequestError, match="no unanswered functionCall") as caught:
        chat({"contents": [*USER, {"role": "user", "parts": [{"functionResponse": {"name": "z", "response": {}}}]}]})
    assert caught.value.param == "contents[1].parts[0].functionResponse"


def test_parts_of_every_kind():
    contents = [{"role": "user", "parts": [
        {"text": "Look:"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"inline_data": {"mime_type": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "gs://bucket/report.pdf", "mimeType": "application/pdf"}},
        {"text": "Thinking aloud", "thought": True},
    ]}]
    message = chat({"contents": contents})["messages"][0]
    assert message == {"role": "user", "content": [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "file.pdf"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "file", "file": {"file_id": "gs://bucket/report.pdf"}},
    ]}


def test_model_turns_and_system_instruction():
    body = {
        "system_instruction": {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
        "contents": [*USER, {"role": "model", "parts": [
            {"text": "secret", "thought": True}, {"text": "Hello"}, {"text": " there"},
            {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
            {"text": "", "thoughtSignature": "skip_thought_signature_validator"}]}, *USER],
    }
    messages = chat(body)["messages"]
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}]}
    assert messages[2] == {"role": "assistant", "content": "Hello there\n```python\nprint(1)\n```\n\n```\n1\n```\n"}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_generation_config():
    config = {"temperature": 0.2, "topP": 0.9, "topK": 64, "maxOutputTokens": 300, "stopSequences": ["END"],
              "candidateCount": 2, "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
              "responseMimeType": "application/json",
              "responseSchema": {"type": "OBJECT", "properties": {"name": {"type": "STRING", "nullable": True},
                                                                  "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}, "max_items": "3"}},
                                 "required": ["name"], "propertyOrdering": ["name", "tags"]},
              "mediaResolution": "MEDIA_RESOLUTION_LOW"}
    result = to_chat({"contents": USER, "generationConfig": config, "safetySettings": [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}, model="m", stream=True, signer=SIGNER)
    body = result.body
    assert {k: v for k, v in body.items() if k not in ("messages", "response_format")} == {
        "model": "m", "stream": True, "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 300,
        "stop": ["END"], "n": 2, "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5}
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": {
        "type": "object", "required": ["name"], "properties": {
            "name": {"type": ["string", "null"]},
            "tags": {"type": "array", "maxItems": 3, "items": {"type": "string", "enum": ["a", "b"]}}}}}}
    assert result.dropped == ("safetySettings", "generationConfig.topK", "generationConfig.mediaResolution")
    assert chat({"contents": USER, "generationConfig": {"responseMimeType": "application/json"}})["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "additionalProperties": False}
    assert chat({"contents": USER, "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema}})[
        "response_format"]["json_schema"]["schema"] == schema


@pytest.mark.parametrize(("thinking", "effort"), [
    ({"thinkingLevel": "MINIMAL"}, "minimal"), ({"thinkingLevel": "low"}, "low"), ({"thinkingLevel": "MEDIUM"}, "medium"),
    ({"thinkingLevel": "HIGH"}, "high"), ({"thinkingBudget": 0}, "none"), ({"thinkingBudget": 300}, "minimal"),
    ({"thinkingBudget": 512}, "minimal"), ({"thinkingBudget": 1024}, "low"), ({"thinkingBudget": 8192}, "medium"),
    ({"thinkingBudget": 8193}, "high"), ({"thinkingBudget": 24576}, "high"), ({"thinkingBudget": -1}, None),
    ({"includeThoughts": True}, None)])
def test_thinking_config_becomes_an_effort(thinking: dict[str, Any], effort: str | None):
    body = {"contents": USER, "generationConfig": {"thinkingConfig": thinking}}
    assert chat(body).get("reasoning_effort") == effort
    assert wants_thoughts(body) is (thinking.get("includeThoughts") is True)


def test_effort_budgets_invert_the_plugins_budget_table():
    from compatgate_gemini.request import _BUDGETS
    for effort, budget in EFFORT_BUDGETS:
        assert _BUDGETS[effort] == budget


def test_tools_and_tool_config():
    tools = [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
        {"name": "lookup", "parametersJsonSchema": {"type": "object", "properties": {"q": {"type": "string"}}}},
        {"name": "now"}]},
        {"googleSearch": {}}, {"code_execution": {}}]
    result = to_chat({"contents": USER, "tools": tools}, model="m", stream=False, signer=SIGNER)
    assert result.body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "now"}}]
    assert result.dropped == ("tools[1].googleSearch", "tools[2].codeExecution")
    choices = {
        "AUTO": "auto", "VALIDATED": "auto", "NONE": "none", "ANY": "required",
        ("ANY", "now"): {"type": "function", "function": {"name": "now"}},
        ("ANY", "now", "lookup"): {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
            {"type": "function", "function": {"name": "now"}}, {"type": "function", "function": {"name": "lookup"}}]}},
    }
    for mode, expected in choices.items():
        mode, *names = mode if isinstance(mode, tuple) else (mode,)
        config = {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": names}}
        assert chat({"contents": USER, "tools": tools, "toolConfig": config})["tool_choice"] == expected
    with pytest.raises(InvalidRequestError, match="'nope' is not one of the declared functions"):
        chat({"contents": USER, "tools": tools, "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}}})
    only_hosted = to_chat({"contents": USER, "tools": [{"googleSearch": {}}], "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
                          model="m", stream=False, signer=SIGNER)
    assert "tools" not in only_hosted.body and "tool_choice" not in only_hosted.body


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"cachedContent": "cachedContents/abc"}, "cachedContent", "cached by Google"),
    ({"generationConfig": {"responseMimeType": "text/x.enum"}}, "generationConfig.responseMimeType", "not supported"),
    ({"generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}, "generationConfig.responseModalities", "Only text"),
    ({"generationConfig": {"responseLogprobs": True}}, "generationConfig.responseLogprobs", "not supported"),
    ({"generationConfig": {"speechConfig": {"voiceConfig": {}}}}, "generationConfig.speechConfig", "not supported"),
    ({"generationConfig": {"responseSchema": {"type": "STRING"}}}, "generationConfig.responseMimeType", "needs"),
    ({"someNewField": 1}, "someNewField", "not supported"),
    ({"tools": [{"functionDeclarations": [{"name": "f"}, {"name": "f"}]}]}, "tools[0].functionDeclarations[1].name", "declared twice"),
])
def test_what_cannot_be_converted_is_a_400(body: dict[str, Any], param: str, message: str):
    with pytest.raises(InvalidRequestError, match=message) as caught:
        chat({"contents": USER, **body})
    assert caught.value.param == param and caught.value.status_code == 400


def test_media_in_a_model_turn_and_multimodal_responses_are_refused():
    with pytest.raises(InvalidRequestError) as caught:
        chat({"contents": [*USER, {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}]})
    assert caught.value.param == "contents[1].parts[0]"
    history = [*USER, {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
               {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}, "parts": [{"text": "x"}]}}]}]
    with pytest.raises(InvalidRequestError, match="multimodal"):
        chat({"contents": history})


def test_deep_arguments_are_a_400_not_a_500():
    deep: Any = {}
    for _ in range(300):
        deep = {"a": deep}
    history = [*USER, {"role": "model", "parts": [{"functionCall": {"name": "f", "args": deep}}]}]
    with pytest.raises(InvalidRequestError, match="nested too deeply"):
        chat({"contents": history})
