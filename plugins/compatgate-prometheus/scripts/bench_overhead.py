"""Per-request cost of the Prometheus plugin: its hooks (admit_request, record_usage) as the
gateway dispatches them for one streamed chat request with usage and one upstream attempt,
active vs. installed but inert. Prints microseconds per request; asserts nothing.

    uv run python plugins/compatgate-prometheus/scripts/bench_overhead.py [requests]
"""

from __future__ import annotations

import asyncio
import sys
import time

from starlette.requests import Request

from compatgate import Attempt, Gateway, RequestContext, Route, Usage, UsageRecord


def gateway(prometheus: bool) -> Gateway:
    config = {
        "gateway": {"api_keys": ["k"], "access_log": "off"},
        "providers": {"up": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": [{"name": "gpt-4o", "provider": "up"}],
        "plugins": {"prometheus": {}} if prometheus else {},
    }
    return Gateway(config)


async def per_request_us(gw: Gateway, requests: int) -> float:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "query_string": b""}
    provider = gw.providers["up"]
    usage = Usage(120, 40, 160, cached_tokens=64)
    attempt = Attempt("up", "gpt-4o", 200, None, 180.0)
    hooks = gw.hooks
    started = time.perf_counter()
    for i in range(requests):
        ctx = RequestContext(gw, f"req_{i}", "chat.completions", Request(scope))
        ctx.model, ctx.stream, ctx.route = "gpt-4o", True, Route(provider, "gpt-4o")
        await hooks.each("admit_request", ctx=ctx)
        record = UsageRecord(f"req_{i}", "chat.completions", "static:0", "gpt-4o", "up", "gpt-4o", 200,
                             "ok", True, usage, 900.0, 210.0, attempts=(attempt,))
        await hooks.each("record_usage", isolate=True, ctx=ctx, record=record)
    return (time.perf_counter() - started) / requests * 1e6


async def main(requests: int) -> None:
    inert, active = gateway(False), gateway(True)
    await per_request_us(inert, 2000)  # warm up
    await per_request_us(active, 2000)
    base = min([await per_request_us(inert, requests) for _ in range(9)])
    with_metrics = min([await per_request_us(active, requests) for _ in range(9)])
    print(f"hooks per request, plugin inert:  {base:7.2f} us")
    print(f"hooks per request, plugin active: {with_metrics:7.2f} us")
    print(f"overhead of the active plugin:    {with_metrics - base:7.2f} us per request")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
