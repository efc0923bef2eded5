"""Cache results (``UsageRecord.cache``, set by a `wrap_upstream` plugin such as
compatgate-cache): hits, misses and bypasses counted, bytes served and tokens saved by hits,
and hits kept out of the upstream token counter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_support import MESSAGES, answer, eventually, scrape, value

from compatgate import Reply, RequestContext, hookimpl

TOKEN = "scrape-token-123"
CHAT = {"endpoint": "chat.completions", "model": "gpt-4o", "provider": "up"}


@dataclass
class Note:
    status: str
    served_bytes: int = 0


class FakeCache:
    """``x-test-cache: hit`` is answered here (11 + 3 tokens, 120 bytes), ``bypass`` goes
    upstream as a bypass, anything else upstream as a miss."""

    @hookimpl
    def wrap_upstream(self, ctx: RequestContext, call: Any) -> Any:
        async def cached(ctx: RequestContext, body: dict[str, Any]) -> Any:
            wanted = ctx.request.headers.get("x-test-cache", "miss")
            ctx.cache = wanted
            ctx.state["cache"] = Note(wanted, 120 if wanted == "hit" else 0)
            if wanted == "hit":
                return Reply(answer(prompt=11, completion=3))
            return await call(ctx, body)

        return cached


def test_cache_results_bytes_and_saved_tokens(upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(answer(prompt=11, completion=3))
    gw = make_gateway({"path": "/metrics", "token": TOKEN}, plugins=(FakeCache(),))
    client = gw.client()
    for result in ("miss", "hit", "hit", "bypass"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-test-cache": result})
    s = eventually(lambda: scrape(f"{gw.url}/metrics", TOKEN), lambda s: value(s, "compatgate_requests_total") >= 4)
    assert value(s, "compatgate_cache_requests_total", **CHAT, result="hit") == 2
    assert value(s, "compatgate_cache_requests_total", **CHAT, result="miss") == 1
    assert value(s, "compatgate_cache_requests_total", **CHAT, result="bypass") == 1
    assert value(s, "compatgate_cache_served_bytes_total", **CHAT) == 240
    assert value(s, "compatgate_cache_saved_tokens_total", **CHAT, kind="prompt") == 22
    assert value(s, "compatgate_cache_saved_tokens_total", **CHAT, kind="completion") == 6
    # upstream tokens: the miss and the bypass only
    assert value(s, "compatgate_tokens_total", **CHAT, kind="prompt", estimated="false") == 22
    assert value(s, "compatgate_upstream_latency_seconds_count", provider="up") == 2
