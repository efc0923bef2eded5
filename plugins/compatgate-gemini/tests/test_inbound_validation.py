"""Bad Gemini requests: a 400 in Google's error format naming the field, never a 500; and the
error format itself for every status."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from compatgate_gemini.errors import http_error
from compatgate_gemini.inbound import (
    error_body,
    validate,
    validate_batch_embed_contents,
    validate_count_tokens,
    validate_embed_content,
)

from compatgate import (
    AuthenticationError,
    GatewayError,
    InsufficientQuotaError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

USER = [{"role": "user", "parts": [{"text": "Hi"}]}]


def refused(check: Any, body: Any) -> dict[str, Any]:
    with pytest.raises(InvalidRequestError) as caught:
        check(body)
    status, content, headers = error_body(caught.value)
    assert status == 400 and headers["content-type"] == "application/json; charset=UTF-8"
    error = orjson.loads(content)
    assert set(error) == {"error"} and set(error["error"]) == {"code", "message", "status"}
    assert error["error"]["code"] == 400 and error["error"]["status"] == "INVALID_ARGUMENT"
    return {"param": caught.value.param, "message": error["error"]["message"]}


BAD_REQUESTS = [
    ([1], None, "must be a JSON object"),
    ({}, "contents", "expected an array, got null"),
    ({"contents": []}, "contents", "must not be empty"),
    ({"contents": "hi"}, "contents", "expected an array, got 'hi'"),
    ({"contents": [{"parts": [{"text": 1}]}]}, "contents[0].parts[0].text", "expected a string, got 1"),
    ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "contents[0].role", "must be 'user' or 'model'"),
    ({"contents": [{"role": "user"}]}, "contents[0].parts", "expected an array"),
    ({"contents": [{"parts": [{}]}]}, "contents[0].parts[0]", "exactly one of text"),
    ({"contents": [{"parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": "AA=="}}]}]},
     "contents[0].parts[0]", "got text, inlineData"),
    ({"contents": [{"parts": [{"inlineData": {"data": "AA=="}}]}]}, "contents[0].parts[0].inlineData.mimeType", "got null"),
    ({"contents": [{"parts": [{"file_data": {"mime_type": "image/png"}}]}]}, "contents[0].parts[0].fileData.fileUri", "got null"),
    ({"contents": [{"parts": [{"functionCall": {"args": {}}}]}]}, "contents[0].parts[0].functionCall.name", "got null"),
    ({"contents": [{"parts": [{"functionCall": {"name": "f", "args": [1]}}]}]}, "contents[0].parts[0].functionCall.args", "expected an object"),
    ({"contents": [{"parts": [{"functionResponse": {"name": "f", "response": "ok"}}]}]},
     "contents[0].parts[0].functionResponse.response", "expected an object"),
    ({"contents": [{"parts": [{"text": "x", "thought": "yes"}]}]}, "contents[0].parts[0].thought", "expected true or false"),
    ({"contents": [{"parts": [{"text": "x", "thoughtSignature": 5}]}]}, "contents[0].parts[0].thoughtSignature", "expected a string"),
    ({"contents": USER, "systemInstruction": "Be nice"}, "systemInstruction", "expected an object"),
    ({"contents": USER, "generationConfig": []}, "generationConfig", "expected an object"),
    ({"contents": USER, "generationConfig": {"temperature": "hot"}}, "generationConfig.temperature", "expected a number"),
    ({"contents": USER, "generationConfig": {"temperature": 3}}, "generationConfig.temperature", "between 0 and 2"),
    ({"contents": USER, "generationConfig": {"topP": -0.1}}, "generationConfig.topP", "between 0 and 1"),
    ({"contents": USER, "generationConfig": {"topK": 0}}, "generationConfig.topK", "between 1 and"),
    ({"contents": USER, "generationConfig": {"maxOutputTokens": 10**30}}, "generationConfig.maxOutputTokens", "between 1 and 2147483647"),
    ({"contents": USER, "generation_config": {"max_output_tokens": 1.5}}, "generationConfig.maxOutputTokens", "expected an integer"),
    ({"contents": USER, "generationConfig": {"maxOutputTokens": True}}, "generationConfig.maxOutputTokens", "expected an integer, got true"),
    ({"contents": USER, "generationConfig": {"candidateCount": 9}}, "generationConfig.candidateCount", "between 1 and 8"),
    ({"contents": USER, "generationConfig": {"seed": 2**40}}, "generationConfig.seed", "between"),
    ({"contents": USER, "generationConfig": {"presencePenalty": 2.5}}, "generationConfig.presencePenalty", "between -2 and 2"),
    ({"contents": USER, "generationConfig": {"stopSequences": "END"}}, "generationConfig.stopSequences", "expected an array"),
    ({"contents": USER, "generationConfig": {"stopSequences": ["a"] * 6}}, "generationConfig.stopSequences", "at most 5"),
    ({"contents": USER, "generationConfig": {"stopSequences": [1]}}, "generationConfig.stopSequences[0]", "expected a string"),
    ({"contents": USER, "generationConfig": {"thinkingConfig": {"thinkingBudget": -2}}},
     "generationConfig.thinkingConfig.thinkingBudget", "between -1 and"),
    ({"contents": USER, "generationConfig": {"thinkingConfig": {"thinkingLevel": "EXTREME"}}},
     "generationConfig.thinkingConfig.thinkingLevel", "expected one of"),
    ({"contents": USER, "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 10}}},
     "generationConfig.thinkingConfig", "cannot both be set"),
    ({"contents": USER, "generationConfig": {"thinkingConfig": {"includeThoughts": 1}}},
     "generationConfig.thinkingConfig.includeThoughts", "expected true or false"),
    ({"contents": USER, "generationConfig": {"responseSchema": {"type": "WHATEVER"}}}, "generationConfig.responseSchema.type", "expected one of"),
    ({"contents": USER, "tools": {"functionDeclarations": []}}, "tools", "expected an array"),
    ({"contents": USER, "tools": [{"functionDeclarations": [{"description": "no name"}]}]},
     "tools[0].functionDeclarations[0].name", "got null"),
    ({"contents": USER, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}, "parametersJsonSchema": {}}]}]},
     "tools[0].functionDeclarations[0]", "cannot both be set"),
    ({"contents": USER, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": "ARRAY", "items": "x"}}}}]}]},
     "tools[0].functionDeclarations[0].parameters.properties.a.items", "expected an object"),
    ({"contents": USER, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "STRING", "minLength": "many"}}]}]},
     "tools[0].functionDeclarations[0].parameters.minLength", "expected an integer"),
    ({"contents": USER, "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}, "toolConfig.functionCallingConfig.mode", "expected one of"),
    ({"contents": USER, "toolConfig": {"functionCallingConfig": {"allowedFunctionNames": "f"}}},
     "toolConfig.functionCallingConfig.allowedFunctionNames", "expected an array"),
    ({"contents": USER, "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT"}]}, "safetySettings[0].threshold", "got null"),
    ({"contents": USER, "cachedContent": 5}, "cachedContent", "expected a string"),
    ({"contents": USER, "generationConfig": {"temperature": 1}, "generation_config": {}}, "generationConfig", "given twice"),
]


@pytest.mark.parametrize(("body", "param", "message"), BAD_REQUESTS, ids=[str(i) for i in range(len(BAD_REQUESTS))])
def test_bad_generate_content_requests(body: Any, param: str | None, message: str):
    error = refused(validate, body)
    assert error["param"] == param
    assert message in error["message"]
    if param is not None:
        assert error["message"].startswith(f"Invalid value at '{param}': ")


def test_schemas_nested_too_deep_are_refused():
    schema: dict[str, Any] = {"type": "STRING"}
    for _ in range(70):
        schema = {"type": "OBJECT", "properties": {"a": schema}}
    body = {"contents": USER, "tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}]}
    assert "nested" in refused(validate, body)["message"]


def test_good_requests_pass():
    validate({"contents": USER, "generationConfig": {"temperature": 0, "maxOutputTokens": 2**31 - 1, "topK": 64.0,
                                                     "thinkingConfig": {"thinkingBudget": -1, "includeThoughts": True}},
              "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "minItems": "1"}}]},
                        {"googleSearch": {}}], "someFieldGeminiAddedLater": {"x": 1}})
    validate_count_tokens({"generateContentRequest": {"model": "models/x", "contents": USER}})
    validate_embed_content({"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8, "task_type": "RETRIEVAL_QUERY"})
    validate_batch_embed_contents({"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}}]})


@pytest.mark.parametrize(("check", "body", "param"), [
    (validate_count_tokens, {}, "contents"),
    (validate_count_tokens, {"contents": USER, "generateContentRequest": {"contents": USER}}, "contents"),
    (validate_count_tokens, {"generateContentRequest": {"contents": USER, "generationConfig": {"topP": 2}}},
     "generateContentRequest.generationConfig.topP"),
    (validate_embed_content, {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}, "content.parts[0]"),
    (validate_embed_content, {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 0}, "outputDimensionality"),
    (validate_embed_content, {"content": "text"}, "content"),
    (validate_batch_embed_contents, {"requests": []}, "requests"),
    (validate_batch_embed_contents, {"requests": [{"content": {"parts": [{"text": "a"}]}, "output_dimensionality": "8"}]},
     "requests[0].outputDimensionality"),
])
def test_bad_bodies_of_the_other_methods(check: Any, body: Any, param: str):
    assert refused(check, body)["param"] == param


@pytest.mark.parametrize(("error", "status", "name"), [
    (InvalidRequestError("bad"), 400, "INVALID_ARGUMENT"),
    (AuthenticationError("Invalid API key."), 401, "UNAUTHENTICATED"),
    (PermissionDeniedError("Not for you."), 403, "PERMISSION_DENIED"),
    (ModelNotFoundError("No model 'x'."), 404, "NOT_FOUND"),
    (MethodNotAllowedError("GET", "POST"), 405, "UNIMPLEMENTED"),
    (RequestTooLargeError("Too large."), 413, "INVALID_ARGUMENT"),
    (RateLimitError("Slow down.", retry_after=2.2), 429, "RESOURCE_EXHAUSTED"),
    (InsufficientQuotaError("Budget spent."), 429, "RESOURCE_EXHAUSTED"),
    (GatewayError("Oops."), 500, "INTERNAL"),
    (UpstreamUnavailableError("Unreachable."), 502, "UNAVAILABLE"),
    (UpstreamError("Overloaded.", status_code=503), 503, "UNAVAILABLE"),
    (UpstreamTimeoutError("Too slow."), 504, "DEADLINE_EXCEEDED"),
    (UpstreamError("Overloaded.", status_code=529), 529, "UNAVAILABLE"),
    (http_error(400, b'{"error": {"code": 400, "message": "No.", "status": "FAILED_PRECONDITION"}}', ()), 400, "FAILED_PRECONDITION"),
])
def test_errors_in_googles_format(error: GatewayError, status: int, name: str):
    code, content, headers = error_body(error)
    body = orjson.loads(content)["error"]
    assert code == status and body["code"] == status and body["status"] == name and body["message"] == error.message
    for key, value in error.headers.items():
        assert headers[key] == value  # Retry-After, Allow
    reasons = [d["reason"] for d in body.get("details", ()) if d["@type"].endswith("ErrorInfo")]
    assert reasons == ([error.code.upper()] if error.code and error.code.upper() != name else [])
    if isinstance(error, RateLimitError) and not isinstance(error, InsufficientQuotaError):
        assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"} in body["details"]
