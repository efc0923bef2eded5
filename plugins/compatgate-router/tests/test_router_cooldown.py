"""Cooldown: a deployment that keeps failing is skipped, then probed and re-admitted — in one
process, and shared between two gateways through Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
import redis

from router_support import Served, closed_port, error_reply, group, ok_reply

from compatgate.testing import FakeUpstream, OpenAISchema
from compatgate_router import CooldownPolicy, MemoryHealth, RedisHealth

Upstreams = dict[str, tuple[FakeUpstream, str]]
COOLDOWN = {"failures": 2, "window": 10, "seconds": 0.6}


def table(cooldown: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"strategy": "ordered", "retry": {"backoff_base": 0.01, "backoff_max": 0.02},
            "cooldown": cooldown, "groups": {"gpt-4o": group("primary", "backup")}, **extra}


def answered_by(gw: Served) -> tuple[str, str]:
    response = gw.chat()
    return response.headers["x-compatgate-provider"], response.headers["x-compatgate-attempts"]


def test_cooldown_skips_then_readmits_a_deployment(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(500, "primary is down")
    backup.handler = ok_reply()
    gw = make_gateway(table(COOLDOWN))
    assert answered_by(gw) == ("backup", "2")
    assert answered_by(gw) == ("backup", "2")  # the second failure opens the circuit
    assert len(primary.received) == 2
    for _ in range(3):
        assert answered_by(gw) == ("backup", "1")  # skipped while cooling down
    assert len(primary.received) == 2
    time.sleep(0.7)
    primary.handler = ok_reply()
    assert answered_by(gw) == ("primary", "1")  # the probe
    assert answered_by(gw) == ("primary", "1")  # closed again
    assert len(primary.received) == 4


def test_a_failed_probe_cools_the_deployment_again(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(503)
    backup.handler = ok_reply()
    gw = make_gateway(table(COOLDOWN))
    answered_by(gw), answered_by(gw)
    time.sleep(0.7)
    assert answered_by(gw) == ("backup", "2")  # the probe failed...
    assert len(primary.received) == 3
    assert answered_by(gw) == ("backup", "1")  # ...so it cools down again at once
    assert len(primary.received) == 3


def test_client_errors_do_not_cool_a_deployment(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary = upstreams["primary"][0]
    primary.handler = error_reply(400, "bad request")
    gw = make_gateway(table({"failures": 1, "seconds": 30}))
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            gw.chat()
    assert len(primary.received) == 3


def test_every_deployment_cooling_down_is_a_503(make_gateway: Callable[..., Served], upstreams: Upstreams,
                                                openai_schema: OpenAISchema):
    primary = upstreams["primary"][0]
    primary.handler = error_reply(500)
    gw = make_gateway(table({"failures": 1, "seconds": 5}, groups={"solo": group("primary")},
                            retry={"max_attempts": 1}))
    with pytest.raises(openai.InternalServerError):
        gw.chat("solo")
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        gw.chat("solo")
    assert time.monotonic() - started < 1
    openai_schema.validate("ErrorResponse", info.value.response.json())
    assert info.value.status_code == 503 and info.value.code == "no_deployment_available"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 5
    assert info.value.response.headers["x-compatgate-attempts"] == "0"
    assert len(primary.received) == 1
    record = gw.records(2)[1]
    assert record.status_code == 503 and record.attempts == ()


def test_a_cooling_group_falls_back(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, third = upstreams["primary"][0], upstreams["third"][0]
    primary.handler = error_reply(500)
    third.handler = ok_reply("Fallback.")
    groups = {"solo": group("primary", fallbacks=["plain-third"], fallback_on=["5xx"])}
    gw = make_gateway(table({"failures": 1, "seconds": 30}, groups=groups))
    assert gw.chat("solo").headers["x-compatgate-attempts"] == "2"
    response = gw.chat("solo")
    assert response.headers["x-compatgate-provider"] == "third"
    assert response.headers["x-compatgate-attempts"] == "1" and len(primary.received) == 1


def test_memory_circuit_states():
    now = [100.0]
    health = MemoryHealth(CooldownPolicy(failures=3, window=10, seconds=5), clock=lambda: now[0])

    async def scenario() -> None:
        key = "p/m"
        for _ in range(2):
            await health.failure(key)
        assert await health.state(key) == ("closed", 0.0, 2)
        now[0] += 11  # the window slid past them
        assert await health.state(key) == ("closed", 0.0, 0)
        await health.failure(key)
        assert (await health.admit(key)).allowed
        await health.failure(key)
        await health.failure(key)
        refused = await health.admit(key)
        assert not refused.allowed and refused.wait == pytest.approx(5)
        state = await health.state(key)
        assert state.state == "open" and state.retry_in == pytest.approx(5)
        now[0] += 5
        assert (await health.state(key)).state == "half-open"
        probe = await health.admit(key)
        assert probe.allowed and probe.probe
        assert not (await health.admit(key)).allowed  # one probe at a time
        await health.success(key)
        assert await health.admit(key) == (True, False, 0.0)
        assert health.circuits == {}
        assert await health.state(key) == ("closed", 0.0, 0)
        assert await health.state("never/used") == ("closed", 0.0, 0)

    asyncio.run(scenario())


def test_cooldown_is_shared_through_redis(make_gateway: Callable[..., Served], upstreams: Upstreams,
                                          redis_url: str, key_prefix: str):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(500, "primary is down")
    backup.handler = ok_reply()
    shared = table({"failures": 1, "window": 10, "seconds": 1.0}, redis_url=redis_url,
                   redis_key_prefix=key_prefix)
    first, second = make_gateway(shared), make_gateway(shared)
    assert answered_by(first) == ("backup", "2")  # opens the circuit, in Redis
    assert answered_by(second) == ("backup", "1")  # the other replica skips the deployment
    assert len(primary.received) == 1
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hget(f"{{{key_prefix}}}:primary/primary-model:c", "open")
    finally:
        client.close()
    time.sleep(1.1)
    primary.handler = ok_reply()
    assert answered_by(second) == ("primary", "1")  # the probe closes it for everyone
    assert answered_by(first) == ("primary", "1")
    assert len(primary.received) == 3


def test_redis_health_one_probe_between_replicas(redis_url: str, key_prefix: str):
    policy = CooldownPolicy(failures=2, window=10, seconds=0.3)

    async def scenario() -> None:
        one = RedisHealth(redis_url, policy, key_prefix=key_prefix, timeout=1.0)
        two = RedisHealth(redis_url, policy, key_prefix=key_prefix, timeout=1.0)
        await one.start(), await two.start()
        try:
            assert await one.state("p/m") == ("closed", 0.0, 0)
            await one.failure("p/m")
            assert await two.state("p/m") == ("closed", 0.0, 1)
            assert (await two.admit("p/m")).allowed
            await two.failure("p/m")
            refused = await one.admit("p/m")
            assert not refused.allowed and 0 < refused.wait <= 0.3
            state = await two.state("p/m")
            assert state.state == "open" and 0 < state.retry_in <= 0.3
            await asyncio.sleep(0.35)
            assert (await one.state("p/m")).state == "half-open"
            assert await one.admit("p/m") == (True, True, 0.0)
            assert not (await two.admit("p/m")).allowed  # the probe is running elsewhere
            await two.failure("p/m")  # the probe failed: open again
            assert not (await one.admit("p/m")).allowed
            await asyncio.sleep(0.35)
            assert (await two.admit("p/m")).probe
            await two.success("p/m")
            assert await one.admit("p/m") == (True, False, 0.0)
        finally:
            await one.close(), await two.close()

    asyncio.run(scenario())


def test_unreachable_redis_fails_open(make_gateway: Callable[..., Served], upstreams: Upstreams,
                                      caplog: pytest.LogCaptureFixture):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(500)
    backup.handler = ok_reply()
    down = table({"failures": 1, "seconds": 30}, redis_url=f"redis://user:hunter2@127.0.0.1:{closed_port()}/0",
                 redis_timeout=0.2)
    gw = make_gateway(down)
    with caplog.at_level(logging.WARNING, logger="compatgate.router"):
        for _ in range(3):
            started = time.monotonic()
            assert answered_by(gw) == ("backup", "2")  # no shared state: the primary is tried
            assert time.monotonic() - started < 2
    assert len(primary.received) == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "compatgate.router"]
    assert len(warnings) == 1 and "hunter2" not in warnings[0] and "***" in warnings[0]


def test_readiness_reports_the_shared_redis(make_gateway: Callable[..., Served], redis_url: str, key_prefix: str):
    with_redis = make_gateway(table(COOLDOWN, redis_url=redis_url, redis_key_prefix=key_prefix))
    ready = httpx2.get(f"{with_redis.url}/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"gateway": "ok", "router.redis": "ok"}
    in_memory = make_gateway(table(COOLDOWN))
    assert httpx2.get(f"{in_memory.url}/health/ready").json()["checks"] == {"gateway": "ok"}


def test_readiness_reports_an_unreachable_redis_without_its_address(make_gateway: Callable[..., Served]):
    port = closed_port()
    down = make_gateway(table(COOLDOWN, redis_url=f"redis://user:hunter2@127.0.0.1:{port}/0", redis_timeout=0.2))
    ready = httpx2.get(f"{down.url}/health/ready", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"]["router.redis"].startswith("unreachable (")
    assert "hunter2" not in ready.text and str(port) not in ready.text
