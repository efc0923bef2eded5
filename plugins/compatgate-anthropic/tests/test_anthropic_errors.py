"""Anthropic errors -> OpenAI errors (status, type, code, Retry-After), and
``anthropic-ratelimit-*`` -> ``x-ratelimit-*`` on answers, streams and errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import openai
import pytest
from anthropic_support import MESSAGES, MODEL, UPSTREAM_KEY, Served, exact_reply, message, recording
from compatgate_anthropic.errors import rate_limit_headers

from compatgate.http import reset_duration as duration
from compatgate.testing import OpenAISchema


def anthropic_error(type_: str, message_: str = "Something happened.") -> dict:
    return {"type": "error", "error": {"type": type_, "message": message_}, "request_id": "req_011"}


@pytest.mark.parametrize(("status", "type_", "expected_status", "expected_type", "sdk_error"), [
    (400, "invalid_request_error", 400, "invalid_request_error", openai.BadRequestError),
    (401, "authentication_error", 401, "authentication_error", openai.AuthenticationError),
    (402, "billing_error", 402, "insufficient_quota", openai.APIStatusError),
    (403, "permission_error", 403, "permission_error", openai.PermissionDeniedError),
    (404, "not_found_error", 404, "invalid_request_error", openai.NotFoundError),
    (413, "request_too_large", 413, "invalid_request_error", openai.APIStatusError),
    (429, "rate_limit_error", 429, "rate_limit_error", openai.RateLimitError),
    (500, "api_error", 500, "server_error", openai.InternalServerError),
    (504, "timeout_error", 504, "timeout_error", openai.InternalServerError),
    (529, "overloaded_error", 503, "server_error", openai.InternalServerError),
])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_errors_map_to_openai(gw: Served, upstream, openai_schema: OpenAISchema, status, type_,
                                        expected_status, expected_type, sdk_error, stream: bool):
    fake, _ = upstream
    headers = {"retry-after": "7"} if status in (429, 529) else {}
    fake.handler = fake.json_reply(anthropic_error(type_), status=status, headers=headers)
    response = gw.post({"model": MODEL, "messages": MESSAGES, "stream": stream})
    assert response.status_code == expected_status  # an error before the stream keeps its status
    body = response.json()
    openai_schema.validate("ErrorResponse", body)
    assert body["error"] == {"message": "Something happened.", "type": expected_type, "param": None, "code": type_}
    assert response.headers.get("retry-after") == headers.get("retry-after")
    with pytest.raises(sdk_error) as info:
        gw.client().chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
    assert info.value.status_code == expected_status
    records = gw.records(2)
    assert [(r.outcome, r.status_code) for r in records] == [("error", expected_status)] * 2


@pytest.mark.parametrize(("status", "expected_status", "expected_type"), [
    (502, 502, "server_error"), (529, 503, "server_error"), (413, 413, "invalid_request_error"),
    (409, 409, "upstream_error"),
])
def test_errors_without_an_anthropic_body(gw: Served, upstream, status, expected_status, expected_type):
    fake, _ = upstream
    fake.handler = fake.json_reply(b"<html>Bad gateway</html>", status=status)
    response = gw.post({"model": MODEL, "messages": MESSAGES})
    assert response.status_code == expected_status
    assert response.json()["error"]["type"] == expected_type


def test_the_upstream_key_never_reaches_the_client(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(anthropic_error("authentication_error", f"invalid x-api-key {UPSTREAM_KEY}"),
                                   status=401)
    response = gw.post({"model": MODEL, "messages": MESSAGES})
    assert UPSTREAM_KEY not in response.text and "***" in response.json()["error"]["message"]


def test_unreachable_upstream(make_gateway):
    from anthropic_support import gateway_config

    gw = make_gateway(gateway_config("http://127.0.0.1:9"))
    response = gw.post({"model": MODEL, "messages": MESSAGES})
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_unavailable"


def _limits(reset_in: float) -> dict[str, str]:
    reset = (datetime.now(UTC) + timedelta(seconds=reset_in)).isoformat().replace("+00:00", "Z")
    return {
        "anthropic-ratelimit-requests-limit": "1000", "anthropic-ratelimit-requests-remaining": "999",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": "96000", "anthropic-ratelimit-tokens-remaining": "95000",
        "anthropic-ratelimit-input-tokens-remaining": "80000", "request-id": "req_1",
    }


def _check_limits(headers) -> None:
    assert headers["x-ratelimit-limit-requests"] == "1000"
    assert headers["x-ratelimit-remaining-requests"] == "999"
    assert headers["x-ratelimit-limit-tokens"] == "96000"
    assert headers["x-ratelimit-remaining-tokens"] == "95000"
    assert headers["x-ratelimit-remaining-input-tokens"] == "80000"
    reset = headers["x-ratelimit-reset-requests"]  # 60 s from the upstream's answer: "59.9s" or "1m0s"
    minutes, _, seconds = reset.rpartition("m")
    assert 55 <= 60 * int(minutes or 0) + float(seconds.removesuffix("s")) <= 61, reset
    assert not any(name.startswith("anthropic-ratelimit") for name in headers)


def test_rate_limit_headers_on_answers_streams_and_errors(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(message({"type": "text", "text": "ok"}), headers=_limits(60))
    _check_limits(gw.post({"model": MODEL, "messages": MESSAGES}).headers)

    fake.handler = exact_reply(recording("basic_response.txt"), headers=_limits(60))
    response, _ = gw.stream({"model": MODEL, "messages": MESSAGES})
    _check_limits(response.headers)

    fake.handler = fake.json_reply(anthropic_error("rate_limit_error"), status=429,
                                   headers={**_limits(60), "retry-after": "60"})
    response = gw.post({"model": MODEL, "messages": MESSAGES})
    assert response.status_code == 429 and response.headers["retry-after"] == "60"
    _check_limits(response.headers)


def test_rate_limit_header_translation():
    now = time.time()
    stamp = datetime.fromtimestamp(now + 90.5, UTC).isoformat()
    assert rate_limit_headers({"Anthropic-RateLimit-Output-Tokens-Reset": stamp, "x-other": "1",
                               "anthropic-ratelimit-odd": "1", "anthropic-ratelimit-tokens-used": "1"}, now) == {
        "x-ratelimit-reset-output-tokens": "1m30.5s"}
    assert rate_limit_headers({"anthropic-ratelimit-requests-reset": "soon"}, now) == {
        "x-ratelimit-reset-requests": "soon"}
    assert rate_limit_headers({"anthropic-ratelimit-requests-reset": "2025-01-01T00:00:00"}, now) == {
        "x-ratelimit-reset-requests": "2025-01-01T00:00:00"}  # no time zone: relayed as it came


@pytest.mark.parametrize(("seconds", "text"), [
    (-3, "0s"), (0, "0s"), (0.02, "20ms"), (1, "1s"), (1.5, "1.5s"), (59.999, "59.999s"), (360, "6m0s"),
    (3725.25, "1h2m5.25s"),
])
def test_durations_are_written_like_openai(seconds: float, text: str):
    assert duration(seconds) == text
