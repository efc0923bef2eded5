"""Spans of real requests through the official SDK, checked in an in-memory exporter: names,
GenAI attributes, parent/child links, and the trace context propagated in and out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import pytest
from compatgate_otel import Tracing
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otel_support import (
    CALLER_SPAN_ID,
    CLIENT_KEY,
    EXPORTER,
    MESSAGES,
    PROMPT,
    PROVIDER,
    TRACE_ID,
    TRACEPARENT,
    UPSTREAM_KEY,
    chat_answer,
    chat_stream,
    finished_spans,
    gateway_config,
    one_request,
)
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from compatgate import (
    ConfigError,
    Gateway,
    HTTPProvider,
    RateLimitError,
    Reply,
    RequestContext,
    UpstreamError,
    hookimpl,
)
from compatgate.testing import serve

TRACED = {"tracer_provider": "otel_support:tracer_provider"}


def traceparent(header: str) -> tuple[int, int]:
    """(trace id, parent span id) of a ``traceparent`` header."""
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    return int(trace_id, 16), int(span_id, 16)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def test_chat_spans_follow_the_genai_conventions(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    gw = make_gateway(TRACED)
    raw = gw.client(traceparent=TRACEPARENT).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, temperature=0.2, max_tokens=64, seed=3, n=2, stop=["END"],
    )
    assert raw.parse().choices[0].message.content == "hi"
    server, (attempt,) = one_request(finished_spans(1))

    assert (server.name, server.kind) == ("chat gpt-4o", SpanKind.SERVER)
    assert (attempt.name, attempt.kind) == ("chat gpt-4o-2024-08-06", SpanKind.CLIENT)
    # The caller's trace continues: same trace id, the request span under the caller's span.
    assert server.context.trace_id == attempt.context.trace_id == TRACE_ID
    assert server.parent is not None and server.parent.span_id == CALLER_SPAN_ID and server.parent.is_remote
    assert attempt.parent is not None and attempt.parent.span_id == span_id(server)
    # ... and goes upstream with the attempt span as parent.
    sent = fake.received[-1].headers
    assert traceparent(sent["traceparent"]) == (TRACE_ID, span_id(attempt))

    a = server.attributes  # the gateway's view of the request
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o" and a["gen_ai.request.stream"] is False
    assert a["http.response.status_code"] == 200 and a["compatgate.outcome"] == "ok"
    assert a["compatgate.request_id"] == raw.headers["x-request-id"] == sent["x-request-id"]
    assert a["compatgate.key_id"] == "static:0" and a["compatgate.provider"] == "up"
    assert a["compatgate.upstream_model"] == "gpt-4o-2024-08-06" and a["compatgate.attempts"] == 1
    assert "error.type" not in a and server.status.status_code is StatusCode.UNSET
    # The answer is described once, on the inference span that produced it (no double count).
    assert not any(k.startswith(("gen_ai.usage.", "gen_ai.response.", "gen_ai.request.temperature")) for k in a)

    b = attempt.attributes  # the inference span
    assert b["gen_ai.operation.name"] == "chat" and b["gen_ai.provider.name"] == "openai"
    assert b["gen_ai.request.model"] == "gpt-4o-2024-08-06"
    assert b["gen_ai.request.temperature"] == 0.2 and b["gen_ai.request.max_tokens"] == 64
    assert b["gen_ai.request.seed"] == 3 and b["gen_ai.request.choice.count"] == 2
    assert b["gen_ai.request.stop_sequences"] == ("END",)
    assert b["gen_ai.response.model"] == "gpt-4o-2024-08-06" and b["gen_ai.response.id"] == "chatcmpl-otel-1"
    assert b["gen_ai.response.finish_reasons"] == ("stop", "length")
    assert (b["gen_ai.usage.input_tokens"], b["gen_ai.usage.output_tokens"]) == (12, 5)
    assert b["gen_ai.usage.cache_read.input_tokens"] == 8 and b["gen_ai.usage.reasoning.output_tokens"] == 1
    assert b["server.address"] == "127.0.0.1" and b["server.port"] == int(fake_port(gw))
    assert b["http.response.status_code"] == 200 and b["compatgate.attempt.number"] == 1
    assert attempt.status.status_code is StatusCode.UNSET
    assert server.start_time <= attempt.start_time <= attempt.end_time <= server.end_time


def fake_port(gw) -> str:
    return gw.gateway.config.providers["up"].base_url.split(":")[2].split("/")[0]


def test_stream_span_lasts_the_stream_and_gets_its_finish_reasons(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.sse_reply(chat_stream(["a", "b", "c"]), delay=0.05)
    gw = make_gateway(TRACED)
    chunks = list(gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    server, (attempt,) = one_request(finished_spans(1))
    assert server.parent is None  # no caller trace: a new one
    assert traceparent(fake.received[-1].headers["traceparent"]) == (server.context.trace_id, span_id(attempt))
    b = attempt.attributes
    assert b["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert (b["gen_ai.usage.input_tokens"], b["gen_ai.usage.output_tokens"]) == (9, 3)
    assert b["gen_ai.response.model"] == "gpt-4o-2024-08-06" and b["gen_ai.response.id"] == "chatcmpl-otel-s"
    assert server.attributes["gen_ai.request.stream"] is True
    ttft = server.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft < (server.end_time - server.start_time) / 1e9
    # The attempt that produced the stream lasts until its end (~4 chunks 50 ms apart).
    assert (attempt.end_time - attempt.start_time) / 1e9 >= 0.15


def test_upstream_error(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply({"error": {"message": "boom", "type": "server_error"}}, status=500)
    gw = make_gateway(TRACED)
    with pytest.raises(openai.InternalServerError):
        gw.client(traceparent=TRACEPARENT).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    server, (attempt,) = one_request(finished_spans(1))
    assert attempt.status.status_code is StatusCode.ERROR and attempt.attributes["error.type"] == "500"
    assert attempt.attributes["http.response.status_code"] == 500
    assert server.status.status_code is StatusCode.ERROR and server.attributes["error.type"]
    assert server.attributes["http.response.status_code"] == 500
    assert server.attributes["compatgate.outcome"] == "error"
    assert "gen_ai.usage.input_tokens" not in server.attributes


class Refuser:
    @hookimpl
    def admit_request(self, ctx: RequestContext) -> None:
        raise RateLimitError("Too many requests.", retry_after=1)


def test_refusals_are_one_span_without_error_status(make_gateway):
    gw = make_gateway(TRACED, plugins=(Refuser(),))
    with pytest.raises(openai.AuthenticationError):
        gw.client(key="sk-wrong", traceparent=TRACEPARENT).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    spans = finished_spans(2)
    assert all(s.kind is SpanKind.SERVER for s in spans)
    unauthenticated, limited = sorted(spans, key=lambda s: s.start_time)
    assert unauthenticated.name == "chat"  # the body (and the model) was never read
    assert unauthenticated.context.trace_id == TRACE_ID
    assert unauthenticated.attributes["error.type"] == "invalid_api_key"
    assert limited.name == "chat gpt-4o" and limited.attributes["error.type"] == "rate_limit_exceeded"
    assert limited.attributes["http.response.status_code"] == 429
    for span in spans:  # the client's error: a SERVER span's status stays unset
        assert span.status.status_code is StatusCode.UNSET


class SecondChance(HTTPProvider):
    """Calls the upstream again when the first call fails (any upstream error)."""

    type = "second-chance"

    async def chat_completions(self, ctx: RequestContext, body: dict) -> Reply:
        for final in (False, True):
            try:
                return await self.post_json(ctx, "/chat/completions", body)
            except UpstreamError:
                if final:
                    raise
        raise AssertionError("unreachable")


class SecondChancePlugin:
    register_providers = staticmethod(hookimpl(lambda register: register(SecondChance)))


def test_a_child_span_per_attempt(make_gateway, upstream):
    fake, url = upstream
    replies = iter([fake.json_reply({"error": {"message": "overloaded"}}, status=503),
                    fake.json_reply(chat_answer())])

    async def handler(request, send):
        await next(replies)(request, send)

    fake.handler = handler
    config = gateway_config(url, {**TRACED, "provider_names": {"flaky": "azure.ai.openai"}})
    config["providers"] = {"flaky": {"type": "second-chance", "base_url": f"{url}/v1", "api_key": UPSTREAM_KEY}}
    config["models"] = [{"name": "gpt-4o", "provider": "flaky"}]
    gw = make_gateway(config=config, plugins=(SecondChancePlugin(),))
    gw.client(traceparent=TRACEPARENT).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    server, (failed, ok) = one_request(finished_spans(1))
    for attempt, received in zip((failed, ok), fake.received, strict=True):
        assert attempt.parent.span_id == span_id(server)
        assert traceparent(received.headers["traceparent"]) == (TRACE_ID, span_id(attempt))
        assert attempt.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == "503"
    assert failed.end_time <= ok.start_time  # it ended when its answer came
    assert ok.status.status_code is StatusCode.UNSET and ok.attributes["compatgate.attempt.number"] == 2
    assert server.attributes["compatgate.attempts"] == 2 and server.status.status_code is StatusCode.UNSET
    assert server.attributes["gen_ai.provider.name"] == "azure.ai.openai"


def test_client_abort_mid_stream(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.sse_reply(chat_stream(["one ", "two "], done=False), then="stall", stall=30)
    gw = make_gateway(TRACED)
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert next(iter(stream)).choices[0].delta.content == "one "
    stream.close()
    assert fake.hung_up.wait(5)
    server, (attempt,) = one_request(finished_spans(1))
    assert server.attributes["compatgate.outcome"] == "aborted" and "error.type" not in server.attributes
    assert attempt.attributes["compatgate.usage.estimated"] is True
    assert attempt.attributes["gen_ai.usage.input_tokens"] > 0
    assert attempt.attributes["compatgate.outcome"] == "aborted"
    assert server.status.status_code is StatusCode.UNSET


def test_embeddings(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply({
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    })
    gw = make_gateway(TRACED)
    gw.client().embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    server, (attempt,) = one_request(finished_spans(1))
    assert server.name == attempt.name == "embeddings text-embedding-3-small"
    assert server.attributes["gen_ai.operation.name"] == attempt.attributes["gen_ai.operation.name"] == "embeddings"
    assert attempt.attributes["gen_ai.request.encoding_formats"] == ("float",)
    assert attempt.attributes["gen_ai.usage.input_tokens"] == 2
    assert "gen_ai.response.finish_reasons" not in attempt.attributes


def test_a_provider_without_upstream_calls_puts_the_answer_on_the_request_span(make_gateway):
    """The offline demo provider makes no HTTP call: no attempt span, and the request span
    carries the parameters and the answer."""
    config = {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "providers": {"demo": {"type": "demo"}},
        "models": [{"name": "demo-chat", "provider": "demo"}],
        "plugins": {"otel": TRACED},
    }
    gw = make_gateway(config=config)
    gw.client().chat.completions.create(model="demo-chat", messages=MESSAGES, max_tokens=3)
    (server,) = finished_spans(1)
    a = server.attributes
    assert server.name == "chat demo-chat" and a["gen_ai.provider.name"] == "demo"
    assert a["gen_ai.request.max_tokens"] == 3 and a["gen_ai.response.finish_reasons"] == ("length",)
    assert a["gen_ai.usage.output_tokens"] == 3 and a["gen_ai.usage.input_tokens"] > 0
    assert a["compatgate.attempts"] == 0


def test_extract_and_propagate_can_be_turned_off(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    gw = make_gateway({**TRACED, "extract": False, "propagate": False})
    gw.client(traceparent=TRACEPARENT).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    server, (attempt,) = one_request(finished_spans(1))
    assert server.parent is None and server.context.trace_id != TRACE_ID
    assert "traceparent" not in fake.received[-1].headers
    assert attempt.parent.span_id == span_id(server)


def test_an_instrumented_host_app_is_the_parent(upstream):
    """When the host app already traces the request, the gateway's span goes under its span."""
    fake, url = upstream
    fake.handler = fake.json_reply(chat_answer())
    gateway = Gateway(gateway_config(url, TRACED))
    tracer = PROVIDER.get_tracer("host")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.lifespan():
            yield

    host = Starlette(routes=[Mount("/v1", gateway)], lifespan=lifespan)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await host(scope, receive, send)
            return
        with tracer.start_as_current_span("host request", kind=SpanKind.SERVER):
            await host(scope, receive, send)

    with serve(app) as base:
        client = openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{base}/v1", max_retries=0, timeout=10,
                               default_headers={"traceparent": TRACEPARENT})
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        spans = finished_spans(2)
    outer = next(s for s in spans if s.name == "host request")
    inner = next(s for s in spans if s.name == "chat gpt-4o")
    assert inner.parent.span_id == span_id(outer) and not inner.parent.is_remote


def test_inert_without_its_table(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    gw = make_gateway(None)
    (plugin,) = [p for p in gw.gateway.pm.get_plugins() if isinstance(p, Tracing)]
    assert plugin.tracer is None
    hooks = gw.gateway.pm.hook
    assert not [i for i in hooks.upstream_headers.get_hookimpls() + hooks.record_usage.get_hookimpls()
                if i.plugin is plugin], "an inert instance registers no hook"
    gw.client(traceparent=TRACEPARENT).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "traceparent" not in fake.received[-1].headers
    assert list(EXPORTER.get_finished_spans()) == []


def test_given_twice_traces_once(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    gw = make_gateway({}, plugins=(Tracing.using(PROVIDER),))  # the entry point traces globally
    (instance,) = [p for p in gw.gateway.pm.get_plugins() if isinstance(p, Tracing)]
    assert gw.gateway.pm.get_name(instance) == "otel" and instance.tracer is not None
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    server, (attempt,) = one_request(finished_spans(1))
    assert traceparent(fake.received[-1].headers["traceparent"]) == (server.context.trace_id, span_id(attempt))


@pytest.mark.parametrize(("table", "message"), [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"tracer_provider": "nowhere"}, "module:attribute"),
    ({"tracer_provider": "otel_support:nothing_here"}, "cannot be imported"),
    ({"tracer_provider": "otel_support:CLIENT_KEY"}, "not an opentelemetry TracerProvider"),
    ({"extract": "yes"}, "extract must be true or false"),
    ({"provider_names": {"up": 3}}, "provider_names must be a table"),
])
def test_configuration_mistakes(upstream, table, message):
    with pytest.raises(ConfigError, match=message):
        Gateway(gateway_config(upstream[1], table))


def test_no_key_or_prompt_in_spans_or_logs(make_gateway, upstream, caplog):
    fake, _ = upstream
    fake.handler = fake.json_reply({"error": {"message": f"invalid key {UPSTREAM_KEY}"}}, status=401)
    gw = make_gateway(TRACED)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(openai.APIStatusError):
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    fake.handler = fake.json_reply(chat_answer())
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    spans = finished_spans(2)
    exported = repr([(s.name, dict(s.attributes), s.status.description, s.events) for s in spans])
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (CLIENT_KEY, UPSTREAM_KEY, PROMPT):
        assert secret not in exported and secret not in logs
