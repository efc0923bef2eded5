"""How much the rate limiter costs: ``uv run python plugins/compatgate-ratelimit/scripts/bench_admission.py``.

1. Backend operations: an admission checking 5 windows and 2 pools in 3 scopes (key rpm, tpm
   and concurrency; model rpm; provider tpm and concurrency), then its settlement, on the memory
   backend and on Redis (one EVALSHA each): latency sequentially, and admissions per second with
   64 concurrent callers.
2. Whole requests: chat completions through a ``compatgate serve`` process (the fake upstream in
   another process), with the plugin installed but not configured, with the memory backend and
   with Redis: latency one at a time, and throughput with 32 concurrent clients.

Loopback only; needs the Redis server of ``COMPATGATE_TEST_REDIS_URL`` (default
redis://127.0.0.1:6379/0). Its keys use a random prefix and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import redis
from compatgate_ratelimit import (
    Backend,
    Correction,
    MemoryBackend,
    Plan,
    Pool,
    RedisBackend,
    Window,
)

from compatgate.testing import FakeUpstream

REDIS_URL = os.environ.get("COMPATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BIG = 10**12


def plan(i: int) -> Plan:
    key = f"key:k{i % 100}"
    return Plan(
        (
            Window(f"{key}:rpm", "rpm", key, BIG, 60_000, 1, 1),
            Window(f"{key}:tpm", "tpm", key, BIG, 60_000, 1, 500),
            Window("model:gpt-4o:rpm", "rpm", "model gpt-4o", BIG, 60_000, 1, 1),
            Window("provider:up:tpm", "tpm", "provider up", BIG, 60_000, 1, 500),
            Window(f"{key}:tpd", "tpd", key, BIG, 86_400_000, 60_000, 500),
        ),
        (Pool(f"{key}:concurrency", key, BIG), Pool("provider:up:concurrency", "provider up", BIG)),
    )


def summary(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples) * 1e6
    p99 = samples[int(len(samples) * 0.99) - 1] * 1e6
    return f"p50 {p50:7.1f} µs   p99 {p99:7.1f} µs"


async def backend_numbers(name: str, backend: Backend, count: int) -> None:
    await backend.start()
    admits, settles = [], []
    for i in range(count):
        p = plan(i)
        started = time.perf_counter()
        decision = await backend.admit(p, f"l{i}", 30_000)
        admitted = time.perf_counter()
        corrections = [
            Correction(w, decision.now_ms, -400) for w in p.windows if w.kind == "tokens"
        ]
        await backend.settle(corrections, [pool.key for pool in p.pools], f"l{i}")
        settles.append(time.perf_counter() - admitted)
        admits.append(admitted - started)
    print(f"{name:6} admit  (5 windows, 2 pools): {summary(admits)}")
    print(f"{name:6} settle (3 corrections, 2 leases): {summary(settles)}")

    gate = asyncio.Semaphore(64)

    async def two(i: int) -> None:
        async with gate:
            p = plan(i)
            decision = await backend.admit(p, f"c{i}", 30_000)
            corrections = [
                Correction(w, decision.now_ms, -400) for w in p.windows if w.kind == "tokens"
            ]
            await backend.settle(corrections, [pool.key for pool in p.pools], f"c{i}")

    started = time.perf_counter()
    await asyncio.gather(*(two(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    print(f"{name:6} admit+settle pairs/s with 64 concurrent callers: {count / elapsed:,.0f}")
    await backend.close()


ANSWER = {
    "id": "c",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}
BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Hello there."}],
    "max_tokens": 50,
}


def serve_upstream(port: int) -> None:
    """The fake upstream, in its own process (``--serve-upstream PORT``)."""
    import uvicorn

    fake = FakeUpstream()
    fake.handler = fake.json_reply(ANSWER)
    uvicorn.run(fake, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


class GatewayProcess:
    """One ``compatgate serve`` process in front of the fake upstream."""

    def __init__(self, label: str, upstream_port: int, table: dict[str, Any] | None) -> None:
        self.label = label
        lines = [
            "[gateway]",
            'api_keys = ["sk-bench"]',
            "[providers.up]",
            'type = "openai"',
            f'base_url = "http://127.0.0.1:{upstream_port}/v1"',
            'api_key = "x"',
            "[[models]]",
            'name = "gpt-4o"',
            'provider = "up"',
        ]
        if table is not None:
            lines.append("[plugins.ratelimit]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as file:
            file.write("\n".join(lines) + "\n")
        self.config = file.name
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        cli = Path(sys.executable).with_name("compatgate")
        self.process = subprocess.Popen(
            [
                str(cli),
                "serve",
                "--config",
                self.config,
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
        )
        self.samples: list[float] = []
        self.rates: list[float] = []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        os.unlink(self.config)


def sequential(client: httpx2.Client, gateway: GatewayProcess, count: int) -> None:
    for _ in range(count):
        started = time.perf_counter()
        response = client.post(f"{gateway.url}/v1/chat/completions", json=BODY)
        gateway.samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text


async def burst(gateway: GatewayProcess, count: int) -> None:
    gate = asyncio.Semaphore(32)
    limits = httpx2.Limits(max_connections=32)
    async with httpx2.AsyncClient(
        headers={"authorization": "Bearer sk-bench"}, timeout=10, limits=limits
    ) as client:

        async def one() -> None:
            async with gate:
                response = await client.post(f"{gateway.url}/v1/chat/completions", json=BODY)
                assert response.status_code == 200, response.text

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        gateway.rates.append(count / (time.perf_counter() - started))


def request_numbers(upstream_port: int, prefix: str, count: int) -> None:
    """The three gateways measured in turns (100 requests each per turn), so that whatever else
    loads the machine weighs on all three alike."""
    limits = {"rpm": BIG, "tpm": BIG, "concurrency": 1000}
    gateways = [
        GatewayProcess("plugin not configured", upstream_port, None),
        GatewayProcess("memory backend", upstream_port, {"backend": "memory", **limits}),
        GatewayProcess(
            "redis backend",
            upstream_port,
            {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix, **limits},
        ),
    ]
    try:
        for gateway in gateways:
            wait_ready(f"{gateway.url}/health", gateway.process)
        with httpx2.Client(headers={"authorization": "Bearer sk-bench"}, timeout=10) as client:
            for gateway in gateways:
                sequential(client, gateway, 100)  # warm up
                gateway.samples.clear()
            for _ in range(max(1, count // 100)):
                for gateway in gateways:
                    sequential(client, gateway, 100)
        for _ in range(5):
            for gateway in gateways:
                asyncio.run(burst(gateway, 400))
    finally:
        for gateway in gateways:
            gateway.stop()
    base = gateways[0]
    for gateway in gateways:
        rate = statistics.median(gateway.rates)
        print(
            f"request {gateway.label:22} {summary(gateway.samples)}   {rate:6,.0f} req/s at 32 concurrent"
        )
    for gateway in gateways[1:]:
        added = (statistics.median(gateway.samples) - statistics.median(base.samples)) * 1e6
        ratio = statistics.median(gateway.rates) / statistics.median(base.rates) - 1
        print(f"{gateway.label}: {added:+.0f} µs per request (p50), throughput {ratio:+.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    prefix = f"compatgate-bench:{uuid.uuid4().hex}"
    upstream_port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(upstream_port)])
    try:
        asyncio.run(backend_numbers("memory", MemoryBackend(), args.operations))
        asyncio.run(
            backend_numbers("redis", RedisBackend(REDIS_URL, key_prefix=prefix), args.operations)
        )
        wait_ready(f"http://127.0.0.1:{upstream_port}/", upstream)
        request_numbers(upstream_port, prefix, args.requests)
    finally:
        upstream.terminate()
        upstream.wait(10)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{{{prefix}}}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
