"""Gemini HTTP errors -> OpenAI errors (status, type, code, Retry-After), streamed or not."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from gemini_support import UPSTREAM_KEY, USER, Served

from compatgate.testing import FakeUpstream, OpenAISchema

REQUEST = {"model": "gemini-2.5-flash", "messages": USER}


def google_error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


API_KEY_INVALID = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                   "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}
RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36.6s"}
QUOTA = {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "x"}]}

CASES = [
    ("invalid-argument", 400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
     openai.BadRequestError, "invalid_request_error", "invalid_argument", None),
    ("bad-key", 400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", API_KEY_INVALID),
     openai.BadRequestError, "invalid_request_error", "api_key_invalid", None),
    ("permission-denied", 403, google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
     openai.PermissionDeniedError, "permission_error", "permission_denied", None),
    ("not-found", 404, google_error(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta."),
     openai.NotFoundError, "invalid_request_error", "not_found", None),
    ("resource-exhausted", 429, google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", QUOTA, RETRY),
     openai.RateLimitError, "rate_limit_error", "resource_exhausted", "37"),
    ("internal", 500, google_error(500, "INTERNAL", "An internal error has occurred."),
     openai.InternalServerError, "api_error", "internal", None),
    ("unavailable", 503, google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
     openai.InternalServerError, "api_error", "unavailable", None),
    ("deadline", 504, google_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
     openai.InternalServerError, "timeout_error", "deadline_exceeded", None),
    ("array-form", 400, [google_error(400, "FAILED_PRECONDITION", "User location is not supported.")],
     openai.BadRequestError, "invalid_request_error", "failed_precondition", None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("status", "body", "exception", "type_", "code", "retry"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_http_errors(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema, stream: bool,
                     status: int, body: Any, exception: type, type_: str, code: str, retry: str | None):
    upstream.handler = upstream.json_reply(body, status=status)
    response = gw.post("/chat/completions", {**REQUEST, "stream": stream})
    assert response.status_code == status
    error = response.json()
    openai_schema.validate("ErrorResponse", error)
    message = (body[0] if isinstance(body, list) else body)["error"]["message"]
    assert error["error"] == {"message": message, "type": type_, "param": None, "code": code}
    assert response.headers.get("retry-after") == retry
    with pytest.raises(exception) as info:
        gw.client().chat.completions.create(**REQUEST, stream=stream)
    assert info.value.status_code == status and info.value.code == code
    record = gw.records(2)[-1]
    assert record.outcome == "error" and record.status_code == status


def test_upstream_retry_after_header_wins(gw: Served, upstream: FakeUpstream):
    upstream.handler = upstream.json_reply(google_error(429, "RESOURCE_EXHAUSTED", "Slow down.", RETRY),
                                           status=429, headers={"retry-after": "5"})
    assert gw.post("/chat/completions", REQUEST).headers["retry-after"] == "5"


def test_the_key_never_reaches_the_client(gw: Served, upstream: FakeUpstream):
    upstream.handler = upstream.json_reply(google_error(400, "INVALID_ARGUMENT", f"Bad key {UPSTREAM_KEY} given."), status=400)
    response = gw.post("/chat/completions", REQUEST)
    assert UPSTREAM_KEY not in response.text and response.json()["error"]["message"] == "Bad key *** given."


@pytest.mark.parametrize(
    ("status", "content", "expected"),
    [(502, b"<html><body>Bad Gateway</body></html>", "<html><body>Bad Gateway</body></html>"),
     (500, b"", "The upstream provider answered with HTTP 500."),
     (400, orjson.dumps({"error": {"code": 400}}), "The Gemini API answered with HTTP 400."),
     (418, orjson.dumps({"error": {"code": 418, "message": "teapot", "status": "SOMETHING_NEW"}}), "teapot")],
    ids=["html", "empty", "no-message", "unknown-status"],
)
def test_unusual_error_bodies(gw: Served, upstream: FakeUpstream, status: int, content: bytes, expected: str):
    upstream.handler = upstream.json_reply(content, status=status)
    response = gw.post("/chat/completions", REQUEST)
    assert response.status_code == status and response.json()["error"]["message"] == expected
    assert response.json()["error"]["type"] == ("api_error" if status >= 500 else "invalid_request_error")
