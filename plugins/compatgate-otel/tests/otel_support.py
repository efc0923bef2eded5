"""What the tracing tests share: an in-memory tracer provider, configurations, answers."""

from __future__ import annotations

import time
from typing import Any

import openai
import orjson
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from compatgate.testing import ServedGateway

UPSTREAM_KEY = "sk-upstream-OTEL-SECRET-7"
CLIENT_KEY = "sk-client-otel-1"
PROMPT = "a private prompt about bob@example.com"
MESSAGES = [{"role": "user", "content": PROMPT}]
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
CALLER_SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


def tracer_provider() -> TracerProvider:
    """What ``[plugins.otel] tracer_provider = "otel_support:tracer_provider"`` names."""
    return PROVIDER


def gateway_config(upstream_url: str, otel: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "providers": {
            "up": {"type": "openai", "base_url": f"{upstream_url}/v1", "api_key": UPSTREAM_KEY,
                   "read_timeout": 5.0, "connect_timeout": 2.0},
        },
        "models": [
            {"name": "gpt-4o", "provider": "up", "upstream_model": "gpt-4o-2024-08-06"},
            {"name": "text-embedding-3-small", "provider": "up"},
        ],
    }
    if otel is not None:
        config["plugins"] = {"otel": otel}
    return config


def chat_answer() -> dict[str, Any]:
    return {
        "id": "chatcmpl-otel-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": None, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "hey"}, "logprobs": None, "finish_reason": "length"},
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                  "prompt_tokens_details": {"cached_tokens": 8},
                  "completion_tokens_details": {"reasoning_tokens": 1}},
    }


def chat_stream(words: list[str], *, done: bool = True) -> bytes:
    base = {"id": "chatcmpl-otel-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06"}
    events = [{**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
    if done:
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        events.append({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}})
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


class Served(ServedGateway):
    """A gateway served on loopback; ``client(key, **headers)`` sends those headers."""

    default_key = CLIENT_KEY

    def client(self, key: str | None = None, **headers: str) -> openai.OpenAI:  # type: ignore[override]
        return super().client(key, default_headers=headers or None)


def finished_spans(requests: int = 1, timeout: float = 5.0) -> list[ReadableSpan]:
    """The exported spans once ``requests`` request (SERVER) spans ended (a stream's span ends
    after its last byte, which the client may see first)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = list(EXPORTER.get_finished_spans())
        servers = [s for s in spans if s.kind is SpanKind.SERVER]
        if len(servers) >= requests or time.monotonic() > deadline:
            assert len(servers) == requests, f"expected {requests} request spans, got {spans}"
            return spans


def one_request(spans: list[ReadableSpan]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The request span and its attempt spans, in start order."""
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    return server, attempts
