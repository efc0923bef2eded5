"""Two gateway processes (``compatgate serve``, each its own process) share one Redis cache:
what one stored, the other serves, streams included; a purge through one empties both."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis
from cache_support import ADMIN_KEY, KEYS, TEXT, cache_status, chunks, compatgate_cli, config, events, free_port, toml

BASE = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}


class Process:
    def __init__(self, config_path: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log.open("wb")
        self.log_path = log
        self.popen = subprocess.Popen(
            [compatgate_cli(), "serve", "--config", str(config_path), "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, self.log_path.read_text()
            try:
                if httpx2.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"the gateway did not start: {self.log_path.read_text()}")

    def post(self, body: dict, **headers: str) -> httpx2.Response:
        headers = {"authorization": f"Bearer {KEYS[0]}", **headers}
        return httpx2.post(f"{self.url}/chat/completions", json=body, headers=headers, timeout=10)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self.log.close()


@pytest.fixture
def processes(upstream, redis_url, key_prefix, tmp_path) -> Iterator[tuple[Process, Process]]:
    table = config(upstream[1], {"backend": "redis", "redis_url": redis_url, "key_prefix": key_prefix,
                                 "admin_key": ADMIN_KEY})  # fmt: skip
    path = tmp_path / "compatgate.toml"
    path.write_text(toml(table))
    started = [Process(path, tmp_path / f"gateway-{i}.log") for i in range(2)]
    try:
        for process in started:
            process.wait_ready()
        yield started[0], started[1]
    finally:
        for process in started:
            process.stop()


def entries(redis_url: str, prefix: str) -> int:
    with redis.Redis.from_url(redis_url) as client:
        return len(list(client.scan_iter(match=f"{prefix}:*")))


def wait_for_entries(redis_url: str, prefix: str, count: int) -> None:
    """A stream's entry is written right after its last chunk, in the background."""
    deadline = time.monotonic() + 5
    while entries(redis_url, prefix) < count:
        assert time.monotonic() < deadline, "the entry was never written"
        time.sleep(0.02)


def test_two_processes_share_the_redis_cache(processes, upstream, redis_url, key_prefix):
    one, two = processes
    assert cache_status(one.post(BASE)) == "miss"
    hit = two.post(BASE)
    assert cache_status(hit) == "hit" and hit.json()["choices"][0]["finish_reason"] == "stop"
    assert len(upstream[0].received) == 1
    streamed = {**BASE, "stream": True, "seed": 1}
    assert cache_status(two.post(streamed)) == "miss"
    wait_for_entries(redis_url, key_prefix, 2)
    replay = one.post(streamed)
    assert cache_status(replay) == "hit"
    assert events(replay.content)[:-1] == [e for e in events(TEXT) if e != b"[DONE]" and b'"usage":{' not in e]
    assert chunks(replay.content)[-1]["choices"][0]["finish_reason"] == "stop"
    assert len(upstream[0].received) == 2
    purged = httpx2.post(f"{one.url}/admin/cache/purge", json={"all": True},
                         headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)  # fmt: skip
    assert purged.json()["deleted"] == 2 and purged.json()["shared"] is True
    assert cache_status(two.post(BASE)) == "miss"


def test_a_stream_cut_in_one_process_is_not_served_by_the_other(processes, upstream, redis_url, key_prefix):
    from cache_support import answering

    one, two = processes
    answering(upstream[0], TEXT[: len(TEXT) // 2], then="reset")
    body = {**BASE, "stream": True}
    assert b"[DONE]" not in one.post(body).content
    time.sleep(0.3)  # give a (wrong) background write every chance to land
    assert entries(redis_url, key_prefix) == 0
    answering(upstream[0])
    assert cache_status(two.post(body)) == "miss"
