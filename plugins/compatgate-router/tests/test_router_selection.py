"""Selection among a group's deployments: weighted random (statistically, with a fixed seed),
least in flight, lowest recent latency, ordered."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.types import Send

from router_support import Served, chunk, group, ok_reply, slow, sse

from compatgate import ModelConfig, Provider, ProviderConfig, Route
from compatgate.testing import FakeUpstream, Received
from compatgate_router import Stats, Target, order

Upstreams = dict[str, tuple[FakeUpstream, str]]


def target(name: str, weight: float) -> Target:
    provider = Provider(ProviderConfig(name=name, type="fake"))
    return Target(f"{name}/m", provider, Route(provider, "m", ModelConfig("g", name, "m")), weight)


def test_weighted_order_follows_the_weights():
    targets = [target("a", 1), target("b", 2), target("c", 7)]
    rng = random.Random(1234)
    firsts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    draws = 20000
    for _ in range(draws):
        ordered = order(targets, "weighted", Stats(), rng)
        assert sorted(t.key for t in ordered) == ["a/m", "b/m", "c/m"]
        firsts[ordered[0].provider.name] += 1
        if ordered[0].provider.name == "c":
            seconds[ordered[1].provider.name] += 1
    for name, share in (("a", 0.1), ("b", 0.2), ("c", 0.7)):
        assert abs(firsts[name] / draws - share) < 0.02, firsts
    # After c, the rest is chosen by weight among a and b: 1/3 and 2/3.
    assert abs(seconds["b"] / sum(seconds.values()) - 2 / 3) < 0.03, seconds


def test_other_strategies_order():
    a, b, c = target("a", 1), target("b", 1), target("c", 100)
    stats = Stats()
    rng = random.Random(5)
    assert order([a, b, c], "ordered", stats, rng) == [a, b, c]
    stats.started("c/m"), stats.started("c/m"), stats.started("a/m")
    assert order([a, b, c], "least_in_flight", stats, rng) == [b, a, c]
    stats.ended("c/m"), stats.ended("c/m"), stats.ended("a/m")
    assert stats.in_flight == {}
    stats.measured("a/m", 300.0), stats.measured("b/m", 20.0)
    assert order([a, b, c], "lowest_latency", stats, rng)[:2] == [c, b]  # c: never measured
    stats.measured("b/m", 1020.0)  # the average moves by 30 % of the new sample
    assert stats.latency_ms["b/m"] == pytest.approx(320.0)
    stats.measured("c/m", 1000.0)
    assert order([a, b, c], "lowest_latency", stats, rng) == [a, b, c]


def test_weighted_selection_through_the_gateway(make_gateway: Callable[..., Served], upstreams: Upstreams):
    for name in ("primary", "backup"):
        upstreams[name][0].handler = ok_reply(name)
    table = {"seed": 42, "groups": {"gpt-4o": {"deployments": [
        {"provider": "primary", "upstream_model": "p", "weight": 3},
        {"provider": "backup", "upstream_model": "b", "weight": 1},
    ]}}}
    gw = make_gateway(table)
    count = 200
    with ThreadPoolExecutor(4) as pool:
        providers = list(pool.map(lambda _: gw.chat().headers["x-compatgate-provider"], range(count)))
    tally = Counter(providers)
    assert tally["primary"] + tally["backup"] == count
    assert 120 <= tally["primary"] <= 180, tally  # 150 expected (a 3:1 split), sd ~6
    assert len(upstreams["primary"][0].received) == tally["primary"]


def test_least_in_flight_avoids_the_busy_deployment(make_gateway: Callable[..., Served], upstreams: Upstreams):
    release = threading.Event()

    def handler(fake: FakeUpstream) -> Callable[[Received, Send], object]:
        async def answer(request: Received, send: Send) -> None:
            if not request.json.get("stream"):
                await ok_reply()(request, send)
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            await send({"type": "http.response.body", "body": chunk("busy"), "more_body": True})
            deadline = time.monotonic() + 5
            while not release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": chunk(finish="stop") + b"data: [DONE]\n\n"})

        return answer

    for name in ("primary", "backup"):
        fake = upstreams[name][0]
        fake.handler = handler(fake)
    gw = make_gateway({"strategy": "least_in_flight", "groups": {"gpt-4o": group("primary", "backup")}})
    stream = gw.client().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True)
    busy = stream.headers["x-compatgate-provider"]
    chunks = stream.parse()
    next(iter(chunks))  # the stream is in flight
    try:
        others = {gw.chat().headers["x-compatgate-provider"] for _ in range(6)}
        assert others == {"primary", "backup"} - {busy}
    finally:
        release.set()
        list(chunks)
    assert gw.router.stats.in_flight == {}


def test_lowest_latency_prefers_the_fast_deployment(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = slow(primary, 0.2, ok_reply("slow"))
    backup.handler = ok_reply("fast")
    gw = make_gateway({"strategy": "lowest_latency", "groups": {"gpt-4o": group("primary", "backup")}})
    answers = [gw.chat().headers["x-compatgate-provider"] for _ in range(10)]
    # The first two requests measure both (a deployment never measured goes first); then the fast one.
    assert sorted(answers[:2]) == ["backup", "primary"] and answers[2:] == ["backup"] * 8
    latency = gw.router.stats.latency_ms
    assert latency["primary/primary-model"] > 150 > latency["backup/backup-model"]


def test_streams_count_in_flight_until_they_end(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary = upstreams["primary"][0]
    primary.handler = primary.sse_reply(sse(["a", "b"]), delay=0.05)
    gw = make_gateway({"groups": {"gpt-4o": group("primary")}})
    stream = gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                                 stream=True)
    next(iter(stream))
    assert gw.router.stats.in_flight == {"primary/primary-model": 1}
    list(stream)
    deadline = time.monotonic() + 2
    while gw.router.stats.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gw.router.stats.in_flight == {}
