"""The configurations run.py starts targets with: compatgate TOML texts, LiteLLM's YAML, and the
check that the billing and rate-limit plugins of a variant really work on its requests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from _measure import BenchError, post

CONV_MODEL = "claude-bench"  # what clients ask for: routed to the anthropic provider
CONV_UPSTREAM_MODEL = "claude-sonnet-4-5"
HOLD_CONNECTIONS = 2048  # upstream pool size for the held-streams phase (1,000 streams)
REDIS_URL = os.environ.get("COMPATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BILLING_SECRET = "bench-billing-secret-0123456789"
BILLING_BUDGET = 1_000_000  # currency units: about 30 are spent per 100,000 requests


def openai_passthrough_toml(upstream: str, max_connections: int | None = None) -> str:
    """OpenAI models passed through to the upstream, plus `claude-bench` converted by the
    compatgate-anthropic plugin. `upstream` ends in /v1, so that plugin posts to
    {upstream}/messages, i.e. /v1/messages."""
    pool = "" if max_connections is None else f"max_connections = {max_connections}\n"
    return f"""[gateway]
api_keys = ["sk-bench"]

[providers.local]
type = "openai"
base_url = "{upstream}"
api_key = "sk-upstream"
{pool}
[providers.anth]
type = "anthropic"
base_url = "{upstream}"
api_key = "sk-upstream"
{pool}
[[models]]
name = "gpt-4o"
provider = "local"

[[models]]
name = "text-embedding-3-small"
provider = "local"

[[models]]
name = "{CONV_MODEL}"
provider = "anth"
upstream_model = "{CONV_UPSTREAM_MODEL}"
"""


def billing_redis_toml(
    upstream: str, max_connections: int | None, database: Path, key_prefix: str
) -> str:
    """The pass-through configuration plus compatgate-billing on SQLite (its default store) and
    compatgate-ratelimit on Redis, with limits and a budget that never refuse a request.
    The rate limiter's own Redis pool is left at its default, also for 1,000 open streams."""
    redis_url = REDIS_URL
    return (
        openai_passthrough_toml(upstream, max_connections)
        + f"""
[plugins.billing]
database = "sqlite:///{database}"
secret = "{BILLING_SECRET}"
unpriced = "refuse"      # a model without a price fails validation instead of going unbilled

[plugins.billing.prices."gpt-4o"]
input = 2.50
cached_input = 1.25
output = 10.00
max_tokens = 16384

[plugins.billing.prices."text-embedding-3-small"]
input = 0.02

[plugins.billing.prices."{CONV_MODEL}"]
input = 3.00
cached_input = 0.30
cache_write = 3.75
output = 15.00

[plugins.ratelimit]
backend = "redis"
redis_url = "{redis_url}"
key_prefix = "{key_prefix}"
on_backend_error = "closed"   # Redis away: 503s, so the run fails instead of measuring nothing
rpm = 100_000_000
tpm = 10_000_000_000
concurrency = 100_000
"""
    )


def cache_toml(upstream: str, max_connections: int | None) -> str:
    """The pass-through configuration plus compatgate-cache in memory for every request
    (``when = "always"``: the benchmark's requests sample at temperature 0.2), bounded at
    16 MiB so that a run of varied requests fills it and keeps evicting."""
    return openai_passthrough_toml(upstream, max_connections) + """
[plugins.cache]
backend = "memory"
when = "always"
max_bytes = 16777216
"""


def litellm_yaml(upstream: str) -> str:
    """OpenAI models through LiteLLM's openai provider, and `claude-bench` through its anthropic
    provider, which appends /v1/messages to an api_base that does not end with it."""
    entries = "".join(
        f"""  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}
      api_key: sk-upstream
"""
        for model in ("gpt-4o", "text-embedding-3-small")
    )
    entries += f"""  - model_name: {CONV_MODEL}
    litellm_params:
      model: anthropic/{CONV_UPSTREAM_MODEL}
      api_base: {upstream.removesuffix("/v1")}
      api_key: sk-upstream
"""
    return f"model_list:\n{entries}general_settings:\n  master_key: sk-bench\n"


_KEYS: dict[Path, str] = {}  # billing database -> the virtual key created in it


def billing_key(config: Path, database: Path, cwd: Path) -> str:
    """A virtual key with a budget that never runs out, created once per database through the
    plugin's CLI, so that requests take billing's whole path (lookup, reservation, ledger)."""
    if database not in _KEYS:
        argv = ["uv", "run", "compatgate", "keys", "create", "--config", str(config), "--json",
                "--name", "bench", "--budget", str(BILLING_BUDGET)]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"compatgate keys create failed: {done.stderr.strip()[-300:]}")
        _KEYS[database] = str(json.loads(done.stdout)["secret"])
    return _KEYS[database]


def ledger_rows(database: Path) -> int:
    """Rows of billing's ledger (`billing_usage`, one per request of a virtual key)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM billing_usage").fetchone()[0])


RATE_LIMIT_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-tokens")


@dataclass(frozen=True)
class PluginCheck:
    """Proof that billing and rate limiting act on a variant's requests (not inert plugins)."""

    database: Path
    redis: bool = True  # the row's plugins use Redis: its server's CPU is counted too

    def verify(self, url: str, body: bytes, api_key: str) -> dict[str, object]:
        """One request: it must carry the rate-limit headers (Redis admission worked) and add a
        ledger row within 5 s (billing authenticated the virtual key and settled it)."""
        before = ledger_rows(self.database)
        answer = post(url, body, api_key=api_key)
        missing = [name for name in RATE_LIMIT_HEADERS if name not in answer.headers]
        if answer.status != 200 or missing:
            raise BenchError(
                f"rate limiting not active: HTTP {answer.status}, missing headers {missing}: "
                f"{answer.body[:200]!r}"
            )
        deadline = time.monotonic() + 5
        while (rows := ledger_rows(self.database)) <= before:
            if time.monotonic() > deadline:
                raise BenchError(f"billing wrote no ledger row in 5 s ({rows} rows)")
            time.sleep(0.05)
        return {name: answer.headers[name] for name in RATE_LIMIT_HEADERS}


@dataclass(frozen=True)
class CacheCheck:
    """Proof that the cache acts on a variant's requests: a repeated chat request is a hit
    (``vary``: a varied one is a miss), by its ``x-compatgate-cache`` header."""

    vary: bool
    database: Path | None = None
    redis: bool = False

    def verify(self, url: str, body: bytes, api_key: str) -> dict[str, object]:
        from _measure import varied

        if self.vary:
            sent = [varied(body, -1 - i) for i in range(2)]
            expected = ["miss", "miss"]
        else:
            sent, expected = [body, body], ["hit", "hit"]  # validation already sent it once
        seen = [post(url, item, api_key=api_key).headers.get("x-compatgate-cache") for item in sent]
        if seen != expected:
            raise BenchError(f"cache not acting as expected: x-compatgate-cache {seen}, wanted {expected}")
        return {"x-compatgate-cache": seen}


def redis_pid() -> int | None:
    """The Redis server's process id (`INFO server`), to count its CPU; None if unknown."""
    parts = urllib.parse.urlsplit(REDIS_URL)
    if parts.scheme != "redis" or parts.hostname not in ("127.0.0.1", "localhost"):
        return None
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
    except OSError:
        return None
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            pid = int(line.split(":", 1)[1])
            return pid if os.path.exists(f"/proc/{pid}/stat") else None
    return None
