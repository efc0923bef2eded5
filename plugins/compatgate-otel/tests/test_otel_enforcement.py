"""Issue 14 defects 7 and 11 for tracing: no upstream key in a span's status or attributes, and
the client's ``baggage`` and ``tracestate`` stay at the gateway unless the operator opts in.

Before the operation table (commit 1ba4be6) the plugin injected every configured propagator
upstream (the client's baggage, which may carry user ids or tokens, went to the provider), and
a span's status carried an upstream's error text from a stream unscrubbed.
"""

from __future__ import annotations

import openai
import orjson
import pytest
from otel_support import (
    MESSAGES,
    TRACE_ID,
    TRACEPARENT,
    UPSTREAM_KEY,
    chat_answer,
    chat_stream,
    finished_spans,
)

TRACED = {"tracer_provider": "otel_support:tracer_provider"}
BAGGAGE = "user.id=alice,session=secret-session-token"
TRACESTATE = "vendor=opaque-client-state"


@pytest.mark.parametrize("forward", [None, False, True])
def test_client_baggage_and_tracestate_are_forwarded_only_when_configured(make_gateway, upstream, forward):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    table = TRACED if forward is None else {**TRACED, "forward_client_context": forward}
    gw = make_gateway(table)
    gw.client(traceparent=TRACEPARENT, baggage=BAGGAGE, tracestate=TRACESTATE).chat.completions.create(
        model="gpt-4o", messages=MESSAGES)
    finished_spans(1)
    headers = fake.received[-1].headers
    assert int(headers["traceparent"].split("-")[1], 16) == TRACE_ID  # the trace goes on either way
    if forward:
        assert "user.id=alice" in headers.get("baggage", "")
    else:
        assert "baggage" not in headers and "tracestate" not in headers


def _texts(spans) -> str:
    parts = []
    for span in spans:
        parts += [span.name, span.status.description or "", repr(dict(span.attributes or {}))]
        parts += [event.name + repr(dict(event.attributes or {})) for event in span.events]
    return "\n".join(parts)


def test_no_upstream_key_in_span_statuses_of_an_http_error(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply({"error": {"message": f"bad key {UPSTREAM_KEY}", "type": "server_error"}},
                                   status=500)
    gw = make_gateway(TRACED)
    with pytest.raises(openai.InternalServerError):
        gw.client(traceparent=TRACEPARENT).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    spans = finished_spans(1)
    assert any(s.status.description for s in spans)
    assert UPSTREAM_KEY not in _texts(spans)


def test_no_upstream_key_in_span_statuses_of_a_stream_error(make_gateway, upstream):
    fake, _ = upstream
    error = b"data: " + orjson.dumps({"error": {"message": f"broke, key {UPSTREAM_KEY}", "type": "server_error"}})
    fake.handler = fake.sse_reply(chat_stream(["a", "b"], done=False) + error + b"\n\n")
    gw = make_gateway(TRACED)
    stream = gw.client(traceparent=TRACEPARENT).chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                                       stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    spans = finished_spans(1)
    assert "***" in _texts(spans)
    assert UPSTREAM_KEY not in _texts(spans)
