"""Gateways mounted inside host apps (FastAPI, Starlette), served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from support import CLIENT_KEY, FIXTURES, UsageLog, gateway_config

from compatgate import Gateway, RequestContext, hookimpl
from compatgate.testing import OpenAISchema, serve

MESSAGES = [{"role": "user", "content": "Hello?"}]
RECORDING = sorted((FIXTURES / "openai-sse").glob("*.bin"))[0].read_bytes()
ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1727346172, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi.", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


class Life:
    """Records the gateway's startup and shutdown hooks into ``events``."""

    events: list[str]

    def __init__(self, gateway: Gateway) -> None:
        self.events = []

    @hookimpl
    async def startup(self) -> None:
        self.events.append("gateway startup")

    @hookimpl
    def shutdown(self) -> None:
        self.events.append("gateway shutdown")


def plugin_of(gateway: Gateway, cls: type) -> Any:
    (found,) = [p for p in gateway.pm.get_plugins() if isinstance(p, cls)]
    return found


def sdk(base_url: str, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=10)


# -- observing the upstream connections ------------------------------------------------------
#
# Whether the gateway closed its upstream connections is read from the kernel's TCP table: the
# sockets whose remote end is the fake upstream's port (a fresh port per test, and only the
# gateway connects to it). A socket the gateway closed goes to FIN_WAIT/TIME_WAIT or is gone; a
# leaked one stays ESTABLISHED, or CLOSE_WAIT once the upstream's keep-alive timeout (uvicorn:
# 5 s) closed the other end, so "none is ESTABLISHED or CLOSE_WAIT" holds only when the gateway
# closed them, however long the test took. The check runs in the host app's lifespan, right
# after the gateway's shutdown, while the serving event loop still runs: once uvicorn's loop is
# closed, uvloop closes every leftover socket itself and a leak could no longer be seen (see
# test_connection_check_sees_a_leak). psutil is used when installed, /proc/net/tcp otherwise
# (Linux); without either, only the provider's client (None once closed) is checked.

_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
               "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
               "0B": "CLOSING"}
_OPEN = ("ESTABLISHED", "CLOSE_WAIT")


def sockets_to(port: int) -> dict[int, str] | None:
    """TCP sockets connected to 127.0.0.1:``port``: local port -> state; None if unobservable."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return {c.laddr.port: c.status for c in psutil.net_connections("tcp4") if c.raddr and c.raddr.port == port}
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    sockets = {}
    for line in lines:
        _, local, remote, state, *_ = line.split()
        if int(remote.rsplit(":", 1)[1], 16) == port:
            sockets[int(local.rsplit(":", 1)[1], 16)] = _TCP_STATES.get(state, state)
    return sockets


def open_sockets(port: int) -> set[int]:
    return {local for local, state in (sockets_to(port) or {}).items() if state in _OPEN}


async def still_open(port: int, opened: set[int], timeout: float = 3.0) -> set[int]:
    """The sockets of ``opened`` still open after up to ``timeout`` s (polled without blocking
    the event loop, which must run for the sockets to close)."""
    deadline = time.monotonic() + timeout
    while (left := opened & open_sockets(port)) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return left


class Watch:
    """What the test tells the host's lifespan (the upstream sockets open before the shutdown),
    and what the lifespan saw after the gateway's shutdown."""

    def __init__(self, upstream_url: str) -> None:
        self.port = int(upstream_url.rsplit(":", 1)[1])
        self.observable = sockets_to(self.port) is not None
        self.opened: set[int] = set()
        self.left: set[int] | None = None

    def take(self) -> None:
        """Note the open upstream sockets (call while serving, after some requests)."""
        self.opened = open_sockets(self.port)
        assert self.opened or not self.observable, "the gateway kept no upstream connection alive"

    async def after_shutdown(self, timeout: float = 3.0) -> None:
        self.left = await still_open(self.port, self.opened, timeout)


# -- FastAPI -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["composed", "direct"])
def test_fastapi_mount_with_lifespan(upstream, openai_schema: OpenAISchema, style: str):
    fake, url = upstream
    gateway = Gateway(gateway_config(url, load_entrypoints=False), plugins=[UsageLog, Life])
    events = plugin_of(gateway, Life).events
    watch = Watch(url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("host startup")
        async with gateway.lifespan():
            yield {"ready": True}
        await watch.after_shutdown()
        events.append("host shutdown")

    app = FastAPI(lifespan=lifespan if style == "composed" else gateway.lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/v1", gateway)
    provider = gateway.providers["up"]

    with serve(app) as base:
        # Started by the host's lifespan, before any request.
        assert events == (["host startup", "gateway startup"] if style == "composed" else ["gateway startup"])
        assert provider._transport is not None
        with sdk(f"{base}/v1") as client:
            fake.handler = fake.json_reply(ANSWER)
            assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == "Hi."
            assert fake.received[-1].path == "/v1/chat/completions"
            fake.handler = fake.sse_reply(RECORDING)
            chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
            assert chunks and chunks[-1].choices[0].finish_reason
            models = client.models.list()
            assert {m.id for m in models.data} == {"gpt-4o", "text-embedding-3-small", "gpt-3.5-turbo-instruct"}
            assert client.models.retrieve("gpt-4o").owned_by == "up"
        listed = httpx2.get(f"{base}/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=10)
        openai_schema.validate("ListModelsResponse", listed.json())
        assert httpx2.get(f"{base}/health", timeout=10).json() == {"status": "ok"}  # the host app still serves
        assert events.count("gateway startup") == 1
        assert [r.outcome for r in plugin_of(gateway, UsageLog).records] == ["ok", "ok"]
        watch.take()
    # The host app shut down: the gateway ran its shutdown hooks and closed its upstream pool...
    assert provider._transport is None
    if style == "direct":
        assert events[-1] == "gateway shutdown"
        return
    assert events[-2:] == ["gateway shutdown", "host shutdown"]
    # ...and the upstream connections were closed by then (observed in the host's lifespan).
    assert watch.left == set() or not watch.observable, f"still open: {watch.left}"


def test_fastapi_mount_without_lifespan_starts_lazily(upstream):
    fake, url = upstream
    gateway = Gateway(gateway_config(url, load_entrypoints=False), plugins=[Life])
    events = plugin_of(gateway, Life).events

    @asynccontextmanager
    async def close_only(app: FastAPI) -> AsyncIterator[None]:
        # No start here: the gateway starts on its first request. The host only closes it at
        # the end, or its upstream pool would stay open until the event loop is torn down.
        yield
        await gateway.aclose()

    app = FastAPI(lifespan=close_only)
    app.mount("/v1", gateway)  # a Mount does not run the sub-app's lifespan
    with serve(app) as base:
        assert events == [] and gateway.providers["up"]._transport is None
        with sdk(f"{base}/v1") as client:
            fake.handler = fake.json_reply(ANSWER)
            assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == "Hi."
            assert events == ["gateway startup"]
            fake.handler = fake.sse_reply(RECORDING)
            assert list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
            assert [m.id for m in client.models.list().data][0] == "gpt-4o"
        assert events == ["gateway startup"]  # once
    assert events == ["gateway startup", "gateway shutdown"] and gateway.providers["up"]._transport is None


# -- two gateways in one Starlette app -------------------------------------------------------


class TagA:
    """Gateway A's own plugin: sees its requests, adds a header."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.seen: list[str] = []

    @hookimpl
    def transform_request(self, ctx: RequestContext) -> None:
        assert ctx.gateway is self.gateway
        self.seen.append(ctx.request_id)

    @hookimpl
    def response_headers(self) -> dict[str, str]:
        return {"x-gateway": "a"}


class TagB:
    """Gateway B's own plugin, a different one."""

    def __init__(self, gateway: Gateway) -> None:
        self.seen: list[str] = []

    @hookimpl
    async def admit_request(self, ctx: RequestContext) -> None:
        self.seen.append(ctx.request_id)

    @hookimpl
    def response_headers(self) -> dict[str, str]:
        return {"x-gateway": "b"}


def side_config(url: str, name: str) -> dict[str, Any]:
    return {
        "gateway": {"api_keys": [f"sk-{name}"], "load_entrypoints": False},
        "providers": {"up": {"type": "openai", "base_url": f"{url}/{name}-upstream/v1", "api_key": f"sk-up-{name}"}},
        "models": [{"name": f"model-{name}", "provider": "up", "upstream_model": f"upstream-{name}"}],
    }


def test_two_gateways_in_one_app(upstream, openai_schema: OpenAISchema):
    fake, url = upstream
    fake.handler = fake.json_reply(ANSWER)
    gw_a = Gateway(side_config(url, "a"), plugins=[UsageLog, TagA])
    gw_b = Gateway(side_config(url, "b"), plugins=[UsageLog, TagB])
    watch = Watch(url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gw_a.lifespan(), gw_b.lifespan():
            yield
        await watch.after_shutdown()

    app = Starlette(routes=[Mount("/a/v1", gw_a), Mount("/b/v1", gw_b)], lifespan=lifespan)

    # Each gateway has its own plugin manager and its own instances of the class plugins.
    plugins_a, plugins_b = gw_a.pm.get_plugins(), gw_b.pm.get_plugins()
    assert plugins_a != plugins_b
    assert plugin_of(gw_a, UsageLog) is not plugin_of(gw_b, UsageLog)
    assert not any(isinstance(p, TagB) for p in plugins_a) and not any(isinstance(p, TagA) for p in plugins_b)

    with serve(app) as base:
        with sdk(f"{base}/a/v1", "sk-a") as a, sdk(f"{base}/b/v1", "sk-b") as b:
            raw = a.chat.completions.with_raw_response.create(
                model="model-a", messages=MESSAGES, extra_headers={"x-request-id": "a-1"}
            )
            assert raw.headers["x-gateway"] == "a" and raw.parse().choices[0].message.content == "Hi."
            assert fake.received[-1].path == "/a-upstream/v1/chat/completions"
            assert fake.received[-1].json["model"] == "upstream-a"
            assert fake.received[-1].headers["authorization"] == "Bearer sk-up-a"
            raw = b.chat.completions.with_raw_response.create(
                model="model-b", messages=MESSAGES, extra_headers={"x-request-id": "b-1"}
            )
            assert raw.headers["x-gateway"] == "b"
            assert fake.received[-1].path == "/b-upstream/v1/chat/completions"
            assert [m.id for m in a.models.list().data] == ["model-a"]
            assert [m.id for m in b.models.list().data] == ["model-b"]

            # Each accepts only its own key...
            for client_url, key, rid in ((f"{base}/a/v1", "sk-b", "a-2"), (f"{base}/b/v1", "sk-a", "b-2")):
                with sdk(client_url, key) as wrong, pytest.raises(openai.AuthenticationError):
                    model = "model-a" if "/a/" in client_url else "model-b"
                    wrong.chat.completions.create(model=model, messages=MESSAGES, extra_headers={"x-request-id": rid})
            # ...and only its own models.
            with pytest.raises(openai.NotFoundError) as info:
                a.chat.completions.create(model="model-b", messages=MESSAGES, extra_headers={"x-request-id": "a-3"})
            assert info.value.code == "model_not_found"
            with pytest.raises(openai.NotFoundError):
                b.chat.completions.create(model="model-a", messages=MESSAGES, extra_headers={"x-request-id": "b-3"})
            with pytest.raises(openai.NotFoundError):
                b.models.retrieve("model-a")

        for prefix in ("/a/v1", "/b/v1"):
            missing = httpx2.get(f"{base}{prefix}/no/such/thing", timeout=10)
            assert missing.status_code == 404
            openai_schema.validate("ErrorResponse", missing.json())
            assert f"{prefix}/no/such/thing" in missing.json()["error"]["message"]
            assert missing.json()["error"]["code"] == "unknown_url"
        watch.take()
        assert len(watch.opened) >= 2 or not watch.observable  # one pool per gateway

    # Each plugin saw only its own gateway's requests.
    assert plugin_of(gw_a, TagA).seen == ["a-1"]  # refused requests never reach transform_request
    assert plugin_of(gw_b, TagB).seen == ["b-1"]
    assert [r.request_id for r in plugin_of(gw_a, UsageLog).records] == ["a-1", "a-2", "a-3"]
    assert [r.request_id for r in plugin_of(gw_b, UsageLog).records] == ["b-1", "b-2", "b-3"]
    assert [r.status_code for r in plugin_of(gw_a, UsageLog).records] == [200, 401, 404]
    # Both were shut down with the host app, and their upstream connections closed.
    assert gw_a.providers["up"]._transport is None and gw_b.providers["up"]._transport is None
    assert watch.left == set() or not watch.observable, f"still open: {watch.left}"


def test_connection_check_sees_a_leak(upstream):
    """The observation can fail: a gateway that was started but not shut down still holds its
    upstream connection when the host app's lifespan ends."""
    fake, url = upstream
    watch = Watch(url)
    if not watch.observable:
        pytest.skip("no way to observe TCP sockets here")
    fake.handler = fake.json_reply(ANSWER)
    gateway = Gateway(gateway_config(url, load_entrypoints=False))

    @asynccontextmanager
    async def forgetful(app: Starlette) -> AsyncIterator[None]:
        await gateway.startup()
        yield
        await watch.after_shutdown(timeout=0.3)  # without closing the gateway first
        await gateway.aclose()  # then clean up

    with serve(Starlette(routes=[Mount("/v1", gateway)], lifespan=forgetful)) as base, sdk(f"{base}/v1") as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        watch.take()
    assert watch.left == watch.opened != set()
    assert gateway.providers["up"]._transport is None
