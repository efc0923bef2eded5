"""Multi-process mode: ``compatgate serve --workers 2`` with PROMETHEUS_MULTIPROC_DIR, in a real
subprocess; a scrape (served by either worker) aggregates what both workers counted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import openai
import pytest
from prometheus_support import CLIENT_KEY, MESSAGES, UPSTREAM_KEY, answer, scrape, value

from compatgate.testing import FakeUpstream, serve

TOKEN = "mp-scrape-token"
BATCH = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[FakeUpstream, str, Path]]:
    """A fake upstream, and ``compatgate serve --workers 2`` in front of it."""
    fake = FakeUpstream()
    reply = fake.json_reply(answer(prompt=5, completion=2))

    async def slow(request, send):  # overlapping requests let the kernel spread connections
        await asyncio.sleep(0.05)
        await reply(request, send)

    fake.handler = slow
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    with serve(fake) as upstream_url:
        config = tmp_path / "compatgate.toml"
        config.write_text(
            f'[gateway]\napi_keys = ["{CLIENT_KEY}"]\n'
            f'[providers.up]\ntype = "openai"\nbase_url = "{upstream_url}/v1"\napi_key = "{UPSTREAM_KEY}"\n'
            f'[[models]]\nname = "gpt-4o"\nprovider = "up"\n'
            f'[plugins.prometheus]\npath = "/metrics"\ntoken = "{TOKEN}"\n'
        )
        port = free_port()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
        process = subprocess.Popen(
            [sys.executable, "-m", "compatgate", "serve", "--config", str(config), "--port", str(port),
             "--workers", "2", "--log-level", "warning"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, process.communicate()[0].decode(errors="replace")
                try:
                    if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                assert time.monotonic() < deadline, "compatgate serve --workers 2 did not start"
                time.sleep(0.1)
            yield fake, url, multiproc
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def chat(url: str) -> None:
    with openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{url}/v1", max_retries=0, timeout=10) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def writer_pids(directory: Path) -> set[str]:
    """The processes that wrote a counter to the multi-process directory."""
    return {m.group(1) for f in directory.iterdir() if (m := re.fullmatch(r"counter_(\d+)\.db", f.name))}


def test_two_workers_aggregate(workers):
    fake, url, directory = workers
    sent = 0
    with ThreadPoolExecutor(BATCH) as pool:
        for _ in range(25):  # until both workers served some (bounded)
            list(pool.map(chat, [url] * BATCH))
            sent += BATCH
            if len(writer_pids(directory)) >= 2:
                break
    assert len(writer_pids(directory)) == 2, "the requests never reached both workers"
    for _ in range(4):  # whichever worker answers the scrape, it sees every process's counts
        s = scrape(f"{url}/v1/metrics", TOKEN)
        assert value(s, "compatgate_requests_total", model="gpt-4o", provider="up", status="200", outcome="ok") == sent
        assert value(s, "compatgate_tokens_total", kind="prompt", estimated="false") == 5 * sent
        assert value(s, "compatgate_tokens_total", kind="completion", estimated="false") == 2 * sent
        assert value(s, "compatgate_request_duration_seconds_count") == sent
        assert value(s, "compatgate_upstream_latency_seconds_count", provider="up") == sent
        assert value(s, "compatgate_requests_in_flight") == 0
    assert len(fake.received) == sent
    assert httpx2.get(f"{url}/v1/metrics").status_code == 401
