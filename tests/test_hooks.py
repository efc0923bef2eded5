"""The plugin system, through the public surface: each hook, sync and async, over real HTTP."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from support import CLIENT_KEY, FIXTURES, Served, UsageLog, gateway_config

from compatgate import (
    Attempt,
    AuthenticationError,
    Chunk,
    Gateway,
    GatewayError,
    Principal,
    Provider,
    Reply,
    RequestContext,
    UsageRecord,
    hookimpl,
)
from compatgate import Route as ModelRoute
from compatgate.testing import OpenAISchema, serve

MESSAGES = [{"role": "user", "content": "Hello?"}]
RECORDINGS = sorted((FIXTURES / "openai-sse").glob("*.bin"))
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
MODES = ["sync", "async"]

ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1727346172, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi.", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def impl(mode: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as a hook implementation: itself (``"sync"``), or an ``async def`` that first
    gives the event loop a turn and then returns its result (``"async"``)."""
    if mode == "sync":
        return hookimpl(function)

    @functools.wraps(function)  # pluggy reads the argument names through __wrapped__
    async def asynchronous(*args: Any) -> Any:
        await asyncio.sleep(0)
        return function(*args)

    return hookimpl(asynchronous)


def plugin(mode: str, **hooks: Callable[..., Any]) -> object:
    """A plugin object implementing ``hooks`` (hook name -> function), in ``mode``."""
    return type("HookPlugin", (), {name: staticmethod(impl(mode, function)) for name, function in hooks.items()})()


def chat(url: str, key: str = CLIENT_KEY, **body: Any) -> httpx2.Response:
    return httpx2.post(f"{url}/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=10,
                       json={"model": "gpt-4o", "messages": MESSAGES, **body})


def sse(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[httpx2.Response, bytes]:
    """POST a streaming chat request; the response and its whole raw body."""
    with httpx2.stream("POST", f"{url}/chat/completions", json=body, timeout=10,
                       headers={**AUTH, **(headers or {})}) as response:
        return response, response.read()


def payloads(content: bytes) -> list[bytes]:
    return [block[6:] for block in content.split(b"\n\n") if block.startswith(b"data: ")]


def config(url: str) -> dict[str, Any]:
    return gateway_config(url, load_entrypoints=False)


# -- plugin classes and order ----------------------------------------------------------------


def test_class_plugin_is_instantiated_per_gateway(upstream):
    class Stateful:
        def __init__(self, gateway: Gateway) -> None:
            self.gateway = gateway

        @hookimpl
        def record_usage(self, record: UsageRecord) -> None:
            pass

    first = Gateway(config(upstream[1]), plugins=[Stateful])
    second = Gateway(config(upstream[1]), plugins=[Stateful])
    (one,) = [p for p in first.pm.get_plugins() if isinstance(p, Stateful)]
    (two,) = [p for p in second.pm.get_plugins() if isinstance(p, Stateful)]
    assert one is not two and one.gateway is first and two.gateway is second
    # An instance (or a module) is registered as given.
    shared = Stateful(first)
    third = Gateway(config(upstream[1]), plugins=[shared])
    assert shared in third.pm.get_plugins()


@pytest.mark.parametrize("mode", MODES)
def test_authenticate_plugin_runs_before_the_builtin(make_gateway, upstream, mode: str):
    fake, _ = upstream
    fake.handler = fake.json_reply(ANSWER)

    def authenticate(api_key: str | None) -> Principal | None:
        if api_key == "sk-plugin-only":
            return Principal("plugin:alice", metadata={"tier": "gold"})
        if api_key == CLIENT_KEY:  # a key the built-in accepts too: the plugin answers first
            return Principal("plugin:shadow")
        if api_key == "sk-banned":
            raise AuthenticationError("This key was revoked.", code="key_revoked")
        return None

    gw = make_gateway(config(upstream[1]), plugins=(plugin(mode, authenticate=authenticate),))
    assert gw.client(key="sk-plugin-only").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r.key_id for r in gw.records(2)] == ["plugin:alice", "plugin:shadow"]
    with pytest.raises(openai.AuthenticationError) as info:
        gw.client(key="sk-banned").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.code == "key_revoked"
    with pytest.raises(openai.AuthenticationError) as info:  # every plugin returned None
        gw.client(key="sk-unknown").models.list()
    assert info.value.code == "invalid_api_key"
    assert gw.client(key="sk-plugin-only").models.list().data
    assert len(fake.received) == 2


@pytest.mark.parametrize("mode", MODES)
def test_route_model_plugin_sends_a_model_elsewhere(make_gateway, upstream, mode: str):
    fake, url = upstream
    fake.handler = fake.json_reply(ANSWER)
    cfg = config(url)
    cfg["providers"]["other"] = {"type": "openai", "base_url": f"{url}/other/v1", "api_key": "sk-other"}

    def route_model(gateway: Gateway, ctx: RequestContext, model: str) -> ModelRoute | None:
        if model in ("gpt-4o", "plugin-only-model"):
            return ModelRoute(gateway.providers["other"], f"routed-{model}")
        return None

    gw = make_gateway(cfg, plugins=(plugin(mode, route_model=route_model),))
    client = gw.client()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert fake.received[-1].path == "/other/v1/chat/completions"
    assert fake.received[-1].json["model"] == "routed-gpt-4o"
    assert fake.received[-1].headers["authorization"] == "Bearer sk-other"
    client.chat.completions.create(model="plugin-only-model", messages=MESSAGES)  # not in [[models]]
    assert fake.received[-1].json["model"] == "routed-plugin-only-model"
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x")  # left to the built-in
    assert fake.received[-1].path == "/v1/completions"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nobody-routes-this", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    records = gw.records(4)
    assert [(r.provider, r.upstream_model) for r in records[:3]] == [
        ("other", "routed-gpt-4o"), ("other", "routed-plugin-only-model"), ("up", "gpt-3.5-turbo-instruct")
    ]


@pytest.mark.parametrize("mode", MODES)
def test_transform_request_is_chained(make_gateway, upstream, mode: str):
    fake, _ = upstream
    fake.handler = fake.json_reply(ANSWER)
    seen: list[dict[str, Any]] = []

    def add_metadata(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(body))
        return {**body, "metadata": {"team": "search"}, "model": "ignored-by-the-gateway"}

    def set_temperature(body: dict[str, Any]) -> None:
        seen.append(dict(body))
        body["temperature"] = 0  # in place, returning None

    other = "async" if mode == "sync" else "sync"
    # pluggy calls the most recently registered plugin first: add_metadata, then set_temperature.
    gw = make_gateway(config(upstream[1]), plugins=(plugin(mode, transform_request=set_temperature),
                                                     plugin(other, transform_request=add_metadata)))
    gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=1.5)
    assert seen[0]["temperature"] == 1.5 and "metadata" not in seen[0]
    assert seen[1]["metadata"] == {"team": "search"}  # the second saw the first's change
    sent = fake.received[-1].json
    assert sent["metadata"] == {"team": "search"} and sent["temperature"] == 0
    assert sent["model"] == "gpt-4o-2024-08-06"  # the route's upstream model, whatever the hooks said
    assert sent["messages"] == MESSAGES


class OverBudget(GatewayError):
    status_code = 402
    type = "insufficient_quota"
    code = "budget_exceeded"


@pytest.mark.parametrize("mode", MODES)
def test_admit_request_refusal(make_gateway, upstream, mode: str, openai_schema: OpenAISchema):
    fake, _ = upstream
    fake.handler = fake.json_reply(ANSWER)
    admitted: list[tuple[str, str | None, Any]] = []

    def admit_request(ctx: RequestContext) -> None:
        assert ctx.route is not None and ctx.principal is not None
        admitted.append((ctx.model, ctx.route.upstream_model, ctx.body.get("metadata")))
        if ctx.body.get("user") == "broke":
            raise OverBudget("The budget of this team is spent.", headers={"x-budget-remaining": "0"})

    def transform_request(body: dict[str, Any]) -> None:
        body["metadata"] = {"checked": "yes"}

    gw = make_gateway(config(upstream[1]), plugins=(plugin(mode, admit_request=admit_request,
                                                           transform_request=transform_request),))
    refused = chat(gw.url, user="broke")
    assert refused.status_code == 402
    openai_schema.validate("ErrorResponse", refused.json())
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert refused.json()["error"]["type"] == "insufficient_quota"
    assert refused.headers["x-budget-remaining"] == "0"
    assert fake.received == []  # nothing went upstream
    # admit_request ran after routing and transform_request
    assert admitted == [("gpt-4o", "gpt-4o-2024-08-06", {"checked": "yes"})]
    with pytest.raises(openai.APIStatusError) as info:
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, user="broke", stream=True)
    assert info.value.status_code == 402
    assert gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, user="rich")
    records = gw.records(3)
    # Exactly one record per request, the later success included (so nothing is recorded twice).
    assert [(r.status_code, r.outcome) for r in records] == [(402, "error"), (402, "error"), (200, "ok")]
    assert records[0].error == "The budget of this team is spent." and records[0].provider == "up"
    assert len({r.request_id for r in records}) == 3


@pytest.mark.parametrize("mode", MODES)
def test_transform_response(make_gateway, upstream, mode: str, openai_schema: OpenAISchema):
    fake, _ = upstream
    fake.handler = fake.json_reply(ANSWER)

    def transform_response(ctx: RequestContext, response: dict[str, Any]) -> dict[str, Any]:
        response["choices"][0]["message"]["content"] += f" (via {ctx.route.provider.name})"
        return {**response, "model": ctx.model}

    gw = make_gateway(config(upstream[1]), plugins=(plugin(mode, transform_response=transform_response),))
    result = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert result.choices[0].message.content == "Hi. (via up)" and result.model == "gpt-4o"
    raw = chat(gw.url)
    openai_schema.validate("CreateChatCompletionResponse", raw.json())
    assert raw.json()["choices"][0]["message"]["content"] == "Hi. (via up)"
    assert gw.records(2)[0].total_tokens == 5


def test_response_bytes_untouched_without_transform_response(gw: Served, upstream):
    fake, _ = upstream
    odd = b'{ "id" : "chatcmpl-1",\n  "object":"chat.completion", "created":1, "model":"m",\n  "choices":[]}'
    fake.handler = fake.json_reply(odd)
    assert chat(gw.url).content == odd


# -- streams ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("include_usage", [False, True])
def test_transform_stream_chunk_sees_every_chunk(make_gateway, upstream, mode: str, include_usage: bool,
                                                 openai_schema: OpenAISchema):
    fake, _ = upstream
    content = RECORDINGS[0].read_bytes()
    fake.handler = fake.sse_reply(content)
    calls: list[dict[str, Any]] = []

    def transform_stream_chunk(ctx: RequestContext, chunk: dict[str, Any]) -> dict[str, Any]:
        calls.append(chunk)
        return {**chunk, "system_fingerprint": f"fp_gateway_{len(calls)}"}

    gw = make_gateway(config(upstream[1]), plugins=(plugin(mode, transform_stream_chunk=transform_stream_chunk),))
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    response, raw = sse(gw.url, body)
    received = payloads(raw)
    assert received[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in received[:-1]]
    recorded = [orjson.loads(p) for p in payloads(content) if p != b"[DONE]"]
    expected = recorded if include_usage else [e for e in recorded if e["choices"]]
    assert len(calls) == len(chunks) == len(expected)
    # Every chunk the client received went through the hook, in order.
    assert [c["system_fingerprint"] for c in chunks] == [f"fp_gateway_{i}" for i in range(1, len(chunks) + 1)]
    assert [{**c, "system_fingerprint": None} for c in chunks] == [
        {**e, "system_fingerprint": None} for e in expected
    ]
    for chunk in chunks:
        openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
    assert gw.records(1)[0].outcome == "ok"


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.name[:8])
def test_stream_bytes_unchanged_without_transform_stream_chunk(gw: Served, upstream, recording):
    fake, _ = upstream
    content = recording.read_bytes()
    fake.handler = fake.sse_reply(content)
    n = max(c["index"] for p in payloads(content) if p != b"[DONE]" for c in orjson.loads(p)["choices"]) + 1
    response, raw = sse(gw.url, {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "n": n,
                                 "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    assert payloads(raw) == payloads(content)  # each event's bytes exactly as the upstream sent them
    assert raw == content  # and, for these recordings, the whole body


# -- response_headers ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_response_headers_merged_everywhere(make_gateway, upstream, mode: str):
    fake, _ = upstream
    fake.handler = fake.json_reply(ANSWER)

    def limits(ctx: RequestContext) -> dict[str, str]:
        return {"X-RateLimit-Remaining": "5", "x-from-limits": "yes", "x-request-id": "hijacked"}

    def tracing(ctx: RequestContext) -> dict[str, str]:
        who = ctx.principal.key_id if ctx.principal else "anonymous"
        return {"x-ratelimit-remaining": "9", "x-from-tracing": ctx.endpoint, "x-key": who}

    # Registered last, `limits` runs first: its x-ratelimit-remaining wins.
    gw = make_gateway(config(upstream[1]), plugins=(plugin(mode, response_headers=tracing),
                                                     plugin(mode, response_headers=limits)))
    fake.handler = fake.sse_reply(RECORDINGS[0].read_bytes())
    streamed, _ = sse(gw.url, {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    fake.handler = fake.json_reply(ANSWER)
    responses = {
        "ok": chat(gw.url),
        "stream": streamed,
        "unauthenticated": chat(gw.url, key="sk-wrong"),
        "unknown model": chat(gw.url, model="nope"),
        "invalid body": httpx2.post(f"{gw.url}/chat/completions", headers=AUTH, content=b"{", timeout=10),
        "upstream error": None,
        "models": httpx2.get(f"{gw.url}/models", headers=AUTH, timeout=10),
        "models unauthenticated": httpx2.get(f"{gw.url}/models", timeout=10),
        "model not found": httpx2.get(f"{gw.url}/models/nope", headers=AUTH, timeout=10),
    }
    fake.handler = fake.json_reply({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
    responses["upstream error"] = chat(gw.url)
    for name, response in responses.items():
        assert response is not None
        assert response.headers.get("x-ratelimit-remaining") == "5", name
        assert response.headers.get_list("x-ratelimit-remaining") == ["5"], name
        assert response.headers["x-from-limits"] == "yes" and response.headers["x-from-tracing"], name
        assert response.headers.get_list("x-request-id") != ["hijacked"], name
        assert len(response.headers.get_list("x-request-id")) == 1, name
    assert [responses[n].status_code for n in ("unauthenticated", "unknown model", "invalid body")] == [401, 404, 400]
    assert responses["upstream error"].status_code == 503
    assert responses["stream"].headers["x-from-tracing"] == "chat.completions"
    assert responses["ok"].headers["x-key"] == "static:0"
    assert responses["unauthenticated"].headers["x-key"] == "anonymous"
    assert responses["models"].headers["x-from-tracing"] == "models"
    assert responses["models"].headers["x-key"] == "static:0"


# -- upstream attempts -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_upstream_attempt_events_frame_each_upstream_call(make_gateway, upstream, mode: str, caplog):
    fake, _ = upstream
    events: list[tuple[Any, ...]] = []

    def attempt(ctx: RequestContext, provider: Provider) -> None:
        assert ctx.route is not None and ctx.route.provider is provider
        events.append(("attempt", provider.name, len(ctx.attempts), ctx.route.upstream_model))

    def headers(ctx: RequestContext) -> dict[str, str]:
        events.append(("headers", len(ctx.attempts)))
        return {"x-attempt": str(len(ctx.attempts) + 1)}

    def done(ctx: RequestContext, attempt: Attempt) -> None:
        assert ctx.attempts[-1] is attempt
        events.append(("done", attempt.provider, attempt.upstream_model, attempt.status_code, attempt.error))

    def broken(ctx: RequestContext) -> None:
        raise RuntimeError("the tracer is down")

    gw = make_gateway(config(upstream[1]), plugins=(
        plugin(mode, upstream_attempt=attempt, upstream_headers=headers, upstream_attempt_done=done),
        plugin(mode, upstream_attempt=broken, upstream_attempt_done=broken),  # runs first; isolated
    ))
    fake.handler = fake.json_reply(ANSWER)
    with caplog.at_level(logging.ERROR, logger="compatgate"):
        assert chat(gw.url).status_code == 200
        fake.handler = fake.json_reply({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
        assert chat(gw.url).status_code == 503
        assert chat(gw.url, model="nope").status_code == 404  # never goes upstream
        gw.records(3)
    assert events == [
        ("attempt", "up", 0, "gpt-4o-2024-08-06"), ("headers", 0), ("done", "up", "gpt-4o-2024-08-06", 200, None),
        ("attempt", "up", 0, "gpt-4o-2024-08-06"), ("headers", 0),
        ("done", "up", "gpt-4o-2024-08-06", 503, "overloaded"),
    ]
    assert [r.headers["x-attempt"] for r in fake.received] == ["1", "1"]
    failures = [r for r in caplog.records if "upstream_attempt" in r.getMessage()]
    assert len(failures) == 4 and all("the tracer is down" in str(r.exc_info[1]) for r in failures)


# -- record_usage ----------------------------------------------------------------------------


def test_failing_record_usage_does_not_stop_the_others(make_gateway, upstream, caplog):
    fake, _ = upstream
    later: list[str] = []

    def explode(record: UsageRecord) -> None:
        raise RuntimeError("the usage database is down")

    def keep(record: UsageRecord) -> None:
        later.append(record.request_id)

    # Call order: the async failure, the sync failure, `keep`, then UsageLog (registered first).
    gw = make_gateway(config(upstream[1]), plugins=(plugin("sync", record_usage=keep),
                                                     plugin("sync", record_usage=explode),
                                                     plugin("async", record_usage=explode)))
    fake.handler = fake.json_reply(ANSWER)
    with caplog.at_level(logging.ERROR, logger="compatgate"):
        result = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert result.choices[0].message.content == "Hi."
        fake.handler = fake.sse_reply(RECORDINGS[0].read_bytes())
        response, raw = sse(gw.url, {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
        assert response.status_code == 200 and payloads(raw)[-1] == b"[DONE]"
        refused = chat(gw.url, key="sk-wrong")
        assert refused.status_code == 401
        records = gw.records(3)
    assert [r.outcome for r in records] == ["ok", "ok", "error"]
    assert later == [r.request_id for r in records]
    failures = [r for r in caplog.records if "record_usage hook" in r.getMessage()]
    assert len(failures) == 6 and all("the usage database is down" in str(r.exc_info[1]) for r in failures)


# -- life cycle ------------------------------------------------------------------------------


def test_startup_and_shutdown_hooks_are_awaited(upstream):
    events: list[str] = []

    class Pool:
        def __init__(self, gateway: Gateway) -> None:
            self.gateway = gateway

        @hookimpl
        async def startup(self, gateway: Gateway) -> None:
            assert gateway is self.gateway
            # Providers start before the startup hooks: the upstream pool is open.
            assert gateway.providers["up"]._transport is not None
            await asyncio.sleep(0.01)
            events.append("async startup")

        @hookimpl
        async def shutdown(self, gateway: Gateway) -> None:
            await asyncio.sleep(0.01)
            events.append("async shutdown")

    def broken_shutdown() -> None:
        events.append("sync shutdown")
        raise RuntimeError("closing failed")  # logged; the others still run

    sync = plugin("sync", startup=lambda: events.append("sync startup"), shutdown=broken_shutdown)
    gateway = Gateway(config(upstream[1]), plugins=[Pool, sync])

    async def main() -> None:
        async with gateway.lifespan():
            assert events == ["sync startup", "async startup"]
            await gateway.startup()  # once only
            assert events == ["sync startup", "async startup"]
        assert events[2:] == ["sync shutdown", "async shutdown"]
        assert gateway.providers["up"]._transport is None

    asyncio.run(asyncio.wait_for(main(), 10))


def test_startup_failure_stops_the_start(upstream):
    def startup() -> None:
        raise RuntimeError("no database")

    gateway = Gateway(config(upstream[1]), plugins=[plugin("sync", startup=startup)])

    async def main() -> None:
        with pytest.raises(RuntimeError, match="no database"):
            async with gateway.lifespan():
                pytest.fail("the gateway started")

    asyncio.run(asyncio.wait_for(main(), 10))


def test_served_gateway_runs_its_lifespan(upstream):
    events: list[str] = []
    life = plugin("async", startup=lambda: events.append("startup"), shutdown=lambda: events.append("shutdown"))
    gateway = Gateway(config(upstream[1]), plugins=[life])
    with serve(gateway) as url:
        assert events == ["startup"]  # before any request
        assert httpx2.get(f"{url}/models", headers=AUTH, timeout=10).status_code == 200
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


# -- list_models -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_list_models_contributions_are_merged(make_gateway, upstream, mode: str, openai_schema: OpenAISchema):
    def catalogue(gateway: Gateway, principal: Principal) -> list[dict[str, Any]]:
        return [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "catalogue"},
            {"id": "fine-tuned:v1", "created": 1700000000, "owned_by": "acme"},
            {"id": "secret-model", "owned_by": "acme"},
        ]

    def extras(principal: Principal) -> list[dict[str, Any]]:
        return [{"id": "fine-tuned:v1", "owned_by": "duplicate"}, {"id": "bare-model"}]

    def restrict(api_key: str | None) -> Principal | None:
        if api_key == "sk-limited":
            return Principal("limited", allowed_models=("gpt-*", "fine-tuned:*", "bare-model"))
        return None

    # Call order: restrict (no list_models), catalogue, extras, then the built-in [[models]].
    gw = make_gateway(config(upstream[1]), plugins=(plugin(mode, list_models=extras),
                                                     plugin(mode, list_models=catalogue),
                                                     plugin(mode, authenticate=restrict)))
    response = httpx2.get(f"{gw.url}/models", headers=AUTH, timeout=10)
    body = response.json()
    openai_schema.validate("ListModelsResponse", body)
    for entry in body["data"]:
        openai_schema.validate("Model", entry)
    models = {m["id"]: m for m in body["data"]}
    assert [m["id"] for m in body["data"]] == [
        "gpt-4o", "fine-tuned:v1", "secret-model", "bare-model", "text-embedding-3-small", "gpt-3.5-turbo-instruct"
    ]
    assert models["gpt-4o"]["owned_by"] == "catalogue"  # the first entry for an id wins
    assert models["fine-tuned:v1"] == {"id": "fine-tuned:v1", "object": "model", "created": 1700000000,
                                       "owned_by": "acme"}
    assert models["bare-model"] == {"id": "bare-model", "object": "model", "created": 0, "owned_by": "system"}
    limited = gw.client(key="sk-limited")
    assert [m.id for m in limited.models.list().data] == [
        "gpt-4o", "fine-tuned:v1", "bare-model", "gpt-3.5-turbo-instruct"
    ]
    assert limited.models.retrieve("fine-tuned:v1").owned_by == "acme"
    with pytest.raises(openai.NotFoundError):
        limited.models.retrieve("secret-model")


# -- register_providers / register_routes ----------------------------------------------------


class EchoProvider(Provider):
    """A third-party provider: answers with the last user message, after its ``prefix``."""

    type = "echo"
    options = {"prefix": str}

    async def chat_completions(self, ctx: RequestContext, body: dict[str, Any]) -> Reply | AsyncIterator[Chunk]:
        text = self.option("prefix", "") + body["messages"][-1]["content"]
        head = {"id": "chatcmpl-echo", "created": 1727346172, "model": body["model"]}
        if body.get("stream"):
            return self._stream(head, text)
        choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                  "logprobs": None, "finish_reason": "stop"}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return Reply({**head, "object": "chat.completion", "choices": [choice], "usage": usage})

    async def _stream(self, head: dict[str, Any], text: str) -> AsyncIterator[Chunk]:
        for word in re.findall(r"\s*\S+", text):
            choice = {"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}
            yield Chunk({**head, "object": "chat.completion.chunk", "choices": [choice]})
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
        yield Chunk({**head, "object": "chat.completion.chunk", "choices": [choice]})


class EchoPlugin:
    def __init__(self, gateway: Gateway) -> None:
        pass

    @hookimpl
    def register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(EchoProvider)


ECHO = {
    "gateway": {"api_keys": [CLIENT_KEY], "load_entrypoints": False},
    "providers": {"talkback": {"type": "echo", "prefix": "echo: "}},
    "models": [{"name": "echo-1", "provider": "talkback", "upstream_model": "echo-v1"}],
}


def test_third_party_provider(make_gateway, openai_schema: OpenAISchema):
    gw = make_gateway(ECHO, plugins=(EchoPlugin,))
    assert isinstance(gw.gateway.providers["talkback"], EchoProvider)
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(model="echo-1", messages=MESSAGES)
    openai_schema.validate("CreateChatCompletionResponse", raw.http_response.json())
    assert raw.parse().choices[0].message.content == "echo: Hello?"
    assert raw.parse().model == "echo-v1"
    stream = client.chat.completions.create(model="echo-1", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "echo: Hello?"
    with pytest.raises(openai.NotFoundError) as info:  # a method the provider does not implement
        client.embeddings.create(model="echo-1", input="x")
    assert info.value.code == "unsupported_endpoint"
    assert [(m.id, m.owned_by) for m in client.models.list().data] == [("echo-1", "talkback")]
    records = gw.records(3)
    assert [(r.provider, r.upstream_model, r.outcome) for r in records] == [
        ("talkback", "echo-v1", "ok"), ("talkback", "echo-v1", "ok"), ("talkback", "echo-v1", "error")
    ]


def test_provider_registration_is_checked(upstream):
    from compatgate import ConfigError

    with pytest.raises(ConfigError, match="echo"):  # no plugin serves the type
        Gateway(ECHO)

    class NotAProvider:
        type = "echo"

    class Untyped(Provider):
        pass

    for wrong in (NotAProvider, Untyped, "echo"):
        bad = plugin("sync", register_providers=lambda register, wrong=wrong: register(wrong))
        with pytest.raises(TypeError, match="register_providers"):
            Gateway(config(upstream[1]), plugins=[bad])


def test_plugin_can_replace_a_builtin_provider_type(make_gateway, upstream):
    class Canned(Provider):
        type = "openai"  # takes over every type = "openai" table of the configuration
        async def chat_completions(self, ctx: RequestContext, body: dict[str, Any]) -> Reply:
            return Reply({**ANSWER, "model": f"canned-{body['model']}"})

    replace = plugin("sync", register_providers=lambda register: register(Canned))
    gw = make_gateway(config(upstream[1]), plugins=(replace,))
    assert gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES).model == "canned-gpt-4o-2024-08-06"
    assert upstream[0].received == []


def test_register_routes(upstream):
    class Admin:
        def __init__(self, gateway: Gateway) -> None:
            self.gateway = gateway

        @hookimpl
        def register_routes(self, gateway: Gateway, register: Callable[[BaseRoute], None]) -> None:
            async def status(request: Request) -> JSONResponse:
                return JSONResponse({"providers": sorted(gateway.providers), "path": request.url.path})

            async def models(request: Request) -> JSONResponse:
                return JSONResponse({"object": "list", "data": [], "overridden": True})

            register(Route("/admin/status", status))
            register(Route("/models", models))  # plugin routes are matched first

    gateway = Gateway(config(upstream[1]), plugins=[Admin])
    from starlette.applications import Starlette
    from starlette.routing import Mount

    with serve(Starlette(routes=[Mount("/v1", gateway)])) as url:
        status = httpx2.get(f"{url}/v1/admin/status", timeout=10)
        assert status.status_code == 200
        assert status.json() == {"providers": ["up"], "path": "/v1/admin/status"}
        assert httpx2.get(f"{url}/v1/models", timeout=10).json()["overridden"] is True
        assert httpx2.get(f"{url}/v1/models/gpt-4o", headers=AUTH, timeout=10).json()["id"] == "gpt-4o"
        assert httpx2.get(f"{url}/v1/admin/other", timeout=10).status_code == 404


# -- x-request-id ----------------------------------------------------------------------------


def test_request_id_is_echoed_and_recorded(make_gateway, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(ANSWER)
    seen: list[str] = []
    remember = plugin("sync", transform_request=lambda ctx: seen.append(ctx.request_id))
    gw = make_gateway(config(upstream[1]), plugins=(remember,))
    client = gw.client()

    mine = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": "trace-42:abc"}
    )
    assert mine.headers["x-request-id"] == "trace-42:abc"
    assert fake.received[-1].headers["x-request-id"] == "trace-42:abc"  # passed upstream too

    generated = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    new_id = generated.headers["x-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{32}", new_id)

    another = chat(gw.url).headers["x-request-id"]
    assert another != new_id and another.startswith("req_")
    invalid = httpx2.post(f"{gw.url}/chat/completions", headers={**AUTH, "x-request-id": "no spaces allowed"},
                          json={"model": "gpt-4o", "messages": MESSAGES}, timeout=10)
    replaced = invalid.headers["x-request-id"]  # not a sane token: replaced by a new id
    assert replaced.startswith("req_") and replaced not in (new_id, another)

    fake.handler = fake.sse_reply(RECORDINGS[0].read_bytes())
    streamed, _ = sse(gw.url, {"model": "gpt-4o", "messages": MESSAGES, "stream": True},
                      headers={"x-request-id": "stream-7"})
    assert streamed.headers["x-request-id"] == "stream-7"
    refused = httpx2.get(f"{gw.url}/models", headers={"x-request-id": "models-1"}, timeout=10)
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "models-1"

    records = gw.records(5)
    assert [r.request_id for r in records] == ["trace-42:abc", new_id, another, replaced, "stream-7"]
    assert seen == [r.request_id for r in records]


def test_usage_log_sees_only_api_requests(gw: Served):
    """/models is not an upstream request: it is not recorded."""
    assert isinstance(gw.usage, UsageLog)
    assert httpx2.get(f"{gw.url}/models", headers=AUTH, timeout=10).status_code == 200
    assert httpx2.get(f"{gw.url}/nothing-here", timeout=10).status_code == 404
    assert chat(gw.url, key="sk-wrong").status_code == 401
    assert [r.status_code for r in gw.records(1)] == [401]
