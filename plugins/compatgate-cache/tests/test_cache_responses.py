"""``/responses`` (served through chat completions here): identical requests hit, streamed and
not, each form serving the other with spec-valid events; requests that continue or keep state
(``previous_response_id``, ``store: true``) bypass the cache."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from cache_support import TEXT, Served, cache_status, chunks, config, text_of

from compatgate.testing import serve_gateway

ASK: dict[str, Any] = {"model": "gpt-4o", "input": "Say hello.", "temperature": 0, "store": False}


@pytest.fixture
def gw(upstream, backend, tmp_path) -> Iterator[Served]:
    table = config(upstream[1], backend)
    table["gateway"]["response_store_path"] = str(tmp_path / "responses.sqlite3")
    with serve_gateway(table, served=Served) as served:
        yield served


def stream_events(body: bytes) -> list[dict[str, Any]]:
    found = []
    for block in body.split(b"\n\n"):
        lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"data" in lines:
            event = orjson.loads(lines[b"data"])
            assert lines.get(b"event", b"").decode() == event["type"]
            found.append(event)
    return found


def test_identical_responses_hit(gw, upstream, schema):
    client = gw.client()
    first = client.responses.with_raw_response.create(**ASK)
    second = client.responses.with_raw_response.create(**ASK)
    assert (first.headers["x-compatgate-cache"], second.headers["x-compatgate-cache"]) == ("miss", "hit")
    assert len(upstream[0].received) == 1
    schema.validate("Response", orjson.loads(second.content))
    assert second.parse().output_text == first.parse().output_text
    assert gw.records(2)[1].cached and gw.records(2)[1].usage.total_tokens == 21


def test_streamed_responses_hit_with_the_recorded_events(gw, upstream, schema):
    body = {**ASK, "stream": True}
    first, second = gw.post("/responses", body), gw.post("/responses", body)
    assert (cache_status(first), cache_status(second)) == ("miss", "hit")
    # Served through chat, the hit replays the cached chat chunks: the same events and text,
    # under a Response of its own (its own id, stored for previous_response_id).
    events, before = stream_events(second.content), stream_events(first.content)
    assert [e["type"] for e in events] == [e["type"] for e in before]
    assert events[-1]["response"]["id"] != before[-1]["response"]["id"]
    for event in events:
        schema.validate("ResponseStreamEvent", event)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == text_of(chunks(TEXT))
    assert gw.records(2)[1].usage is not None and gw.records(2)[1].usage.total_tokens > 0


def test_each_form_of_a_response_serves_the_other(gw, upstream, schema):
    client = gw.client()
    whole = client.responses.create(**ASK)
    streamed = gw.post("/responses", {**ASK, "stream": True})
    assert cache_status(streamed) == "hit"
    events = stream_events(streamed.content)
    for event in events:
        schema.validate("ResponseStreamEvent", event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == whole.output_text
    with client.responses.stream(**{k: v for k, v in ASK.items() if k != "stream"}) as sdk_stream:
        assert sdk_stream.get_final_response().output_text == whole.output_text  # the SDK reads it
    other = {**ASK, "input": "Say hello again."}
    gw.post("/responses", {**other, "stream": True})
    hit = gw.post("/responses", other)
    assert cache_status(hit) == "hit"
    schema.validate("Response", hit.json())
    assert hit.json()["output"][0]["content"][0]["text"] == text_of(chunks(TEXT))
    assert len(upstream[0].received) == 2


def test_requests_that_continue_or_keep_state_bypass(gw, upstream):
    stored = gw.post("/responses", {**ASK, "store": True})
    assert cache_status(stored) == "bypass"
    follow = {**ASK, "previous_response_id": stored.json()["id"]}
    assert cache_status(gw.post("/responses", follow)) == "bypass"
    assert cache_status(gw.post("/responses", follow)) == "bypass"
    assert len(upstream[0].received) == 3
