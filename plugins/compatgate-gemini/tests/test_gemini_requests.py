"""OpenAI requests -> the Gemini request the gateway sends (every mapping, and what is refused)."""

from __future__ import annotations

import base64

import httpx2
import pytest
from gemini_support import UPSTREAM_KEY, USER, Served, gemini_config, gemini_response, refused, sent

from compatgate.testing import FakeUpstream

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really-an-image").decode()


def test_roles_system_instruction_and_merging(gw: Served, upstream: FakeUpstream):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": "un"},
        {"role": "assistant", "content": [{"type": "text", "text": "deux"}, {"type": "refusal", "refusal": "non"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "three"},
        {"role": "system", "content": "Late system note."},
    ]
    body = sent(gw, upstream, messages=messages)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."},
                                                   {"text": "Late system note."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
        {"role": "model", "parts": [{"text": "un"}, {"text": "deux"}, {"text": "non"}]},
        {"role": "user", "parts": [{"text": "three"}]},
    ]
    assert body["generationConfig"] == {} and "tools" not in body and "toolConfig" not in body


def test_tool_results_become_function_responses_named_after_their_call(gw: Served, upstream: FakeUpstream):
    calls = [
        {"id": "gem1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "a"}'}},
        {"id": "call_" + "ab" * 12, "type": "function", "function": {"name": "fetch", "arguments": ""}},
        {"id": "gem3", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "c"}'}},
    ]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Looking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "gem3", "content": "[1, 2]"},
        {"role": "tool", "tool_call_id": "gem1", "content": '{"found": true}'},
        {"role": "tool", "tool_call_id": "call_" + "ab" * 12, "content": [{"type": "text", "text": "plain "},
                                                                          {"type": "text", "text": "text"}]},
        {"role": "user", "content": "thanks"},
    ]
    contents = sent(gw, upstream, messages=messages)["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"text": "Looking."},
        {"functionCall": {"name": "lookup", "args": {"q": "a"}, "id": "gem1"}},
        {"functionCall": {"name": "fetch", "args": {}}},  # a generated id is never sent upstream
        {"functionCall": {"name": "lookup", "args": {"q": "c"}, "id": "gem3"}},
    ]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "lookup", "response": {"output": [1, 2]}, "id": "gem3"}},
        {"functionResponse": {"name": "lookup", "response": {"found": True}, "id": "gem1"}},
        {"functionResponse": {"name": "fetch", "response": {"output": "plain text"}}},
        {"text": "thanks"},
    ]}


def test_legacy_function_messages(gw: Served, upstream: FakeUpstream):
    messages = [*USER, {"role": "function", "name": "clock", "content": "noon"}]
    assert sent(gw, upstream, messages=messages)["contents"][0]["parts"][1] == {
        "functionResponse": {"name": "clock", "response": {"output": "noon"}}}


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([*USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}], "messages[1].tool_call_id"),
        ([*USER, {"role": "tool", "content": "x"}], "messages[1].tool_call_id"),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
        ([*USER, {"role": "robot", "content": "x"}], "messages[1].role"),
        ([*USER, {"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                                                       "function": {"name": "f", "arguments": "{oops"}}]}],
         "messages[1].tool_calls[0].function.arguments"),
        ([*USER, {"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                                                       "function": {"name": "f", "arguments": "[1]"}}]}],
         "messages[1].tool_calls[0].function.arguments"),
        ([{"role": "user", "content": [{"type": "video", "video": "x"}]}], "messages[0].content[0]"),
        ([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, *USER],
         "messages[0].content[0]"),
    ],
    ids=["unknown-tool-call-id", "no-tool-call-id", "no-conversation", "unknown-role", "invalid-arguments",
         "arguments-not-object", "unknown-part", "image-in-system"],
)
def test_unconvertible_messages_are_400(gw: Served, upstream: FakeUpstream, messages: list, param: str):
    error = refused(gw, upstream, messages=messages)
    assert error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"type": "image_url", "image_url": {"url": "https://example.com/cat.jpeg?size=2"}},
         {"fileData": {"fileUri": "https://example.com/cat.jpeg?size=2", "mimeType": "image/jpeg"}}),
        ({"type": "image_url", "image_url": {"url": "gs://bucket/object"}}, {"fileData": {"fileUri": "gs://bucket/object"}}),
        ({"type": "image_url", "image_url": {"url": "data:image/webp;base64, " + PNG}},
         {"inlineData": {"mimeType": "image/webp", "data": PNG}}),
        ({"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}},
         {"inlineData": {"mimeType": "audio/wav", "data": PNG}}),
        ({"type": "input_audio", "input_audio": {"data": PNG, "format": "mp3"}},
         {"inlineData": {"mimeType": "audio/mp3", "data": PNG}}),
        ({"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}", "filename": "a.pdf"}},
         {"inlineData": {"mimeType": "application/pdf", "data": PNG}}),
        ({"type": "file", "file": {"file_id": "files/abc-123", "filename": "report.pdf"}},
         {"fileData": {"fileUri": "files/abc-123", "mimeType": "application/pdf"}}),
    ],
    ids=["https", "gs", "data-url", "wav", "mp3", "pdf-data", "gemini-file"],
)
def test_media_parts(gw: Served, upstream: FakeUpstream, part: dict, expected: dict):
    body = sent(gw, upstream, messages=[{"role": "user", "content": [part]}])
    assert body["contents"] == [{"role": "user", "parts": [expected]}]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:image/png;base64,%%%not-base64", "not valid base64"),
        ("data:image/png,rawbytes", "only base64 data URLs"),
        ("ftp://example.com/cat.png", "expected a data URL or an http(s) URL"),
        ("", "needs a URL"),
    ],
)
def test_bad_image_urls_are_400(gw: Served, upstream: FakeUpstream, url: str, message: str):
    part = {"type": "image_url", "image_url": {"url": url}}
    error = refused(gw, upstream, messages=[{"role": "user", "content": [part]}])
    assert message in error["message"] and error["param"] == "messages[0].content[0]"


def test_remote_files_can_be_refused(make_gateway, upstream: FakeUpstream):
    gw = make_gateway(remote_files=False)
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert "data URLs only" in refused(gw, upstream, messages=[{"role": "user", "content": [part]}])["message"]
    inline = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert sent(gw, upstream, messages=[{"role": "user", "content": [inline]}])["contents"][0]["parts"][0]["inlineData"]


def test_generation_config(gw: Served, upstream: FakeUpstream):
    body = sent(gw, upstream, temperature=0.2, top_p=0.9, top_k=40, seed=7, presence_penalty=0.5,
                frequency_penalty=-0.5, max_tokens=50, max_completion_tokens=60, stop="END", n=1,
                user="u-1", metadata={"a": "b"}, store=False, parallel_tool_calls=True, service_tier="auto")
    assert body["generationConfig"] == {"temperature": 0.2, "topP": 0.9, "topK": 40, "seed": 7,
                                        "presencePenalty": 0.5, "frequencyPenalty": -0.5,
                                        "maxOutputTokens": 60, "stopSequences": ["END"]}
    assert sent(gw, upstream, stop=["a", "b"], max_tokens=5)["generationConfig"] == {
        "stopSequences": ["a", "b"], "maxOutputTokens": 5}


@pytest.mark.parametrize(
    ("body", "param"),
    [({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "logprobs"), ({"logit_bias": {"1": 5}}, "logit_bias"),
     ({"modalities": ["text", "audio"]}, "modalities"), ({"temperature": "hot"}, "temperature"),
     ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": 2.5}, "max_completion_tokens"),
     ({"stop": [1]}, "stop"), ({"stop": 3}, "stop"),
     ({"functions": [{"name": "f", "parameters": {}}]}, "functions"), ({"function_call": "auto"}, "function_call"),
     ({"web_search_options": {}}, "web_search_options"),
     ({"response_format": {"type": "yaml"}}, "response_format"), ({"reasoning_effort": "extreme"}, "reasoning_effort")],
)
def test_parameters_gemini_cannot_honour_are_400(gw: Served, upstream: FakeUpstream, body: dict, param: str):
    assert refused(gw, upstream, **body)["param"] == param


def test_response_format(make_gateway, upstream: FakeUpstream):
    gw = make_gateway()
    schema = {"type": "object", "properties": {"name": {"type": "string", "title": "Name"}},
              "required": ["name"], "additionalProperties": False}
    body = sent(gw, upstream, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema, "strict": True}})
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "properties": {"name": {"type": "STRING"}}, "required": ["name"]}}
    assert sent(gw, upstream, response_format={"type": "json_object"})["generationConfig"] == {"responseMimeType": "application/json"}
    assert sent(gw, upstream, response_format={"type": "text"})["generationConfig"] == {}
    full = make_gateway(tool_schema="json_schema")
    body = sent(full, upstream, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {"$schema": "x", **schema}}})
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}


@pytest.mark.parametrize(
    ("model", "effort", "options", "expected"),
    [
        ("gemini-2.5-flash", "low", {}, {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "medium", {}, {"thinkingBudget": 8192, "includeThoughts": True}),
        ("gemini-2.5-flash", "high", {}, {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-flash", "minimal", {}, {"thinkingBudget": 512, "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {}, {"thinkingBudget": 0}),
        ("gemini-3-flash-preview", "high", {}, {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-3-flash-preview", "xhigh", {}, {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-3-flash-preview", "none", {}, {"thinkingLevel": "minimal"}),
        ("gemini-3-flash-preview", "low", {"include_thoughts": False}, {"thinkingLevel": "low"}),
        ("gemini-3-flash-preview", "low", {"thinking": "budget"}, {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "low", {"thinking": "level"}, {"thinkingLevel": "low", "includeThoughts": True}),
        ("gemini-2.5-flash", None, {"include_thoughts": True}, {"includeThoughts": True}),
        ("gemini-2.5-flash", None, {}, None),
    ],
)
def test_reasoning_effort_to_thinking_config(make_gateway, upstream: FakeUpstream, model, effort, options, expected):
    gw = make_gateway(**options)
    extra = {"reasoning_effort": effort} if effort else {}
    config = sent(gw, upstream, model=model, **extra)["generationConfig"]
    assert config.get("thinkingConfig") == expected


def test_n_asks_for_candidates(gw: Served, upstream: FakeUpstream):
    candidates = [{"content": {"parts": [{"text": f"answer {i}"}], "role": "model"}, "finishReason": "STOP", "index": i}
                  for i in range(3)]
    upstream.handler = upstream.json_reply({"candidates": candidates, "usageMetadata": {"promptTokenCount": 2}})
    completion = gw.client().chat.completions.create(model="gemini-2.5-flash", messages=USER, n=3)
    assert upstream.received[-1].json["generationConfig"] == {"candidateCount": 3}
    assert [c.message.content for c in completion.choices] == ["answer 0", "answer 1", "answer 2"]
    assert [c.index for c in completion.choices] == [0, 1, 2]


def test_upstream_url_and_headers(make_gateway, upstream_served, upstream: FakeUpstream):
    models = [{"name": "alias", "provider": "google", "upstream_model": "gemini-2.5-flash"},
              {"name": "tuned", "provider": "google", "upstream_model": "tunedModels/my-model-1"}]
    gw = make_gateway(gemini_config(upstream_served[1] + "/proxy", models=models, api_version="v1",
                                    headers={"x-extra": "1"}))
    upstream.handler = upstream.json_reply(gemini_response([{"text": "ok"}]))
    gw.client().chat.completions.create(model="alias", messages=USER)
    gw.client().chat.completions.create(model="tuned", messages=USER)
    first, second = upstream.received[-2:]
    assert first.path == "/proxy/v1/models/gemini-2.5-flash:generateContent" and first.query == ""
    assert second.path == "/proxy/v1/tunedModels/my-model-1:generateContent"
    for request in (first, second):
        assert request.headers["x-goog-api-key"] == UPSTREAM_KEY and request.headers["x-extra"] == "1"
        assert "authorization" not in request.headers and "key=" not in request.query
        assert request.headers["content-type"] == "application/json" and request.headers["x-request-id"]


def test_safety_settings_pass_through(make_gateway, upstream: FakeUpstream):
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert sent(make_gateway(safety_settings=settings), upstream)["safetySettings"] == settings


def test_missing_gateway_key_never_reaches_gemini(gw: Served, upstream: FakeUpstream):
    response = httpx2.post(f"{gw.url}/chat/completions", json={"model": "gemini-2.5-flash", "messages": USER}, timeout=10)
    assert response.status_code == 401 and upstream.received == []
