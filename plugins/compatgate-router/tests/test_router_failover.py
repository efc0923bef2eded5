"""Retries and fallbacks against a fault-injecting upstream: failover, the first-byte rule, the
attempt and time budgets, client errors, Retry-After, fallback reasons, and what the client and
record_usage see of the attempts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest

from router_support import (
    CLIENT_KEY,
    MESSAGES,
    Served,
    chunk,
    closed_port,
    error_reply,
    group,
    ok_reply,
    raw_stream,
    sequence,
    slow,
    slow_first_chunk,
    sse,
)

from compatgate.testing import FakeUpstream, OpenAISchema

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}
Upstreams = dict[str, tuple[FakeUpstream, str]]


def router(**groups: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"strategy": "ordered", "retry": dict(FAST), "groups": groups}
    return table


def models_sent(fake: FakeUpstream) -> list[str]:
    return [received.json["model"] for received in fake.received]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_failover_from_a_dead_primary_to_the_backup(make_gateway: Callable[..., Served], upstreams: Upstreams,
                                                    stream: bool):
    backup, backup_url = upstreams["backup"]
    backup.handler = backup.sse_reply(sse(["Hel", "lo"])) if stream else ok_reply("From the backup.")
    urls = {"primary": f"http://127.0.0.1:{closed_port()}", "backup": backup_url}
    gw = make_gateway(router(**{"gpt-4o": group("primary", "backup")}), urls=urls)
    if stream:
        status, headers, payloads = raw_stream(gw.url, "gpt-4o")
        assert status == 200 and payloads[-1] == b"[DONE]"
        text = "".join(orjson.loads(p)["choices"][0]["delta"].get("content") or "" for p in payloads[:-1])
        assert text == "Hello"
    else:
        response = gw.chat()
        headers = response.headers
        assert response.parse().choices[0].message.content == "From the backup."
    assert headers["x-compatgate-provider"] == "backup" and headers["x-compatgate-attempts"] == "2"
    assert models_sent(backup) == ["backup-model"]
    record = gw.records(1)[0]
    assert (record.outcome, record.provider, record.upstream_model) == ("ok", "backup", "backup-model")
    first, second = record.attempts
    assert (first.provider, first.upstream_model, first.status_code) == ("primary", "primary-model", 502)
    assert "could not be reached" in first.error
    assert (second.provider, second.status_code, second.error) == ("backup", 200, None)


def _fails_before_first_chunk(how: str, fake: FakeUpstream) -> Callable[..., Any]:
    return {
        "reset": lambda: fake.sse_reply(b"", then="reset"),
        "empty": lambda: fake.sse_reply(b"data: [DONE]\n\n"),
        "error-event": lambda: fake.sse_reply(b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'),
        "500": lambda: error_reply(500, "primary is down"),
        "slow-first-token": lambda: slow_first_chunk(fake, 3.0, sse(["late"])),
    }[how]()


@pytest.mark.parametrize("how", ["reset", "empty", "error-event", "500", "slow-first-token"])
def test_a_stream_failing_before_its_first_chunk_is_retried(make_gateway: Callable[..., Served],
                                                            upstreams: Upstreams, how: str):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = _fails_before_first_chunk(how, primary)
    backup.handler = backup.sse_reply(sse(["All ", "good."]))
    gw = make_gateway(router(**{"gpt-4o": group("primary", "backup")}), first_token_timeout=0.4)
    started = time.monotonic()
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                                 stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "All good." and time.monotonic() - started < 3
    assert len(primary.received) == 1 and len(backup.received) == 1
    record = gw.records(1)[0]
    assert record.outcome == "ok" and record.provider == "backup"
    failed, answered = record.attempts
    assert failed.provider == "primary" and failed.error and failed.status_code >= 500
    assert (answered.provider, answered.error) == ("backup", None)


def test_a_stream_failing_everywhere_before_its_first_chunk_is_an_http_error(
        make_gateway: Callable[..., Served], upstreams: Upstreams):
    for name in ("primary", "backup"):
        fake = upstreams[name][0]
        fake.handler = fake.sse_reply(b"", then="reset")
    gw = make_gateway(router(**{"gpt-4o": group("primary", "backup")}))
    status, headers, payloads = raw_stream(gw.url, "gpt-4o")
    assert status == 502 and headers["x-compatgate-attempts"] == "3"
    assert not any(p == b"[DONE]" for p in payloads)


@pytest.mark.parametrize("how", ["reset", "stall", "truncated"])
def test_no_retry_after_bytes_were_streamed(make_gateway: Callable[..., Served], upstreams: Upstreams,
                                           openai_schema: OpenAISchema, how: str):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    head = chunk("Hel") + chunk("lo")
    primary.handler = {
        "reset": lambda: primary.sse_reply(head, then="reset"),
        "stall": lambda: primary.sse_reply(head, then="stall", stall=1.5),  # idle past read_timeout
        "truncated": lambda: primary.sse_reply(head + b"data: [DONE]\n\n"),  # no finish_reason
    }[how]()
    backup.handler = backup.sse_reply(sse(["never"]))
    gw = make_gateway(router(**{"gpt-4o": group("primary", "backup")}), read_timeout=0.5)
    status, headers, payloads = raw_stream(gw.url, "gpt-4o")
    assert status == 200 and headers["x-compatgate-provider"] == "primary"
    assert headers["x-compatgate-attempts"] == "1"
    assert [orjson.loads(p)["choices"][0]["delta"]["content"] for p in payloads[:2]] == ["Hel", "lo"]
    openai_schema.validate("ErrorResponse", orjson.loads(payloads[-1]))
    error = orjson.loads(payloads[-1])["error"]
    assert len(payloads) == 3 and error["code"] == "upstream_stream_error"
    assert backup.received == [], "a stream that already sent bytes was retried"
    record = gw.records(1)[0]
    assert (record.outcome, record.status_code, len(record.attempts)) == ("error", 200, 1)


def test_retry_budget_exhausted_returns_the_last_upstream_error(make_gateway: Callable[..., Served],
                                                                upstreams: Upstreams, openai_schema: OpenAISchema):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    sequence(primary, error_reply(500, "primary failed once"), error_reply(503, "primary failed twice"))
    backup.handler = error_reply(502, "backup failed")
    table = router(**{"gpt-4o": group("primary", "backup")})
    table["retry"]["max_attempts"] = 3
    gw = make_gateway(table)
    with pytest.raises(openai.APIStatusError) as info:
        gw.chat()
    error = info.value
    openai_schema.validate("ErrorResponse", error.response.json())
    assert error.status_code == 503 and error.response.json()["error"]["message"] == "primary failed twice"
    assert error.response.json()["error"]["type"] == "server_error"
    assert error.response.headers["x-compatgate-attempts"] == "3"
    assert error.response.headers["x-compatgate-provider"] == "primary"
    assert (len(primary.received), len(backup.received)) == (2, 1)
    record = gw.records(1)[0]
    assert [(a.provider, a.status_code) for a in record.attempts] == [("primary", 500), ("backup", 502),
                                                                       ("primary", 503)]
    assert record.status_code == 503 and record.error == "primary failed twice"


def test_one_deployment_is_retried_with_backoff(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary = upstreams["primary"][0]
    sequence(primary, error_reply(503), error_reply(500), ok_reply("Third time."))
    table = router(**{"gpt-4o": group("primary")})
    table["retry"] = {"max_attempts": 3, "backoff_base": 0.2, "backoff_max": 1.0}
    gw = make_gateway(table)
    started = time.monotonic()
    response = gw.chat()
    elapsed = time.monotonic() - started
    assert response.parse().choices[0].message.content == "Third time."
    assert response.headers["x-compatgate-attempts"] == "3"
    # Waits of 0.2 and 0.4 s, each scaled by a random factor in [0.5, 1]: 0.3 to 0.6 s.
    assert 0.3 <= elapsed < 2.0, elapsed
    assert [a.status_code for a in gw.records(1)[0].attempts] == [503, 500, 200]


def test_the_time_budget_bounds_a_request(make_gateway: Callable[..., Served], upstreams: Upstreams,
                                          openai_schema: OpenAISchema):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = slow(primary, 5.0, ok_reply())
    backup.handler = slow(backup, 5.0, ok_reply())
    table = router(**{"gpt-4o": group("primary", "backup")})
    table["retry"]["max_seconds"] = 0.5
    gw = make_gateway(table)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        gw.chat()
    assert time.monotonic() - started < 2
    openai_schema.validate("ErrorResponse", info.value.response.json())
    body = info.value.response.json()["error"]
    assert info.value.status_code == 504 and body["type"] == "timeout_error"
    assert "max_seconds" in body["message"]
    assert len(primary.received) == 1 and backup.received == []
    (attempt,) = gw.records(1)[0].attempts
    assert attempt.status_code == 504 and attempt.provider == "primary"


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_never_retried(make_gateway: Callable[..., Served], upstreams: Upstreams, status: int):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(status, "your request is wrong", code="invalid_value")
    backup.handler = ok_reply()
    gw = make_gateway(router(**{"gpt-4o": group("primary", "backup", fallbacks=["plain-third"])}))
    with pytest.raises(openai.APIStatusError) as info:
        gw.chat()
    assert info.value.status_code == status
    assert info.value.response.json()["error"]["message"] == "your request is wrong"
    assert info.value.response.headers["x-compatgate-attempts"] == "1"
    assert len(primary.received) == 1 and backup.received == [] and upstreams["third"][0].received == []


def test_a_short_retry_after_is_honoured(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary = upstreams["primary"][0]
    sequence(primary, error_reply(429, "slow down", retry_after="1"), ok_reply("Later."))
    gw = make_gateway(router(**{"gpt-4o": group("primary")}))
    started = time.monotonic()
    response = gw.chat()
    elapsed = time.monotonic() - started
    assert response.parse().choices[0].message.content == "Later."
    assert 0.95 <= elapsed < 3, elapsed
    assert response.headers["x-compatgate-attempts"] == "2"


def test_a_long_retry_after_is_not_waited_for(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(429, "come back in a minute", retry_after="60")
    backup.handler = ok_reply("Backup.")
    gw = make_gateway(router(**{"gpt-4o": group("primary"), "duo": group("primary", "backup")}))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        gw.chat()
    assert time.monotonic() - started < 1
    assert info.value.response.headers["retry-after"] == "60"  # the upstream's, for the client
    assert len(primary.received) == 1
    # Another deployment is tried at once.
    started = time.monotonic()
    assert gw.chat("duo").parse().choices[0].message.content == "Backup."
    assert time.monotonic() - started < 1 and len(primary.received) == 2


def test_context_length_exceeded_falls_back_without_retrying(make_gateway: Callable[..., Served],
                                                           upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(400, "This model's maximum context length is 8192 tokens.",
                                  code="context_length_exceeded")
    backup.handler = ok_reply("Long context.")
    gw = make_gateway(router(small=group("primary", fallbacks=["large"]), large=group("backup"),
                             strict=group("primary", fallbacks=["large"], fallback_on=["5xx"])))
    response = gw.chat("small")
    assert response.parse().choices[0].message.content == "Long context."
    assert response.headers["x-compatgate-provider"] == "backup"
    assert len(primary.received) == 1 and models_sent(backup) == ["backup-model"]
    assert gw.records(1)[0].attempts[0].status_code == 400
    with pytest.raises(openai.BadRequestError) as info:
        gw.chat("strict")
    assert info.value.code == "context_length_exceeded" and len(backup.received) == 1


def test_fallbacks_follow_only_their_reasons(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(429, "busy")
    backup.handler = ok_reply("Fallback.")
    table = router(**{"gpt-4o": group("primary", fallbacks=["plain-backup"], fallback_on=["5xx"])})
    table["retry"]["max_attempts"] = 2
    gw = make_gateway(table)
    with pytest.raises(openai.RateLimitError):
        gw.chat()
    assert len(primary.received) == 2 and backup.received == []  # retried, never fell back
    primary.handler = error_reply(500, "broken")
    response = gw.chat()
    assert response.parse().choices[0].message.content == "Fallback."
    assert models_sent(backup) == ["plain-backup"]  # the [[models]] entry's upstream model
    assert response.headers["x-compatgate-attempts"] == "2"


def test_aliases_wildcards_and_models(make_gateway: Callable[..., Served], upstreams: Upstreams):
    for name in ("primary", "backup", "third"):
        upstreams[name][0].handler = ok_reply(f"From {name}.")
    table = router(**{"gpt-4o": group("primary", owned_by="team-a")})
    table["aliases"] = {"gpt-4o-latest": "gpt-4o", "fast": "plain-backup", "sonnet": "claude-3-5-sonnet"}
    table["routes"] = [{"match": "claude-*", "provider": "third"}]
    gw = make_gateway(table)
    assert gw.chat("gpt-4o-latest").parse().choices[0].message.content == "From primary."
    assert gw.chat("fast").parse().choices[0].message.content == "From backup."
    assert gw.chat("claude-3-haiku").parse().choices[0].message.content == "From third."
    assert gw.chat("sonnet").headers["x-compatgate-provider"] == "third"
    assert models_sent(upstreams["third"][0]) == ["claude-3-haiku", "claude-3-5-sonnet"]
    assert models_sent(upstreams["backup"][0]) == ["plain-backup"]
    with pytest.raises(openai.NotFoundError):
        gw.chat("claude")
    plain = gw.chat("plain-primary")  # [[models]] requested directly: the built-in routing
    assert "x-compatgate-provider" not in plain.headers
    models = {m.id: m for m in gw.client().models.list()}
    assert {"gpt-4o", "gpt-4o-latest", "fast", "sonnet", "plain-primary"} <= set(models)
    assert models["gpt-4o"].owned_by == "team-a" and models["fast"].owned_by == "backup"


def test_embeddings_go_through_groups(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(500)
    embedding = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                 "model": "e", "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    backup.handler = FakeUpstream.json_reply(embedding)
    gw = make_gateway(router(embed=group("primary", "backup")))
    result = gw.client().embeddings.with_raw_response.create(model="embed", input="hi")
    # The SDK asks for base64: the gateway encodes the upstream's floats as OpenAI does (float32).
    assert result.parse().data[0].embedding == pytest.approx([0.1, 0.2], rel=1e-6)
    assert result.headers["x-compatgate-attempts"] == "2"
    assert backup.received[-1].path == "/v1/embeddings"


def test_a_client_leaving_mid_stream_cancels_the_upstream(make_gateway: Callable[..., Served],
                                                          upstreams: Upstreams):
    primary = upstreams["primary"][0]
    primary.handler = primary.sse_reply(chunk("Hel"), then="stall", stall=3)
    gw = make_gateway(router(**{"gpt-4o": group("primary", "backup")}))
    with httpx2.stream("POST", f"{gw.url}/chat/completions", timeout=10,
                       headers={"authorization": f"Bearer {CLIENT_KEY}"},
                       json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}) as response:
        assert next(response.iter_lines()).startswith("data: ")
    assert primary.hung_up.wait(3), "the upstream of an abandoned stream was never closed"
    record = gw.records(1)[0]
    assert record.outcome == "aborted" and record.provider == "primary"
    assert gw.router.stats.in_flight == {} and upstreams["backup"][0].received == []
