"""The built-in access log, the request id and the upstream attempts in usage records."""

from __future__ import annotations

import logging

import httpx2
import openai
import orjson
import pytest
from support import CLIENT_KEY, UPSTREAM_KEY, Served, gateway_config

ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
SECRET_PROMPT = "my secret prompt about alice@example.com"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "compatgate.access"]


def chat(gw: Served, request_id: str) -> httpx2.Response:
    return httpx2.post(
        f"{gw.url}/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": SECRET_PROMPT}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": request_id},
    )


def test_json_access_log_has_the_facts_and_no_secret(make_gateway, upstream, caplog):
    fake, url = upstream
    fake.handler = fake.json_reply(ANSWER)
    gw = make_gateway(gateway_config(url, access_log="json"))
    caplog.set_level(logging.INFO, logger="compatgate.access")
    assert chat(gw, "req-log-1").headers["x-request-id"] == "req-log-1"
    gw.records(1)
    (line,) = access_lines(caplog)
    entry = orjson.loads(line)
    assert entry["request_id"] == "req-log-1" and entry["key_id"] == "static:0"
    assert (entry["model"], entry["provider"], entry["status"], entry["outcome"]) == ("gpt-4o", "up", 200, "ok")
    assert (entry["prompt_tokens"], entry["completion_tokens"], entry["attempts"]) == (5, 1, 1)
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (CLIENT_KEY, UPSTREAM_KEY, SECRET_PROMPT):
        assert secret not in everything


def test_prompts_are_logged_only_when_configured(make_gateway, upstream, caplog):
    fake, url = upstream
    fake.handler = fake.json_reply(ANSWER)
    gw = make_gateway(gateway_config(url, access_log="json", log_prompts=True))
    caplog.set_level(logging.INFO, logger="compatgate.access")
    chat(gw, "req-log-2")
    gw.records(1)
    (line,) = access_lines(caplog)
    assert orjson.loads(line)["prompt"]["messages"][0]["content"] == SECRET_PROMPT


@pytest.mark.parametrize("mode", ["text", "off"])
def test_text_and_off(make_gateway, upstream, caplog, mode: str):
    fake, url = upstream
    fake.handler = fake.json_reply(ANSWER)
    gw = make_gateway(gateway_config(url, access_log=mode))
    caplog.set_level(logging.INFO, logger="compatgate.access")
    chat(gw, "req-log-3")
    gw.records(1)
    lines = access_lines(caplog)
    if mode == "off":
        assert lines == []
    else:
        (line,) = lines
        assert "request_id=req-log-3" in line and "status=200" in line and "key_id=static:0" in line


def test_attempts_are_recorded(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply({"error": {"message": "boom", "type": "server_error"}}, status=500)
    with pytest.raises(openai.InternalServerError):
        gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    fake.handler = fake.json_reply(ANSWER)
    gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    failed, ok = gw.records(2)
    (attempt,) = failed.attempts
    assert (attempt.provider, attempt.upstream_model, attempt.status_code, attempt.error) == (
        "up", "gpt-4o-2024-08-06", 500, "boom")
    assert ok.attempts[0].status_code == 200 and ok.attempts[0].latency_ms > 0


def test_unknown_urls_carry_a_request_id(gw: Served):
    response = httpx2.get(f"{gw.url}/no/such/route", headers={"x-request-id": "req-404"})
    assert response.status_code == 404 and response.headers["x-request-id"] == "req-404"
    assert httpx2.get(f"{gw.url}/files").headers["x-request-id"].startswith("req_")


def test_records_carry_the_answer_and_the_error_code(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply({**ANSWER, "id": "chatcmpl-7", "model": "gpt-4o-2024-08-06"})
    gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    stream = b"".join(
        b"data: " + orjson.dumps({"id": "chatcmpl-8", "object": "chat.completion.chunk", "created": 1,
                                  "model": "gpt-4o-mini", "choices": choices}) + b"\n\n"
        for choices in (
            [{"index": 0, "delta": {"content": "a"}, "finish_reason": None},
             {"index": 1, "delta": {"content": "b"}, "finish_reason": None}],
            [{"index": 1, "delta": {}, "finish_reason": "length"}],
            [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
        )
    ) + b"data: [DONE]\n\n"
    fake.handler = fake.sse_reply(stream)
    list(gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                             stream=True, n=2))
    with pytest.raises(openai.AuthenticationError):
        gw.client(key="sk-wrong").chat.completions.create(model="gpt-4o", messages=[])
    plain, streamed, refused = gw.records(3)
    assert (plain.finish_reasons, plain.response_model, plain.response_id) == (
        ("stop",), "gpt-4o-2024-08-06", "chatcmpl-7")
    assert (streamed.finish_reasons, streamed.response_model, streamed.response_id) == (
        ("length", "tool_calls"), "gpt-4o-mini", "chatcmpl-8")
    assert plain.error_code is None and refused.error_code == "invalid_api_key"
    assert (refused.finish_reasons, refused.response_model) == ((), None)
