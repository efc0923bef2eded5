"""An answer from a cache (``UsageRecord.cached``, set by a `wrap_upstream` plugin such as
compatgate-cache) counts as a request but not as upstream tokens (both backends)."""

from __future__ import annotations

from typing import Any

from ratelimit_support import CHAT, KEYS, chat_answer

from compatgate import Reply, RequestContext, hookimpl


class FakeCache:
    """Answers a request sending ``x-test-cache: hit`` itself, with 10 + 5 tokens of usage."""

    @hookimpl
    def wrap_upstream(self, ctx: RequestContext, call: Any) -> Any:
        async def cached(ctx: RequestContext, body: dict[str, Any]) -> Any:
            if ctx.request.headers.get("x-test-cache") == "hit":
                ctx.cache = "hit"
                return Reply(chat_answer(10, 5))
            return await call(ctx, body)

        return cached


def test_a_cache_hit_counts_as_a_request_not_as_tokens(backend, upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(10, 5))
    served = make_gateway({**backend, "rpm": 10, "tpm": 10_000}, plugins=(FakeCache(),))
    client = served.client(KEYS[0])
    body = {**CHAT, "max_tokens": 100}  # an estimate of 107 tokens, settled to the usage (15)

    def send(**headers: str) -> dict[str, str]:
        response = client.chat.completions.with_raw_response.create(**body, extra_headers=headers)
        return {k: response.headers[f"x-ratelimit-remaining-{k}"] for k in ("requests", "tokens")}

    assert send() == {"requests": "9", "tokens": str(10_000 - 107)}
    served.records(1)
    assert send(**{"x-test-cache": "hit"}) == {"requests": "8", "tokens": str(10_000 - 15 - 107)}
    records = served.records(2)
    assert records[1].cached and records[1].usage is not None and records[1].usage.total_tokens == 15
    assert send() == {"requests": "7", "tokens": str(10_000 - 15 - 107)}  # the hit's tokens: 0
    assert len(fake.received) == 2
