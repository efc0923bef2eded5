"""What is never kept: broken, cut, aborted or erroneous answers, refusals, tool calls (unless
configured); and what the client and the configuration decide (Cache-Control, temperature,
per-model settings)."""

from __future__ import annotations

import httpx2
import pytest
from cache_support import REFUSAL, TEXT, TOOLS, answering, cache_status

from compatgate.testing import FakeUpstream

BASE = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}
STREAM = {**BASE, "stream": True}


def test_a_stream_cut_midway_is_not_stored(make_gateway, upstream):
    gw = make_gateway()
    answering(upstream[0], TEXT[: len(TEXT) // 2].rsplit(b"\n\n", 1)[0] + b"\n\n", then="reset")
    broken = gw.chat(STREAM)
    assert broken.status_code == 200 and b"[DONE]" not in broken.content and b'"error"' in broken.content
    assert gw.records(1)[0].outcome == "error"
    answering(upstream[0])
    assert cache_status(gw.chat(STREAM)) == "miss"  # the broken one was not kept
    assert cache_status(gw.chat(STREAM)) == "hit"
    assert len(upstream[0].received) == 2


def test_a_stream_without_its_finish_is_not_stored(make_gateway, upstream):
    gw = make_gateway()
    recorded = [event for event in TEXT.split(b"\n\n") if b'"finish_reason":"stop"' not in event]
    answering(upstream[0], b"\n\n".join(recorded))
    assert b"[DONE]" not in gw.chat(STREAM).content
    answering(upstream[0])
    assert cache_status(gw.chat(STREAM)) == "miss"


def test_a_stream_the_client_leaves_is_not_stored(make_gateway, upstream):
    gw = make_gateway()
    answering(upstream[0], delay=0.05)
    headers = {"authorization": f"Bearer {gw.key}"}
    with httpx2.stream("POST", f"{gw.url}/chat/completions", json={"model": "gpt-4o", **STREAM},
                       headers=headers, timeout=10) as response:  # fmt: skip
        assert cache_status(response) == "miss"
        next(response.iter_bytes())  # the first chunk, then hang up
    assert upstream[0].hung_up.wait(5)
    assert gw.records(1)[0].outcome == "aborted"
    answering(upstream[0])
    assert cache_status(gw.chat(STREAM)) == "miss"


def test_errors_are_never_stored(make_gateway, upstream):
    gw = make_gateway()
    upstream[0].handler = FakeUpstream.json_reply({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
    first = gw.chat(BASE)
    assert first.status_code == 503 and cache_status(first) == "miss"
    second = gw.chat(BASE)
    assert second.status_code == 503 and cache_status(second) == "miss"
    assert len(upstream[0].received) == 2


@pytest.mark.parametrize("recording", [REFUSAL, TOOLS], ids=["refusal", "tool call"])
def test_refusals_and_tool_calls_are_not_stored(make_gateway, upstream, recording):
    gw = make_gateway()
    answering(upstream[0], recording)
    gw.chat(STREAM)
    assert cache_status(gw.chat(STREAM)) == "miss"


def test_tool_calls_are_stored_when_configured(make_gateway, upstream, schema):
    gw = make_gateway({"models": {"gpt-4o": {"tool_calls": True}}})
    answering(upstream[0], TOOLS)
    gw.chat(STREAM)
    hit = gw.chat(BASE)
    assert cache_status(hit) == "hit"
    message = hit.json()["choices"][0]["message"]
    schema.validate("CreateChatCompletionResponse", hit.json())
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert message["tool_calls"][0]["function"]["arguments"].startswith("{")


def test_cache_control_no_cache_skips_the_lookup_and_no_store_the_storing(make_gateway, upstream):
    gw = make_gateway()
    assert cache_status(gw.chat(BASE, **{"cache-control": "no-store"})) == "miss"
    assert cache_status(gw.chat(BASE)) == "miss"  # the no-store answer was not kept
    assert cache_status(gw.chat(BASE)) == "hit"
    assert cache_status(gw.chat(BASE, **{"cache-control": "no-cache"})) == "bypass"
    assert cache_status(gw.chat(BASE, **{"cache-control": "No-Cache, no-store"})) == "bypass"
    assert len(upstream[0].received) == 4
    assert [r.cache for r in gw.records(5)] == ["miss", "miss", "hit", "bypass", "bypass"]


def test_only_temperature_zero_is_cached_by_default(make_gateway, upstream):
    gw = make_gateway({"models": {"gpt-4o-mini": {"when": "always"}, "gpt-3.5*": {"enabled": False}}})
    sampled = {"messages": BASE["messages"]}
    assert cache_status(gw.chat(sampled)) == "bypass"
    assert cache_status(gw.chat({**sampled, "temperature": 0.7})) == "bypass"
    assert cache_status(gw.chat({**sampled, "model": "gpt-4o-mini"})) == "miss"
    assert cache_status(gw.chat({**sampled, "model": "gpt-4o-mini"})) == "hit"  # when = "always"
    prompt = {"model": "gpt-3.5-turbo-instruct", "prompt": "It was", "temperature": 0}
    assert cache_status(gw.post("/completions", prompt)) == "bypass"  # a glob turned it off
    assert cache_status(gw.post("/completions", prompt)) == "bypass"


def test_a_short_ttl_expires(make_gateway, upstream):
    import time

    gw = make_gateway({"ttl_seconds": 0.3})
    gw.chat(BASE)
    assert cache_status(gw.chat(BASE)) == "hit"
    time.sleep(0.5)
    assert cache_status(gw.chat(BASE)) == "miss"


def test_unconfigured_the_plugin_does_nothing(upstream):
    from cache_support import Served, config

    from compatgate.testing import serve_gateway

    with serve_gateway(config(upstream[1], None), served=Served) as gw:
        assert gw.chat(BASE).status_code == 200
        assert gw.chat(BASE).headers.get("x-compatgate-cache") is None
        assert len(upstream[0].received) == 2
        assert gw.records(2)[1].cache is None
