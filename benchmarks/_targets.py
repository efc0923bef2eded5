"""What run.py measures: the scenarios, the settings, and the targets (direct upstream, floor
relays, compatgate variants, LiteLLM) with how each is started for each phase."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from _configs import (
    CONV_MODEL,
    CONV_UPSTREAM_MODEL,
    HOLD_CONNECTIONS,
    CacheCheck,
    PluginCheck,
    billing_key,
    billing_redis_toml,
    cache_toml,
    litellm_yaml,
    openai_passthrough_toml,
)
from _measure import API_KEY, BenchError, Process, wait_ready

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SLOW_CONTENT_CHUNKS = 60  # what upstream.py streams on its slow port, 5 ms apart

MESSAGES: list[dict[str, object]] = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Write one sentence about network latency."},
]
CHAT_REQUEST: dict[str, object] = {
    "model": "gpt-4o",
    "messages": MESSAGES,
    "temperature": 0.2,
    "max_tokens": 64,
}
SSE_REQUEST = {**CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
CONV_REQUEST = {**SSE_REQUEST, "model": CONV_MODEL}
MESSAGES_REQUEST: dict[str, object] = {  # what the anthropic plugin sends for CONV_REQUEST
    "model": CONV_UPSTREAM_MODEL,
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Write one sentence about network latency."}],
        }
    ],
    "system": [{"type": "text", "text": "You are a concise assistant."}],
    "temperature": 0.2,
    "max_tokens": 64,
    "stream": True,
}
# Anthropic's Messages API, served by the gateway (POST /messages): the same turn.
ANTHROPIC_REQUEST: dict[str, object] = {
    "max_tokens": 64,
    "system": "You are a concise assistant.",
    "messages": [{"role": "user", "content": "Write one sentence about network latency."}],
    "temperature": 0.2,
    "stream": True,
}
MSG_REQUEST = {**ANTHROPIC_REQUEST, "model": "gpt-4o"}  # converted to the OpenAI-type upstream
MSG_UPSTREAM_REQUEST: dict[str, object] = {  # what the gateway sends the upstream for it
    "model": "gpt-4o",
    "messages": MESSAGES,
    "max_completion_tokens": 64,
    "stream": True,
    "stream_options": {"include_usage": True},
    "temperature": 0.2,
}
MSGN_REQUEST = {**ANTHROPIC_REQUEST, "model": CONV_MODEL}  # relayed to the Anthropic upstream
MSGN_UPSTREAM_REQUEST = {**ANTHROPIC_REQUEST, "model": CONV_UPSTREAM_MODEL}
EMBEDDINGS_REQUEST: dict[str, object] = {
    "model": "text-embedding-3-small",
    "input": "The quick brown fox.",
}


def _body(request: dict[str, object]) -> bytes:
    return json.dumps(request, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Request:
    check: str  # what _measure.validate expects
    path: str  # after the base URL (which ends in /v1)
    body: bytes


@dataclass(frozen=True)
class Scenario:
    prefix: str  # metric key prefix in _report.METRICS
    request: Request  # what floors, gateways and LiteLLM are sent
    direct: Request | None = None  # what the direct upstream is sent instead
    relayed: bool = True  # False: a floor cannot serve it (floors relay, they do not convert)

    def request_for(self, kind: str) -> Request | None:
        if kind == "direct":
            return self.direct or self.request
        return self.request if self.relayed or kind != "floor" else None


CHAT = Scenario("chat", Request("chat", "/chat/completions", _body(CHAT_REQUEST)))
SSE = Scenario("sse", Request("sse", "/chat/completions", _body(SSE_REQUEST)))
CONV = Scenario(
    "conv",
    Request("sse-conv", "/chat/completions", _body(CONV_REQUEST)),
    direct=Request("messages-sse", "/messages", _body(MESSAGES_REQUEST)),
    relayed=False,
)
EMBEDDINGS = Scenario("emb", Request("embeddings", "/embeddings", _body(EMBEDDINGS_REQUEST)))
# POST /messages (Anthropic's API, served by the gateway): converted to the OpenAI-type upstream
# (direct: the chat stream the gateway sends it), and relayed to the Anthropic-type upstream
# (direct: the same body at the upstream's /v1/messages; a floor relays it as well).
MSG = Scenario(
    "msg",
    Request("messages-sse", "/messages", _body(MSG_REQUEST)),
    direct=Request("sse", "/chat/completions", _body(MSG_UPSTREAM_REQUEST)),
    relayed=False,
)
MSGN = Scenario(
    "msgn",
    Request("messages-sse", "/messages", _body(MSGN_REQUEST)),
    direct=Request("messages-sse", "/messages", _body(MSGN_UPSTREAM_REQUEST)),
)
SCENARIOS = (CHAT, SSE, CONV, EMBEDDINGS, MSG, MSGN)
STREAMED = (SSE, CONV, MSG, MSGN)  # timed against the slow upstream; keys ttft_ms, conv_ttft_ms...


@dataclass(frozen=True)
class Settings:
    warmup_s: int  # per scenario, 8 connections
    latency_s: int  # per scenario, 1 connection
    throughput_s: int  # per scenario, 64 connections
    streams: int  # slow-upstream streams timed by the SSE probe, per streamed scenario
    soak_requests: int  # requests served in all (fast phase + soak) before the last RSS
    soak_max_s: int  # the soak stops there, short of soak_requests, for slow targets
    held_streams: int  # concurrent open streams for the memory-per-stream phase
    throughput_connections: int = 64


FULL = Settings(warmup_s=3, latency_s=10, throughput_s=10, streams=60,
                soak_requests=100_000, soak_max_s=75, held_streams=1000)  # fmt: skip
QUICK = Settings(warmup_s=1, latency_s=2, throughput_s=2, streams=10,
                 soak_requests=10_000, soak_max_s=15, held_streams=1000)  # fmt: skip

Phase = Literal["fast", "slow", "hold"]  # which upstream port the target is started against


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    api_key: str = API_KEY
    check: PluginCheck | CacheCheck | None = None
    vary: bool = False  # every request a new one (the cache-miss row)
    vary_streams: bool = False


# (port, upstream base URL ending in /v1, scratch directory, phase) -> how to start a server
Launcher = Callable[[int, str, Path, Phase], Launch]


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "direct" | "floor" | "gateway" | "litellm"
    launch: Launcher | None  # None: the upstream itself
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 30.0


def floor_target(name: str, file: str) -> Target:
    def launch(port: int, upstream: str, _: Path, phase: Phase) -> Launch:
        script = str(BENCH_DIR / "floors" / file)
        argv = [sys.executable, script, "--port", str(port), "--upstream", upstream]
        pool = {"BENCH_POOL_SIZE": str(HOLD_CONNECTIONS)} if phase == "hold" else {}
        return Launch(argv, env=pool)

    return Target(name, "floor", launch)


FLOORS = (
    floor_target("httpx", "httpx_floor.py"),
    floor_target("httpx2", "httpx2_floor.py"),
    floor_target("httpx2-aiohttp", "httpx2_aiohttp_floor.py"),
    floor_target("aiohttp", "aiohttp_floor.py"),
)

# (upstream, upstream pool size or None for the default, scratch directory) -> compatgate TOML
ConfigRenderer = Callable[[str, int | None, Path], str]
# (config file, scratch directory) -> (API key to send, check of the variant's plugins)
VariantSetup = Callable[[Path, Path], tuple[str, PluginCheck | CacheCheck | None]]


@dataclass(frozen=True)
class GatewayVariant:
    """A named compatgate configuration; add entries to GATEWAY_VARIANTS for more rows."""

    name: str
    render_config: ConfigRenderer
    setup: VariantSetup | None = None
    vary: bool = False  # send varied requests (each a cache miss)
    vary_streams: bool = False  # time varied streams in the slow phase (misses, recorded)


RATE_LIMIT_PREFIX = f"compatgate-bench:{os.getpid()}"  # fresh Redis counters for every run


def _billing_database(scratch: Path) -> Path:
    return scratch / "billing.db"


def _billing_config(upstream: str, pool: int | None, scratch: Path) -> str:
    return billing_redis_toml(upstream, pool, _billing_database(scratch), RATE_LIMIT_PREFIX)


def _billing_setup(config: Path, scratch: Path) -> tuple[str, PluginCheck | CacheCheck | None]:
    database = _billing_database(scratch)
    return billing_key(config, database, REPO_ROOT), PluginCheck(database)


GATEWAY_VARIANTS = (
    GatewayVariant("compatgate", lambda upstream, pool, _: openai_passthrough_toml(upstream, pool)),
    GatewayVariant("compatgate+billing+redis", _billing_config, _billing_setup),
    # compatgate-cache in memory: every measured request repeats one, so each is a hit...
    # (the slow phase times streams that miss and are recorded: a hit replays at once)
    GatewayVariant("compatgate+cache", lambda upstream, pool, _: cache_toml(upstream, pool),
                   lambda config, scratch: (API_KEY, CacheCheck(vary=False)), vary_streams=True),
    # ...or carries a "seed" no request had before, so each is a miss (recorded and stored)
    GatewayVariant("compatgate+cache-miss", lambda upstream, pool, _: cache_toml(upstream, pool),
                   lambda config, scratch: (API_KEY, CacheCheck(vary=True)), vary=True,
                   vary_streams=True),
)  # fmt: skip


def gateway_target(variant: GatewayVariant) -> Target:
    def launch(port: int, upstream: str, scratch: Path, phase: Phase) -> Launch:
        config = scratch / f"{variant.name}-{port}.toml"
        pool = HOLD_CONNECTIONS if phase == "hold" else None
        config.write_text(variant.render_config(upstream, pool, scratch))
        serve = ["compatgate", "serve", "--config", str(config), "--log-level", "warning"]
        argv = ["uv", "run", *serve, "--host", "127.0.0.1", "--port", str(port)]
        if variant.setup is None:
            return Launch(argv)
        api_key, check = variant.setup(config, scratch)
        return Launch(argv, api_key=api_key, check=check, vary=variant.vary,
                      vary_streams=variant.vary_streams)  # fmt: skip

    return Target(variant.name, "gateway", launch, ready_timeout_s=180.0)


def litellm_target(binary: str) -> Target:
    def launch(port: int, upstream: str, scratch: Path, _: Phase) -> Launch:
        config = scratch / f"litellm-{port}.yaml"
        config.write_text(litellm_yaml(upstream))
        return Launch([binary, "--config", str(config), "--host", "127.0.0.1", "--port",
                       str(port), "--num_workers", "1"])  # fmt: skip

    env = {"LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_LOG": "ERROR"}  # fmt: skip
    return Target("litellm", "litellm", launch, env=env, ready_timeout_s=180.0)


def find_litellm(explicit: str | None) -> str | None:
    candidates = [explicit, os.environ.get("LITELLM_BIN"), shutil.which("litellm"),
                  str(Path.home() / ".local" / "bin" / "litellm")]  # fmt: skip
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Session:
    base_url: str  # ends in /v1
    port: int
    process: Process | None
    api_key: str = API_KEY
    check: PluginCheck | CacheCheck | None = None
    vary: bool = False
    vary_streams: bool = False


class StartError(BenchError):
    pass


@contextlib.contextmanager
def running(
    target: Target, upstream: str, scratch: Path, pin: list[str], phase: Phase
) -> Iterator[Session]:
    """Start `target` against `upstream` (pinned with `pin`), wait until it answers, stop it."""
    if target.launch is None:
        port = int(upstream.rsplit(":", 1)[1].split("/")[0])
        yield Session(upstream, port, None)
        return
    port = free_port()
    launch = target.launch(port, upstream, scratch, phase)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(target.env)
    env.update(launch.env)
    log = scratch / f"{target.name}-{phase}-{port}.log"
    process = Process.start([*pin, *launch.argv], log, REPO_ROOT, env)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        try:
            wait_ready(base + CHAT.request.path, CHAT.request.body, target.ready_timeout_s,
                       process, launch.api_key)  # fmt: skip
        except BenchError as error:
            raise StartError(str(error)) from error
        yield Session(base, port, process, launch.api_key, launch.check, launch.vary, launch.vary_streams)
    finally:
        process.stop()
