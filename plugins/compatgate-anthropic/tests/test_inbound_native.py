"""The native path: `AnthropicProvider.messages` and `messages_count_tokens` against a fake Anthropic
upstream replaying the real recordings. The client's body, version and betas reach the upstream
(with the provider's key, never the client's); the upstream's bytes reach the client unchanged,
cut only at event boundaries; usage and generated characters are read from the events; a broken
stream ends with an Anthropic error event and raises."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from anthropic_support import (
    PLUGINS,
    RECORDINGS,
    UPSTREAM_KEY,
    block_start,
    delta,
    exact_reply,
    gateway_config,
    message_start,
    recorded_events,
    recording,
    sse,
)
from compatgate_anthropic.inbound import error_body
from anthropic_inbound_support import parse_events
from starlette.requests import Request

from compatgate import (
    Gateway,
    GatewayError,
    Reply,
    RequestContext,
    UpstreamError,
    UpstreamStreamError,
)
from compatgate.testing import FakeUpstream, fake_upstream

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}],
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}


@pytest.fixture
def native() -> Iterator[tuple[FakeUpstream, Gateway]]:
    with fake_upstream() as (fake, url):
        config = gateway_config(url, provider={"headers": {"anthropic-beta": "configured-beta"}})
        yield fake, Gateway(config, plugins=PLUGINS)


def context(gateway: Gateway, *, headers: dict[str, str] | None = None, query: str = "",
            betas: tuple[str, ...] = ()) -> RequestContext:
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    raw += [(b"anthropic-beta", beta.encode()) for beta in betas]
    raw.append((b"x-api-key", b"sk-client-SECRET"))
    scope = {"type": "http", "method": "POST", "path": "/messages", "query_string": query.encode(), "headers": raw}
    return RequestContext(gateway, "req_native_1", "messages", Request(scope))


def call(gateway: Gateway, method: str, body: dict[str, Any], ctx: RequestContext | None = None) -> Any:
    """Run the provider method; for a stream, every piece it yields and how it ended."""
    provider = gateway.providers["claude"]
    ctx = ctx or context(gateway)

    async def run() -> Any:
        try:
            reply = await getattr(provider, method)(ctx, body)
            if isinstance(reply, Reply):
                return reply
            pieces, failure = [], None
            try:
                async for piece in reply.chunks:
                    pieces.append(piece)
            except GatewayError as exc:
                failure = exc
            return reply, pieces, failure
        finally:
            await provider.aclose()

    return asyncio.run(run())


def expected_usage(content: bytes) -> tuple[int, int, int, int]:
    counts: dict[str, int] = {}
    for event in recorded_events(content):  # message_start, then message_delta's cumulative counts
        if event["type"] not in ("message_start", "message_delta"):
            continue  # (unknown events may carry a usage: it counts for nothing)
        usage = event.get("usage") or event.get("message", {}).get("usage") or {}
        counts.update({k: v for k, v in usage.items() if isinstance(v, int)})
    read, written = counts.get("cache_read_input_tokens", 0), counts.get("cache_creation_input_tokens", 0)
    return counts["input_tokens"] + read + written, counts["output_tokens"], read, written


@pytest.mark.parametrize("piece", [0, 7])
@pytest.mark.parametrize("name", RECORDINGS)
def test_recorded_streams_are_relayed_unchanged(name: str, piece: int, native):
    fake, gateway = native
    content = recording(name)
    fake.handler = exact_reply(content, piece=piece)
    reply, pieces, failure = call(gateway, "messages", {**BODY, "stream": True})
    assert failure is None
    relayed = b"".join(pieces)
    assert relayed == content if content.endswith(b"\n\n") else relayed == content + b"\n\n"
    for chunk in pieces:  # whole events only, whatever the network reads
        assert chunk.endswith((b"\n\n", b"\r\n\r\n")), chunk[-40:]
    prompt, output, read, written = expected_usage(content)
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        prompt, output, read, written)
    deltas = [e["delta"] for e in recorded_events(content) if e["type"] == "content_block_delta"]
    assert reply.generated == sum(len(d.get("text", "") + d.get("thinking", "") + d.get("partial_json", "")) for d in deltas)
    assert reply.media_type == "text/event-stream; charset=utf-8"


def test_what_goes_upstream(native):
    fake, gateway = native
    fake.handler = fake.json_reply({"id": "msg_1", "type": "message"})
    ctx = context(gateway, headers={"anthropic-version": "2099-01-01"}, query="beta=true",
                  betas=("interleaved-thinking-2025-05-14,configured-beta", "context-management-2025-06-27"))
    call(gateway, "messages", BODY, ctx)
    received = fake.received[-1]
    assert (received.path, received.query) == ("/v1/messages", "beta=true")
    assert received.json == BODY
    assert received.headers["x-api-key"] == UPSTREAM_KEY and "authorization" not in received.headers
    assert received.headers["anthropic-version"] == "2099-01-01"
    assert received.headers["anthropic-beta"] == (
        "configured-beta,interleaved-thinking-2025-05-14,context-management-2025-06-27")
    assert "sk-client-SECRET" not in str(received.headers)


def test_anthropic_rate_limit_headers_are_kept_as_they_are(native):
    fake, gateway = native
    limits = {"anthropic-ratelimit-unified-status": "allowed", "anthropic-ratelimit-tokens-remaining": "9000"}
    fake.handler = fake.json_reply({"id": "msg_1", "type": "message"}, headers=limits)
    ctx = context(gateway)
    call(gateway, "messages", BODY, ctx)
    assert {k: v for k, v in ctx.response_headers.items() if k.startswith("anthropic-")} == limits
    assert not any(k.startswith("x-ratelimit") for k in ctx.response_headers)


def test_the_provider_version_when_the_client_sends_none(native):
    fake, gateway = native
    fake.handler = fake.json_reply({"input_tokens": 12})
    reply = call(gateway, "messages_count_tokens", {k: v for k, v in BODY.items() if k != "max_tokens"})
    received = fake.received[-1]
    assert (received.path, received.query) == ("/v1/messages/count_tokens", "")
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.headers["anthropic-beta"] == "configured-beta"
    assert reply.data == {"input_tokens": 12} and reply.raw == b'{"input_tokens":12}'


def test_a_complete_answer_is_relayed_as_its_bytes(native):
    fake, gateway = native
    answer = b'{"id":"msg_2","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],' \
             b'"model":"claude-sonnet-4-5","stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":2}}'
    fake.handler = fake.json_reply(answer)
    reply = call(gateway, "messages", BODY)
    assert isinstance(reply, Reply) and reply.raw == answer and reply.data["id"] == "msg_2"


@pytest.mark.parametrize(("status", "error_type", "client_status"), [
    (400, "invalid_request_error", 400), (429, "rate_limit_error", 429), (529, "overloaded_error", 529),
    (500, "api_error", 500)])
def test_upstream_errors_keep_their_status_and_type(status, error_type, client_status, native):
    fake, gateway = native
    fake.handler = fake.json_reply({"type": "error", "error": {"type": error_type, "message": "Upstream says no."}},
                                   status=status, headers={"retry-after": "3"})
    with pytest.raises(UpstreamError) as raised:
        call(gateway, "messages", {**BODY, "stream": True})
    code, body, headers = error_body(raised.value)
    assert (code, orjson.loads(body)["error"]) == (client_status, {"type": error_type, "message": "Upstream says no."})
    assert headers["retry-after"] == "3"


@pytest.mark.parametrize("then", ["end", "reset"])
def test_a_stream_cut_short_ends_with_an_error_event(then: str, native, anthropic_schema):
    fake, gateway = native
    content = recording("basic_response.txt")
    cut = content[: content.index(b"event: message_delta")] + b'event: content_block_delta\ndata: {"type":"content_bl'
    fake.handler = exact_reply(cut, then=then)
    reply, pieces, failure = call(gateway, "messages", {**BODY, "stream": True})
    assert isinstance(failure, UpstreamStreamError)
    relayed = b"".join(pieces)
    assert relayed.startswith(content[: content.index(b"event: message_delta")])
    events = parse_events(relayed[relayed.index(b"event: error"):])
    assert events[0][0] == "error" and events[0][1]["error"]["type"] == "api_error"
    anthropic_schema.validate("ErrorResponse", events[0][1])
    assert b"event: message_stop" not in relayed and b"content_bl\n" not in relayed
    assert reply.usage.prompt_tokens == 11  # what message_start said, for billing


def test_an_upstream_error_event_is_relayed_then_raised(native):
    fake, gateway = native
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    content = sse(message_start(), block_start(0, {"type": "text", "text": ""}),
                  delta(0, type="text_delta", text="Hel"), error)
    fake.handler = exact_reply(content)
    _, pieces, failure = call(gateway, "messages", {**BODY, "stream": True})
    assert b"".join(pieces) == content  # the upstream's own error event, and nothing added
    assert isinstance(failure, UpstreamStreamError) and failure.code == "overloaded_error"
    assert error_body(failure)[0] == 529


def test_an_event_that_is_not_json_ends_the_stream(native):
    fake, gateway = native
    content = sse(message_start()) + b"event: content_block_start\ndata: {not json}\n\n"
    fake.handler = exact_reply(content)
    _, pieces, failure = call(gateway, "messages", {**BODY, "stream": True})
    assert isinstance(failure, UpstreamStreamError)
    assert parse_events(b"".join(pieces).split(b"{not json}\n\n")[1])[0][0] == "error"
