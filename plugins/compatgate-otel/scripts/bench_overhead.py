"""Per-request cost of the tracing plugin: the hooks it implements (upstream_headers and
record_usage) as the gateway dispatches them for one chat request that arrives with a
``traceparent`` and makes one upstream call, with the OpenTelemetry SDK and a batch span
processor whose exporter drops the spans; compared with the plugin installed but inert.
Prints microseconds per request; asserts nothing.

    uv run python plugins/compatgate-otel/scripts/bench_overhead.py [requests]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from compatgate_otel import Tracing
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from starlette.requests import Request

from compatgate import Attempt, Gateway, RequestContext, Route, Usage, UsageRecord

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def gateway(provider: TracerProvider | None) -> Gateway:
    config = {
        "gateway": {"api_keys": ["k"], "access_log": "off", "load_entrypoints": False},
        "providers": {"up": {"type": "openai", "base_url": "https://api.example.com/v1"}},
        "models": [{"name": "gpt-4o", "provider": "up"}],
    }
    return Gateway(config, plugins=[Tracing.using(provider)] if provider else [Tracing])


async def per_request_us(gw: Gateway, requests: int) -> float:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"traceparent", TRACEPARENT)], "query_string": b""}
    provider = gw.providers["up"]
    usage = Usage(120, 40, 160, cached_tokens=64)
    attempt = Attempt("up", "gpt-4o", 200, None, 180.0)
    hooks = gw.hooks
    body = {"model": "gpt-4o", "messages": [], "temperature": 0.2, "max_tokens": 256}
    started = time.perf_counter()
    for i in range(requests):
        ctx = RequestContext(gw, f"req_{i}", "chat.completions", Request(scope))
        ctx.model, ctx.body, ctx.route = "gpt-4o", body, Route(provider, "gpt-4o")
        await hooks.each("upstream_headers", ctx=ctx, provider=provider)
        ctx.attempts.append(attempt)
        record = UsageRecord(f"req_{i}", "chat.completions", "static:0", "gpt-4o", "up", "gpt-4o", 200,
                             "ok", False, usage, 900.0, None, attempts=(attempt,),
                             finish_reasons=("stop",), response_model="gpt-4o-2024-08-06", response_id="c1")
        await hooks.each("record_usage", isolate=True, ctx=ctx, record=record)
    return (time.perf_counter() - started) / requests * 1e6


def sdk_floor_us(provider: TracerProvider, requests: int) -> float:
    """The OpenTelemetry SDK alone doing what the plugin asks of it for one request: extract,
    two spans with the same attributes, inject, end."""
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    tracer = provider.get_tracer("floor")
    headers = {"traceparent": TRACEPARENT.decode()}
    started = time.perf_counter()
    for _ in range(requests):
        parent = propagate.extract(headers)
        server = tracer.start_span("chat gpt-4o", parent, SpanKind.SERVER, {
            "gen_ai.operation.name": "chat", "compatgate.request_id": "r",
            "gen_ai.request.model": "gpt-4o", "gen_ai.request.stream": False})
        client = tracer.start_span("chat gpt-4o", trace.set_span_in_context(server, parent), SpanKind.CLIENT, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 256,
            "server.address": "api.example.com", "server.port": 443, "compatgate.provider": "up",
            "compatgate.attempt.number": 1, "gen_ai.request.model": "gpt-4o"})
        propagate.inject({}, context=trace.set_span_in_context(client, parent))
        client.set_attributes({
            "http.response.status_code": 200, "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "c1", "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 64})
        client.end()
        server.set_attributes({
            "http.response.status_code": 200, "compatgate.outcome": "ok", "compatgate.attempts": 1,
            "compatgate.key_id": "static:0", "gen_ai.provider.name": "openai",
            "compatgate.provider": "up", "compatgate.upstream_model": "gpt-4o"})
        server.end()
    return (time.perf_counter() - started) / requests * 1e6


async def main(requests: int) -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=65536))
    inert, active = gateway(None), gateway(provider)
    await per_request_us(inert, 2000)  # warm up
    await per_request_us(active, 2000)
    base = min([await per_request_us(inert, requests) for _ in range(9)])
    traced = min([await per_request_us(active, requests) for _ in range(9)])
    floor = min(sdk_floor_us(provider, requests) for _ in range(9))
    provider.shutdown()
    print(f"hooks per request, plugin inert:  {base:7.2f} us")
    print(f"hooks per request, plugin active: {traced:7.2f} us (2 spans, traceparent in and out)")
    print(f"overhead of the active plugin:    {traced - base:7.2f} us per request")
    print(f"of which the SDK alone:           {floor:7.2f} us (the same spans, attributes, extract, inject)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
