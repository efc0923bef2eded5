"""Scrape the metrics after real requests through the official SDK and check the numbers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import openai
import pytest
from compatgate_prometheus import Prometheus, metrics_app
from prometheus_support import (
    CLIENT_KEY,
    MESSAGES,
    UPSTREAM_KEY,
    Served,
    answer,
    eventually,
    gateway_config,
    scrape,
    sse_stream,
    value,
)
from starlette.applications import Starlette
from starlette.routing import Mount

from compatgate import (
    ConfigError,
    Gateway,
    HTTPProvider,
    InsufficientQuotaError,
    RateLimitError,
    Reply,
    RequestContext,
    UpstreamError,
    hookimpl,
)
from compatgate.testing import serve

TOKEN = "scrape-token-123"
CHAT = {"endpoint": "chat.completions", "model": "gpt-4o", "provider": "up"}


def metrics(gw: Served) -> dict:
    return scrape(f"{gw.url}/metrics", TOKEN)


def requests_done(count: int):
    return lambda s: value(s, "compatgate_requests_total") >= count


def test_non_streamed_request(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(answer(prompt=11, completion=3, cached=4, reasoning=2))
    gw = make_gateway({"path": "/metrics", "token": TOKEN})
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: metrics(gw), requests_done(1))
    assert value(s, "compatgate_requests_total", **CHAT, status="200", outcome="ok") == 1
    assert value(s, "compatgate_requests_total") == 1
    tokens = {kind: value(s, "compatgate_tokens_total", **CHAT, kind=kind, estimated="false")
              for kind in ("prompt", "completion", "cached", "reasoning")}
    assert tokens == {"prompt": 11, "completion": 3, "cached": 4, "reasoning": 2}
    assert value(s, "compatgate_tokens_total", estimated="true") == 0
    assert value(s, "compatgate_request_duration_seconds_count", **CHAT, outcome="ok") == 1
    assert 0 < value(s, "compatgate_request_duration_seconds_sum") < 5
    assert value(s, "compatgate_time_to_first_token_seconds_count") == 0  # not streamed
    assert value(s, "compatgate_upstream_latency_seconds_count", provider="up") == 1
    assert value(s, "compatgate_upstream_errors_total") == 0
    assert value(s, "compatgate_upstream_retries_total") == 0
    assert value(s, "compatgate_requests_in_flight") == 0


def test_streamed_request(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.sse_reply(sse_stream(["Hel", "lo", "!"], usage=(7, 4)), delay=0.01)
    gw = make_gateway({"path": "/metrics", "token": TOKEN})
    chunks = list(gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    s = eventually(lambda: metrics(gw), requests_done(1))
    assert value(s, "compatgate_requests_total", **CHAT, status="200", outcome="ok") == 1
    assert value(s, "compatgate_time_to_first_token_seconds_count", **CHAT) == 1
    ttft = value(s, "compatgate_time_to_first_token_seconds_sum")
    assert 0 < ttft <= value(s, "compatgate_request_duration_seconds_sum")
    assert value(s, "compatgate_tokens_total", kind="prompt", estimated="false") == 7
    assert value(s, "compatgate_tokens_total", kind="completion", estimated="false") == 4
    assert value(s, "compatgate_open_streams") == 0 and value(s, "compatgate_requests_in_flight") == 0


def test_upstream_error(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply({"error": {"message": "boom", "type": "server_error"}}, status=500)
    gw = make_gateway({"path": "/metrics", "token": TOKEN})
    with pytest.raises(openai.InternalServerError):
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: metrics(gw), requests_done(1))
    assert value(s, "compatgate_requests_total", **CHAT, status="500", outcome="error") == 1
    assert value(s, "compatgate_upstream_errors_total", provider="up", status="500") == 1
    assert value(s, "compatgate_tokens_total") == 0
    assert value(s, "compatgate_refusals_total") == 0
    assert value(s, "compatgate_requests_in_flight") == 0


def test_stream_that_breaks_counts_an_upstream_error(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.sse_reply(sse_stream(["a", "b"], usage=None, finish=False), then="reset")
    gw = make_gateway({"path": "/metrics", "token": TOKEN})
    with pytest.raises(openai.APIError):
        list(gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    s = eventually(lambda: metrics(gw), requests_done(1))
    assert value(s, "compatgate_requests_total", **CHAT, status="200", outcome="error") == 1
    assert value(s, "compatgate_upstream_errors_total", provider="up", status="stream") == 1
    assert value(s, "compatgate_tokens_total", kind="completion", estimated="true") == 1  # "ab": 1 token


def test_client_abort_mid_stream(make_gateway, upstream):
    """A client that leaves a stalled stream: in flight and open while it lasts, then aborted
    with estimated tokens, and the gauges back to zero."""
    fake, _ = upstream
    fake.handler = fake.sse_reply(sse_stream(["one ", "two "], usage=None, finish=False), then="stall", stall=30)
    gw = make_gateway({"path": "/metrics", "token": TOKEN})
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.content == "one "
    s = metrics(gw)
    assert value(s, "compatgate_requests_in_flight", **CHAT) == 1
    assert value(s, "compatgate_open_streams", **CHAT) == 1
    stream.close()
    assert fake.hung_up.wait(5), "the gateway did not cancel the upstream"
    s = eventually(lambda: metrics(gw), requests_done(1))
    assert value(s, "compatgate_requests_total", **CHAT, status="200", outcome="aborted") == 1
    assert value(s, "compatgate_request_duration_seconds_count", outcome="aborted") == 1
    assert value(s, "compatgate_tokens_total", kind="prompt", estimated="true") > 0
    assert value(s, "compatgate_tokens_total", estimated="false") == 0
    assert value(s, "compatgate_requests_in_flight") == 0 and value(s, "compatgate_open_streams") == 0


class Refuser:
    """Refuses every request with the error of its ``mode``."""

    mode = "rate"

    @hookimpl
    def admit_request(self, ctx: RequestContext) -> None:
        if self.mode == "rate":
            raise RateLimitError("Too many requests.", retry_after=2)
        raise InsufficientQuotaError("Budget exhausted.")


def test_rate_limit_and_budget_refusals(make_gateway, upstream):
    fake, _ = upstream
    refuser = Refuser()
    gw = make_gateway({"path": "/metrics", "token": TOKEN}, plugins=(refuser,))
    for mode in ("rate", "rate", "quota"):
        refuser.mode = mode
        with pytest.raises(openai.RateLimitError):
            gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    gw.gateway.pm.unregister(refuser)
    gw.gateway.hooks.refresh()
    fake.handler = fake.json_reply({"error": {"message": "slow down", "code": "rate_limit_exceeded"}}, status=429)
    with pytest.raises(openai.RateLimitError):
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: metrics(gw), requests_done(4))
    refusals = "compatgate_refusals_total"
    assert value(s, refusals, model="gpt-4o", code="rate_limit_exceeded", source="gateway") == 2
    assert value(s, refusals, model="gpt-4o", code="insufficient_quota", source="gateway") == 1
    assert value(s, refusals, model="gpt-4o", code="rate_limit_exceeded", source="upstream") == 1
    assert value(s, "compatgate_requests_total", **CHAT, status="429", outcome="error") == 4
    # Refused before going upstream: never in flight, and the gauges did not go negative.
    assert value(s, "compatgate_upstream_errors_total", provider="up", status="429") == 1
    assert value(s, "compatgate_requests_in_flight") == 0


class RetryingProvider(HTTPProvider):
    """An OpenAI-compatible provider that retries once on an upstream 5xx."""

    type = "retrying"

    async def chat_completions(self, ctx: RequestContext, body: dict) -> Reply:
        try:
            return await self.post_json(ctx, "/chat/completions", body)
        except UpstreamError as exc:
            if exc.status_code < 500:
                raise
            return await self.post_json(ctx, "/chat/completions", body)


class RetryingPlugin:
    @hookimpl
    def register_providers(self, register) -> None:
        register(RetryingProvider)


def test_upstream_retries_and_errors_by_provider(make_gateway, upstream):
    fake, url = upstream
    calls = {"n": 0}
    fail = fake.json_reply({"error": {"message": "overloaded"}}, status=503)
    ok = fake.json_reply(answer())

    async def flaky(request, send):
        calls["n"] += 1
        await (fail if calls["n"] % 2 else ok)(request, send)

    fake.handler = flaky
    config = {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "providers": {"flaky": {"type": "retrying", "base_url": f"{url}/v1", "api_key": UPSTREAM_KEY}},
        "models": [{"name": "gpt-4o", "provider": "flaky"}],
        "plugins": {"prometheus": {"path": "/metrics", "token": TOKEN}},
    }
    gw = make_gateway(config=config, plugins=(RetryingPlugin(),))
    for _ in range(2):
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: metrics(gw), requests_done(2))
    assert value(s, "compatgate_upstream_retries_total", provider="flaky") == 2
    assert value(s, "compatgate_upstream_errors_total", provider="flaky", status="503") == 2
    assert value(s, "compatgate_upstream_latency_seconds_count", provider="flaky") == 4
    assert value(s, "compatgate_requests_total", provider="flaky", status="200", outcome="ok") == 2


def test_refused_before_routing_does_not_leak_client_model_names(make_gateway, upstream):
    gw = make_gateway({"path": "/metrics", "token": TOKEN, "max_models": 1})
    with pytest.raises(openai.NotFoundError):
        gw.client().chat.completions.create(model="made-up-model-xyz", messages=MESSAGES)
    with pytest.raises(openai.AuthenticationError):
        gw.client(key="sk-wrong").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: metrics(gw), requests_done(2))
    assert value(s, "compatgate_requests_total", model="", provider="", status="404", outcome="error") == 1
    assert value(s, "compatgate_requests_total", model="", provider="", status="401", outcome="error") == 1
    assert not any("made-up-model-xyz" in dict(labels).values() for _, labels in s)


def test_token_protects_the_gateway_route(make_gateway):
    gw = make_gateway({"path": "/metrics", "token": TOKEN})
    assert httpx2.get(f"{gw.url}/metrics").status_code == 401
    wrong = httpx2.get(f"{gw.url}/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx2.post(f"{gw.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 405
    ok = httpx2.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    openmetrics = httpx2.get(f"{gw.url}/metrics", headers={
        "authorization": f"Bearer {TOKEN}", "accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_metrics_app_mounted_by_the_host_and_gateways_do_not_mix(upstream):
    fake, url = upstream
    fake.handler = fake.json_reply(answer())
    first = Gateway(gateway_config(url, {}))
    second = Gateway(gateway_config(url, {}))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with first.lifespan(), second.lifespan():
            yield

    host = Starlette(routes=[
        Mount("/one/metrics", metrics_app(first)), Mount("/one", first),
        Mount("/two/metrics", metrics_app(second)), Mount("/two", second),
    ], lifespan=lifespan)
    with serve(host) as base:
        client = openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{base}/one", max_retries=0, timeout=10)
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        one = eventually(lambda: scrape(f"{base}/one/metrics/"), requests_done(3))
        two = scrape(f"{base}/two/metrics/")
        # No path configured: nothing is served under the gateway itself.
        assert httpx2.get(f"{base}/one/metrics-not-here").status_code == 404
    assert value(one, "compatgate_requests_total", outcome="ok") == 3
    assert value(two, "compatgate_requests_total") == 0
    assert first.state["compatgate_prometheus"].metrics.registry is not second.state["compatgate_prometheus"].metrics.registry


def test_inert_without_its_table(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(answer())
    gw = make_gateway(None)
    plugin = next(p for p in gw.gateway.pm.get_plugins() if isinstance(p, Prometheus))
    assert plugin.metrics is None
    hooks = gw.gateway.pm.hook
    assert not [i for i in hooks.admit_request.get_hookimpls() + hooks.record_usage.get_hookimpls()
                if i.plugin is plugin], "an inert instance registers no hook"
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(ConfigError, match=r"\[plugins.prometheus\]"):
        metrics_app(gw.gateway)
    assert httpx2.get(f"{gw.url}/metrics").status_code == 404


def test_given_twice_counts_once(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(answer())
    gw = make_gateway({"path": "/metrics"}, plugins=(Prometheus,))
    (instance,) = [p for p in gw.gateway.pm.get_plugins() if isinstance(p, Prometheus)]
    assert gw.gateway.pm.get_name(instance) == "prometheus" and instance.metrics is not None
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: scrape(f"{gw.url}/metrics"), requests_done(1))
    assert value(s, "compatgate_requests_total") == 1


@pytest.mark.parametrize(("table", "message"), [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"path": "metrics"}, "path must start with '/'"),
    ({"namespace": "bad-name"}, "namespace must match"),
    ({"latency_buckets": [1, 0.5]}, "strictly increasing"),
    ({"token": ""}, "token must not be empty"),
    ({"max_models": 0}, "max_models must be a positive integer"),
])
def test_configuration_mistakes(upstream, table, message):
    with pytest.raises(ConfigError, match=message):
        Gateway(gateway_config(upstream[1], table))


def test_custom_namespace_and_buckets(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(answer())
    gw = make_gateway({"path": "/m", "namespace": "llm", "latency_buckets": [0.5, 60]})
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: scrape(f"{gw.url}/m"), lambda s: value(s, "llm_requests_total") >= 1)
    buckets = sorted(dict(labels)["le"] for name, labels in s if name == "llm_request_duration_seconds_bucket")
    assert buckets == ["+Inf", "0.5", "60.0"]
    assert value(s, "compatgate_requests_total") == 0


def test_no_key_in_metrics_or_logs(make_gateway, upstream, caplog):
    fake, _ = upstream
    fake.handler = fake.json_reply({"error": {"message": f"bad key {UPSTREAM_KEY}"}}, status=401)
    gw = make_gateway({"path": "/metrics", "token": TOKEN})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(openai.APIStatusError):
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    s = eventually(lambda: metrics(gw), requests_done(1))
    text = httpx2.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (CLIENT_KEY, UPSTREAM_KEY, TOKEN):
        assert secret not in text and secret not in logs
    assert value(s, "compatgate_upstream_errors_total", provider="up", status="401") == 1
