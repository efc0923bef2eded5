"""Redis across processes: two ``compatgate serve`` processes share one limit exactly; the leases
of a killed process expire; and Redis going away mid-run follows ``on_backend_error``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
import redis
from compatgate_ratelimit import BackendUnavailable, Plan, Pool, RedisBackend, Window
from ratelimit_processes import GatewayProcess, TcpProxy, toml
from ratelimit_support import CHAT, KEYS, chat_answer, fire, gateway_config, slow_reply, statuses

from compatgate.testing import FakeUpstream


@pytest.fixture
def processes(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> Iterator[Callable[..., list[GatewayProcess]]]:
    """``start(count, table)``: gateway processes serving one configuration, started together."""
    started: list[GatewayProcess] = []

    def start(count: int, table: dict[str, Any]) -> list[GatewayProcess]:
        path = tmp_path / "compatgate.toml"
        path.write_text(toml(gateway_config(upstream[1], table)))
        new = [
            GatewayProcess(path, tmp_path / f"gateway-{len(started) + i}.log") for i in range(count)
        ]
        started.extend(new)
        for process in new:
            process.wait_ready()
        return new

    yield start
    for process in started:
        process.stop()


def test_two_processes_share_fifty_requests_per_minute(redis_url, key_prefix, upstream, processes):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    gateways = processes(
        2, {"backend": "redis", "redis_url": redis_url, "key_prefix": key_prefix, "rpm": 50}
    )
    responses = asyncio.run(fire([g.url for g in gateways], 120, concurrency=24))
    assert statuses(responses) == {200: 50, 429: 70}
    assert len(fake.received) == 50
    ok = [r for r in responses if r.status_code == 200]
    # Both processes admitted requests, and each admission saw a distinct count.
    assert {str(r.url).split("/v1")[0] for r in ok} == {g.url.split("/v1")[0] for g in gateways}
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(50))
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limit_exceeded"
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_leases_of_a_killed_process_expire(redis_url, key_prefix, upstream, processes):
    fake, _ = upstream
    fake.handler = slow_reply(fake, 8.0)
    table = {
        "backend": "redis",
        "redis_url": redis_url,
        "key_prefix": key_prefix,
        "concurrency": 2,
        "lease_seconds": 2,
    }
    doomed, survivor = processes(2, table)

    def hold() -> None:
        try:
            httpx2.post(
                f"{doomed.url}/chat/completions",
                json=CHAT,
                headers={"authorization": f"Bearer {KEYS[0]}"},
                timeout=10,
            )
        except httpx2.TransportError:
            pass  # the process is killed under it

    holders = [threading.Thread(target=hold, daemon=True) for _ in range(2)]
    for thread in holders:
        thread.start()
    deadline = time.monotonic() + 10
    while fake.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.in_flight == 2

    def attempt() -> httpx2.Response:
        return httpx2.post(
            f"{survivor.url}/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {KEYS[0]}"},
            timeout=10,
        )

    fake.handler = fake.json_reply(chat_answer())
    time.sleep(2.5)  # longer than a lease: the living process renews its leases
    assert attempt().status_code == 429
    doomed.kill()
    killed = time.monotonic()
    while time.monotonic() - killed < 6:
        response = attempt()
        if response.status_code == 200:
            break
        assert (
            response.status_code == 429
            and "Concurrency limit" in response.json()["error"]["message"]
        )
        time.sleep(0.1)
    waited = time.monotonic() - killed
    assert response.status_code == 200, "the killed process's leases never expired"
    # Renewed every 2/3 s, each lease had 1.33 to 2 s left when the process died.
    assert 1.0 <= waited <= 3.5, waited


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    target = urlsplit(redis_url)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 6379))
    proxy.start()
    yield proxy
    proxy.close()


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_redis_going_away_follows_the_policy(
    policy, proxy, key_prefix, upstream, make_gateway, caplog
):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    caplog.set_level(logging.WARNING, logger="compatgate.ratelimit")
    served = make_gateway(
        {
            "backend": "redis",
            "redis_url": proxy.url(),
            "key_prefix": key_prefix,
            "on_backend_error": policy,
            "rpm": 2,
            "redis_timeout": 0.5,
            "backend_retry_seconds": 0.3,
        }
    )
    assert [served.post().status_code for _ in range(3)] == [200, 200, 429]

    proxy.stop()  # Redis "goes away": connections cut, new ones refused
    during = [served.post() for _ in range(3)]
    for response in during:
        assert response.status_code != 500
        if policy == "open":
            assert response.status_code == 200
            assert "x-ratelimit-remaining-requests" not in response.headers
        else:
            assert response.status_code == 503
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("server_error", "rate_limiter_unavailable")
            assert response.headers["retry-after"] == "1"
    assert len(fake.received) == (5 if policy == "open" else 2)
    warnings = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and f"failing {policy}" in warnings[0]

    proxy.start()  # back: the limit is still the one Redis kept
    time.sleep(0.4)
    back = served.post()
    assert back.status_code == 429 and back.headers["x-ratelimit-remaining-requests"] == "0"
    assert any("is back" in r.getMessage() for r in caplog.records)


def test_redis_unreachable_at_start_up_is_not_fatal(proxy, key_prefix, upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    proxy.stop()
    served = make_gateway(
        {
            "backend": "redis",
            "redis_url": proxy.url(),
            "key_prefix": key_prefix,
            "on_backend_error": "closed",
            "rpm": 1,
            "redis_timeout": 0.5,
            "backend_retry_seconds": 0.2,
        }
    )
    assert served.post().status_code == 503
    proxy.start()
    time.sleep(0.3)
    assert [served.post().status_code for _ in range(2)] == [200, 429]


def test_one_admission_is_one_round_trip(redis_url, key_prefix):
    """Every window and pool of a request in one EVALSHA, whatever the number of scopes."""

    async def main() -> list[bytes]:
        backend = RedisBackend(redis_url, key_prefix=key_prefix)
        await backend.start()
        assert backend.connections is not None
        sent: list[bytes] = []
        connection = await backend.connections.acquire()
        original = connection.send_packed_command

        async def spy(command: Any, check_health: bool = True) -> None:
            parts = [command] if isinstance(command, bytes | str) else list(command)
            sent.append(b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in parts))
            await original(command, check_health)

        connection.send_packed_command = spy  # type: ignore[method-assign]
        backend.connections.release(connection)
        plan = Plan(
            tuple(
                Window(f"{s}:rpm", "rpm", s, 10, 60_000, 1, 1)
                for s in ("key:a", "model:m", "provider:p")
            ),
            tuple(Pool(f"{s}:concurrency", s, 3) for s in ("key:a", "model:m")),
        )
        decision = await backend.admit(plan, "lease-1", 5000)
        assert decision.admitted
        await backend.close()
        return sent

    sent = asyncio.run(main())
    assert len(sent) == 1 and b"EVALSHA" in sent[0]


@pytest.mark.parametrize(
    ("policy", "pool", "size"),
    [
        ("open", {}, 512),  # the default pool: no call waits
        ("closed", {"redis_max_connections": 8}, 8),  # most calls wait for a connection
        ("open", {"query": "?max_connections=8"}, 8),  # the URL's max_connections wins
    ],
    ids=["default-pool", "small-pool", "pool-from-url"],
)
def test_a_burst_beyond_the_connection_pool_waits_for_a_connection(
    policy, pool, size, redis_url, key_prefix, upstream, make_gateway, caplog
):
    """300 requests at once, each admitted while the upstream answers slowly: far more
    concurrent Redis calls than redis-py's default pool of 100 connections (or than a small
    configured pool). They wait for a connection instead of being taken for Redis being down
    (which failed open, or answered 503), and the limit stays exact."""
    fake, _ = upstream
    peak = [0]
    fake.handler = slow_reply(fake, 1.0, peak=peak)
    caplog.set_level(logging.WARNING, logger="compatgate.ratelimit")
    settings = {k: v for k, v in pool.items() if k != "query"}
    served = make_gateway(
        {
            "backend": "redis",
            "redis_url": redis_url + pool.get("query", ""),
            "key_prefix": key_prefix,
            "on_backend_error": policy,
            "rpm": 250,
            "tpm": 10_000_000,
            "concurrency": 1000,
            "redis_timeout": 3.0,
            **settings,
        }
    )
    responses = asyncio.run(fire([served.url], 300, concurrency=300, timeout=30.0))
    assert statuses(responses) == {200: 250, 429: 50}
    assert len(fake.received) == 250
    assert peak[0] > 100, peak  # the admitted requests really overlapped
    ok = [r for r in responses if r.status_code == 200]
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(250))
    for response in responses:
        if response.status_code == 429:
            message = response.json()["error"]["message"]
            assert "requests per min (RPM): Limit 250, Used 250" in message
    assert not [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    backend = served.limiter.backend
    assert backend is not None and backend.max_connections == size
    # Every settlement went through too: no lease is left to expire, every token corrected.
    client = redis.Redis.from_url(redis_url)
    try:
        tag = "{" + key_prefix + "}"
        assert client.zcard(f"{tag}:key:static:0:concurrency:c") == 0
        assert int(client.hget(f"{tag}:key:static:0:tpm:h", "sum")) == 250 * 15
    finally:
        client.close()


def test_the_wait_for_a_free_connection_is_bounded(redis_url, key_prefix):
    """With every connection busy for longer than ``timeout``, a call fails (the policy then
    applies) instead of waiting forever; once one is free again, calls go through."""

    async def main() -> None:
        backend = RedisBackend(redis_url, key_prefix=key_prefix, timeout=0.2, max_connections=1)
        await backend.start()
        assert backend.connections is not None
        plan = Plan((Window("key:a:rpm", "rpm", "key a", 10, 60_000, 1, 1),))
        held = await backend.connections.acquire()  # the only connection, busy
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="no free connection"):
            await backend.admit(plan, "lease-1", 5000)
        assert 0.3 <= time.monotonic() - started < 1.5  # 0.2 s, then once more
        waiting = asyncio.ensure_future(backend.admit(plan, "lease-2", 5000))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        backend.connections.release(held)  # handed to the waiting call
        assert (await waiting).admitted
        await backend.close()

    asyncio.run(main())


def test_a_script_redis_forgot_is_loaded_again(redis_url, key_prefix, monkeypatch):
    """``NOSCRIPT`` (Redis restarted, or ``SCRIPT FLUSH``): the script is loaded and the call
    goes through, still one call for the caller. (A variant of the script stands for a
    forgotten one, so that the test flushes nothing that other clients of this Redis use.)"""
    import hashlib
    import uuid

    from compatgate_ratelimit import lua

    async def main() -> None:
        backend = RedisBackend(redis_url, key_prefix=key_prefix)
        await backend.start()
        variant = lua.ADMIT + f"\n-- {uuid.uuid4().hex}\n"
        monkeypatch.setattr(lua, "ADMIT", variant)
        sha = hashlib.sha1(variant.encode()).hexdigest().encode()
        backend._heads["ADMIT"] = b"$7\r\nEVALSHA\r\n$40\r\n" + sha + b"\r\n"
        plan = Plan((Window("key:a:rpm", "rpm", "key a", 10, 60_000, 1, 1),))
        assert client.script_exists(sha.decode()) == [False]
        decision = await backend.admit(plan, "lease-1", 5000)
        assert decision.admitted and decision.windows[0].used == 1
        assert client.script_exists(sha.decode()) == [True]
        await backend.close()

    client = redis.Redis.from_url(redis_url)
    try:
        asyncio.run(main())
    finally:
        client.close()


def test_concurrent_calls_share_round_trips(redis_url, key_prefix):
    """Calls made while a batch is out go together in the next one: 50 concurrent admissions
    take a few writes, not 50, and each still sees its own count (the script runs once per
    admission, atomically)."""

    async def main() -> tuple[list[int], int]:
        backend = RedisBackend(redis_url, key_prefix=key_prefix, max_connections=1)
        await backend.start()
        assert backend.connections is not None
        writes = 0
        connection = await backend.connections.acquire()
        original = connection.send_packed_command

        async def spy(command: Any, check_health: bool = True) -> None:
            nonlocal writes
            writes += 1
            await original(command, check_health)

        connection.send_packed_command = spy  # type: ignore[method-assign]
        backend.connections.release(connection)
        plan = Plan((Window("key:a:rpm", "rpm", "key a", 40, 60_000, 1, 1),))
        decisions = await asyncio.gather(
            *(backend.admit(plan, f"lease-{i}", 5000) for i in range(50))
        )
        await backend.close()
        assert sum(d.admitted for d in decisions) == 40
        return sorted(d.windows[0].used for d in decisions if d.admitted), writes

    used, writes = asyncio.run(main())
    assert used == list(range(1, 41))
    assert writes <= 5, writes


def test_readiness_follows_redis(proxy, key_prefix, make_gateway):
    served = make_gateway({"backend": "redis", "redis_url": proxy.url(), "key_prefix": key_prefix,
                           "rpm": 10, "redis_timeout": 0.3})
    ready = httpx2.get(f"{served.url}/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"] == {"gateway": "ok", "ratelimit": "ok"}
    proxy.stop()
    down = httpx2.get(f"{served.url}/health/ready", timeout=10)
    assert down.status_code == 503 and down.json()["checks"]["ratelimit"] == "Redis unreachable"
    assert proxy.url().rsplit(":", 1)[1].split("/")[0] not in down.text  # no address
    proxy.start()
    deadline = time.monotonic() + 10
    while httpx2.get(f"{served.url}/health/ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "still not ready once Redis is back"
        time.sleep(0.1)
