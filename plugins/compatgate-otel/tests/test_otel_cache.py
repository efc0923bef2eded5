"""Cache results (``UsageRecord.cache``, set by a `wrap_upstream` plugin such as
compatgate-cache) on the request span: a hit has no attempt span and, instead of
``gen_ai.usage.*``, the bytes it served and the tokens it saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind
from otel_support import chat_answer, finished_spans

from compatgate import Reply, RequestContext, hookimpl

TRACED = {"tracer_provider": "otel_support:tracer_provider"}
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass
class Note:
    status: str
    served_bytes: int = 0


class FakeCache:
    """``x-test-cache: hit`` is answered here (usage 12 + 5, 300 bytes); others go upstream."""

    @hookimpl
    def wrap_upstream(self, ctx: RequestContext, call: Any) -> Any:
        async def cached(ctx: RequestContext, body: dict[str, Any]) -> Any:
            hit = ctx.request.headers.get("x-test-cache") == "hit"
            ctx.cache = "hit" if hit else "miss"
            ctx.state["cache"] = Note(ctx.cache, 300 if hit else 0)
            return Reply(chat_answer()) if hit else await call(ctx, body)

        return cached


def test_hits_and_misses_on_the_request_span(make_gateway, upstream):
    upstream[0].handler = upstream[0].json_reply(chat_answer())
    gw = make_gateway(TRACED, plugins=(FakeCache(),))
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    gw.client(**{"x-test-cache": "hit"}).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    spans = finished_spans(2)
    servers = sorted((s for s in spans if s.kind is SpanKind.SERVER), key=lambda s: s.start_time or 0)
    attempts = [s for s in spans if s.kind is SpanKind.CLIENT]
    miss, hit = (dict(s.attributes or {}) for s in servers)
    assert len(attempts) == 1  # the miss's upstream call only
    assert miss["compatgate.cache"] == "miss" and "compatgate.cache.served_bytes" not in miss
    assert dict(attempts[0].attributes or {})["gen_ai.usage.input_tokens"] == 12
    assert hit["compatgate.cache"] == "hit"
    assert hit["compatgate.cache.served_bytes"] == 300
    assert (hit["compatgate.cache.saved_input_tokens"], hit["compatgate.cache.saved_output_tokens"]) == (12, 5)
    assert not any(name.startswith("gen_ai.usage.") for name in hit)
    assert hit["gen_ai.response.id"] == "chatcmpl-otel-1" and hit["compatgate.attempts"] == 0
