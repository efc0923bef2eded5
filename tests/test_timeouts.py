"""Per-provider timeouts: the idle gap between stream chunks (read_timeout, in the transport),
the first token and the whole call (first_token_timeout, total_timeout, around any provider).

A stream that times out after its headers ends with an OpenAI-format error event, never with a
finish or ``[DONE]``; a call that times out before them is a 504."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx2
import orjson
import pytest
from starlette.types import Send

from support import CLIENT_KEY, Served, gateway_config

from compatgate import ConfigError, Gateway, load_config
from compatgate.testing import FakeUpstream, OpenAISchema, Received

MESSAGES = [{"role": "user", "content": "Hello"}]
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1727346172, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "logprobs": None,
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def paced(pieces: list[bytes], *, first_delay: float = 0.0, delay: float = 0.0,
          fake: FakeUpstream | None = None) -> Callable[[Received, Send], Any]:
    """Send the headers at once, then ``pieces``: the first after ``first_delay``, the others
    ``delay`` apart; stops early when the gateway hangs up."""

    async def handler(request: Received, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for index, piece in enumerate(pieces):
            wait = first_delay if index == 0 else delay
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if fake is not None and fake.hung_up.is_set():
                    return
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return handler


def slow_json(fake: FakeUpstream, delay: float) -> Callable[[Received, Send], Any]:
    async def handler(request: Received, send: Send) -> None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not fake.hung_up.is_set():
            await asyncio.sleep(0.01)
        if not fake.hung_up.is_set():
            await FakeUpstream.json_reply(COMPLETION)(request, send)

    return handler


def with_timeouts(url: str, **timeouts: float) -> dict[str, Any]:
    config = gateway_config(url)
    config["providers"]["up"].update(timeouts)
    return config


def stream(gw: Served) -> tuple[httpx2.Response, list[bytes], float]:
    """POST a streamed chat request; the response, its data payloads and the seconds it took."""
    started = time.monotonic()
    with httpx2.stream("POST", f"{gw.url}/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}) as response:
        payloads = [line[6:].encode() for line in response.iter_lines() if line.startswith("data: ")]
    return response, payloads, time.monotonic() - started


def error_event(payloads: list[bytes], schema: OpenAISchema) -> dict[str, Any]:
    """The error event that must end a stream that timed out (and nothing that looks done)."""
    assert payloads and payloads[-1] != b"[DONE]", payloads
    last = orjson.loads(payloads[-1])
    schema.validate("ErrorResponse", last)
    for earlier in payloads[:-1]:
        assert orjson.loads(earlier)["choices"][0]["finish_reason"] is None
    return last["error"]


def test_idle_stream_times_out_with_an_error_event(make_gateway, upstream, openai_schema: OpenAISchema):
    fake, url = upstream
    fake.handler = fake.sse_reply(chunk("Hel") + chunk("lo"), then="stall", stall=10)
    gw = make_gateway(with_timeouts(url, read_timeout=0.4))
    response, payloads, elapsed = stream(gw)
    assert response.status_code == 200
    error = error_event(payloads, openai_schema)
    assert len(payloads) == 3 and error["code"] == "upstream_stream_error"
    assert "timed out" in error["message"] and "'up'" in error["message"]
    assert 0.3 < elapsed < 3, elapsed
    record = gw.records(1)[0]
    assert (record.outcome, record.status_code) == ("error", 200)
    assert fake.hung_up.wait(5), "the gateway never hung up on the idle upstream"


def test_chunks_within_the_idle_gap_keep_a_long_stream_going(make_gateway, upstream):
    fake, url = upstream
    fake.handler = paced([chunk(str(i)) for i in range(8)] + [chunk(finish="stop")], delay=0.15)
    gw = make_gateway(with_timeouts(url, read_timeout=0.5, first_token_timeout=0.5))
    _, payloads, elapsed = stream(gw)
    assert payloads[-1] == b"[DONE]" and len(payloads) == 10
    assert elapsed > 1.0  # longer than every timeout: only the gaps are bounded
    assert gw.records(1)[0].outcome == "ok"


def test_first_token_timeout_on_a_plain_request(make_gateway, upstream, openai_schema: OpenAISchema):
    fake, url = upstream
    fake.handler = slow_json(fake, 3.0)
    gw = make_gateway(with_timeouts(url, first_token_timeout=0.3))
    started = time.monotonic()
    response = httpx2.post(f"{gw.url}/chat/completions", headers=AUTH, timeout=10,
                          json={"model": "gpt-4o", "messages": MESSAGES})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    openai_schema.validate("ErrorResponse", response.json())
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("upstream_timeout", "timeout_error")
    assert "first_token_timeout" in error["message"]
    assert 0.25 < elapsed < 2, elapsed
    record = gw.records(1)[0]
    assert record.status_code == 504
    (attempt,) = record.attempts
    assert (attempt.provider, attempt.status_code) == ("up", 504)
    assert "first_token_timeout" in attempt.error and attempt.upstream_model == "gpt-4o-2024-08-06"
    assert fake.hung_up.wait(5)


def test_slow_first_token_ends_the_stream_with_an_error_event(make_gateway, upstream,
                                                              openai_schema: OpenAISchema):
    fake, url = upstream
    fake.handler = paced([chunk("late"), chunk(finish="stop")], first_delay=3.0, fake=fake)
    gw = make_gateway(with_timeouts(url, first_token_timeout=0.3))
    response, payloads, elapsed = stream(gw)
    assert response.status_code == 200
    error = error_event(payloads, openai_schema)
    assert len(payloads) == 1
    assert (error["code"], error["type"]) == ("upstream_timeout", "timeout_error")
    assert 0.25 < elapsed < 2, elapsed
    assert gw.records(1)[0].outcome == "error"
    assert fake.hung_up.wait(5)


@pytest.mark.parametrize("stream_it", [False, True], ids=["plain", "stream"])
def test_total_timeout(make_gateway, upstream, openai_schema: OpenAISchema, stream_it: bool):
    fake, url = upstream
    gw = make_gateway(with_timeouts(url, total_timeout=0.6, first_token_timeout=5.0))
    if not stream_it:
        fake.handler = slow_json(fake, 3.0)
        started = time.monotonic()
        response = httpx2.post(f"{gw.url}/chat/completions", headers=AUTH, timeout=10,
                              json={"model": "gpt-4o", "messages": MESSAGES})
        assert response.status_code == 504
        assert "total_timeout" in response.json()["error"]["message"]
        assert time.monotonic() - started < 2
        return
    fake.handler = paced([chunk(str(i)) for i in range(30)] + [chunk(finish="stop")], delay=0.1, fake=fake)
    response, payloads, elapsed = stream(gw)
    error = error_event(payloads, openai_schema)
    assert 3 <= len(payloads) < 10, payloads
    assert error["type"] == "timeout_error" and "total_timeout" in error["message"]
    assert 0.5 < elapsed < 2, elapsed
    record = gw.records(1)[0]
    assert (record.outcome, record.status_code) == ("error", 200)
    assert record.usage is not None and record.usage.estimated


def test_timeouts_are_checked_at_start():
    base = {"providers": {"up": {"type": "openai", "base_url": "http://127.0.0.1:9"}}}
    assert load_config(base).providers["up"].first_token_timeout is None
    assert load_config(base).providers["up"].total_timeout is None
    for key, value, words in [
        ("first_token_timeout", 0, "positive"),
        ("total_timeout", -1.5, "positive"),
        ("total_timeout", "5", "float"),
    ]:
        config = {"providers": {"up": {**base["providers"]["up"], key: value}}}
        with pytest.raises(ConfigError) as info:
            Gateway(config)
        assert f"providers.up.{key}" in str(info.value) and words in str(info.value)
    ok = {"providers": {"up": {**base["providers"]["up"], "first_token_timeout": 2, "total_timeout": 30}}}
    config = Gateway(ok).providers["up"].config
    assert (config.first_token_timeout, config.total_timeout) == (2.0, 30.0)
