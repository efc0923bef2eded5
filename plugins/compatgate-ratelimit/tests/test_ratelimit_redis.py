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
from compatgate_ratelimit import Plan, Pool, RedisBackend, Window
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
        assert backend.client is not None
        sent: list[bytes] = []
        connection = await backend.client.connection_pool.get_connection()
        original = connection.send_packed_command

        async def spy(command: Any, check_health: bool = True) -> None:
            parts = command if isinstance(command, list) else [command]
            sent.append(b"".join(bytes(p) for p in parts))
            await original(command, check_health)

        connection.send_packed_command = spy  # type: ignore[method-assign]
        await backend.client.connection_pool.release(connection)
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
