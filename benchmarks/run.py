"""One command: what the gateway adds over calling a fast local upstream directly.

    uv run --group bench python benchmarks/run.py [--quick] [--only NAME,...] [--litellm]

Starts benchmarks/upstream.py, then measures each target in turn (direct upstream, the floor
relays in benchmarks/floors/, the gateway configurations in GATEWAY_VARIANTS, optionally
LiteLLM): wrk at 1 and 64 connections, an SSE timing probe against a slow streaming upstream
and the server's RSS. This process, wrk and the upstream run on CPU core 0; every target runs
alone on core 1 (`taskset -c 1`). Prints one Markdown table with ratios vs direct and writes
benchmarks/results/latest.json (and latest.png when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _measure import (
    BenchError,
    Process,
    core_user_s,
    process_cpu_s,
    rss_mib,
    run_wrk,
    server_pid,
    stream_probe,
    validate,
    wait_ready,
)
from _report import TargetResult, compute_ratios, render_table, write_json, write_png

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SLOW_CONTENT_CHUNKS = 60  # what upstream.py streams on its slow port, 5 ms apart

CHAT_REQUEST: dict[str, object] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Write one sentence about network latency."},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
}
SSE_REQUEST = {**CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
EMBEDDINGS_REQUEST: dict[str, object] = {
    "model": "text-embedding-3-small",
    "input": "The quick brown fox.",
}


def _body(request: dict[str, object]) -> bytes:
    return json.dumps(request, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Scenario:
    name: str  # "chat" | "sse" | "embeddings", as understood by _measure.validate
    prefix: str  # metric key prefix in _report.METRICS
    path: str
    body: bytes


SCENARIOS = (
    Scenario("chat", "chat", "/chat/completions", _body(CHAT_REQUEST)),
    Scenario("sse", "sse", "/chat/completions", _body(SSE_REQUEST)),
    Scenario("embeddings", "emb", "/embeddings", _body(EMBEDDINGS_REQUEST)),
)
CHAT, SSE = SCENARIOS[0], SCENARIOS[1]


@dataclass(frozen=True)
class Settings:
    warmup_s: int  # per scenario, 8 connections
    latency_s: int  # per scenario, 1 connection
    throughput_s: int  # per scenario, 64 connections
    streams: int  # slow-upstream streams timed by the SSE probe
    throughput_connections: int = 64


FULL = Settings(warmup_s=3, latency_s=10, throughput_s=10, streams=100)
QUICK = Settings(warmup_s=1, latency_s=2, throughput_s=2, streams=10)

# (port, upstream base URL ending in /v1, scratch directory) -> argv of a server on 127.0.0.1
Launcher = Callable[[int, str, Path], list[str]]


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "direct" | "floor" | "gateway" | "litellm"
    launch: Launcher | None  # None: the upstream itself
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 30.0


def floor_target(name: str, file: str) -> Target:
    def launch(port: int, upstream: str, _: Path) -> list[str]:
        script = str(BENCH_DIR / "floors" / file)
        return [sys.executable, script, "--port", str(port), "--upstream", upstream]

    return Target(name, "floor", launch)


FLOORS = (
    floor_target("httpx", "httpx_floor.py"),
    floor_target("httpx2", "httpx2_floor.py"),
    floor_target("httpx2-aiohttp", "httpx2_aiohttp_floor.py"),
    floor_target("aiohttp", "aiohttp_floor.py"),
)


@dataclass(frozen=True)
class GatewayVariant:
    """A named compatgate configuration; add entries to GATEWAY_VARIANTS for more columns."""

    name: str
    render_config: Callable[[str], str]  # upstream base URL -> compatgate TOML


def openai_passthrough_toml(upstream: str) -> str:
    return f"""[gateway]
api_keys = ["sk-bench"]

[providers.local]
type = "openai"
base_url = "{upstream}"
api_key = "sk-upstream"

[[models]]
name = "gpt-4o"
provider = "local"

[[models]]
name = "text-embedding-3-small"
provider = "local"
"""


GATEWAY_VARIANTS = (GatewayVariant("compatgate", openai_passthrough_toml),)


def gateway_target(variant: GatewayVariant) -> Target:
    def launch(port: int, upstream: str, scratch: Path) -> list[str]:
        config = scratch / f"{variant.name}-{port}.toml"
        config.write_text(variant.render_config(upstream))
        serve = ["compatgate", "serve", "--config", str(config), "--log-level", "warning"]
        return ["uv", "run", *serve, "--host", "127.0.0.1", "--port", str(port)]

    return Target(variant.name, "gateway", launch, ready_timeout_s=180.0)


def litellm_yaml(upstream: str) -> str:
    entries = "".join(
        f"""  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}
      api_key: sk-upstream
"""
        for model in ("gpt-4o", "text-embedding-3-small")
    )
    return f"model_list:\n{entries}general_settings:\n  master_key: sk-bench\n"


def litellm_target(binary: str) -> Target:
    def launch(port: int, upstream: str, scratch: Path) -> list[str]:
        config = scratch / f"litellm-{port}.yaml"
        config.write_text(litellm_yaml(upstream))
        return [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                "--num_workers", "1"]  # fmt: skip

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


class StartError(BenchError):
    pass


@contextlib.contextmanager
def running(target: Target, upstream: str, scratch: Path, pin: list[str]) -> Iterator[Session]:
    """Start `target` against `upstream` (pinned with `pin`), wait until it answers, stop it."""
    if target.launch is None:
        port = int(upstream.rsplit(":", 1)[1].split("/")[0])
        yield Session(upstream, port, None)
        return
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(target.env)
    argv = [*pin, *target.launch(port, upstream, scratch)]
    process = Process.start(argv, scratch / f"{target.name}-{port}.log", REPO_ROOT, env)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        try:
            wait_ready(base + CHAT.path, CHAT.body, target.ready_timeout_s, process)
        except BenchError as error:
            raise StartError(str(error)) from error
        yield Session(base, port, process)
    finally:
        process.stop()


NOISE_CORE = 1  # the targets' core: user CPU there not spent by the target is foreign load
NOISE_LIMIT_PCT = 5.0


def measure_fast(session: Session, settings: Settings, scratch: Path, result: TargetResult) -> None:
    """Warm-up, RSS, latency at 1 connection, throughput at 64, RSS again."""
    usable = []
    for scenario in SCENARIOS:
        try:
            validate(session.base_url + scenario.path, scenario.body, scenario.name)
            usable.append(scenario)
        except (BenchError, ValueError) as error:
            result.notes.append(f"{scenario.name} not measured: {error}")
    pid = None
    if session.process is not None:
        pid = server_pid(session.process.popen.pid, session.port)
        result.raw["server_pid"] = pid

    def wrk(scenario: Scenario, connections: int, seconds: int) -> tuple[float, float, float]:
        body_file = scratch / f"{scenario.name}.json"
        body_file.write_bytes(scenario.body)
        outcome = run_wrk(session.base_url + scenario.path, body_file, connections, seconds)
        result.requests_total += outcome.requests
        result.raw[f"wrk_{scenario.name}_c{connections}"] = asdict(outcome)
        if outcome.errors:
            result.notes.append(f"{scenario.name} c={connections}: {outcome.errors} wrk errors")
        return outcome.p50_ms, outcome.p99_ms, outcome.rps

    for scenario in usable:
        wrk(scenario, 8, settings.warmup_s)
    if pid is not None:
        result.metrics["rss_warm_mib"] = rss_mib(pid)
    started, core_before = time.monotonic(), core_user_s(NOISE_CORE)
    requests_before = result.requests_total
    cpu_before = process_cpu_s(pid) if pid is not None else (0.0, 0.0)
    for scenario in usable:
        p50, p99, _ = wrk(scenario, 1, settings.latency_s)
        result.metrics[f"{scenario.prefix}_p50_ms"] = p50
        result.metrics[f"{scenario.prefix}_p99_ms"] = p99
    for scenario in usable:
        _, _, rps = wrk(scenario, settings.throughput_connections, settings.throughput_s)
        result.metrics[f"{scenario.prefix}_rps"] = rps
    cpu_after = process_cpu_s(pid) if pid is not None else (0.0, 0.0)
    foreign = core_user_s(NOISE_CORE) - core_before - (cpu_after[0] - cpu_before[0])
    foreign_pct = 100 * max(0.0, foreign) / (time.monotonic() - started)
    if pid is not None:  # direct loads core 0 only: other processes then move to core 1
        result.raw["core1_foreign_user_cpu_pct"] = round(foreign_pct, 1)
        if foreign_pct > NOISE_LIMIT_PCT:
            result.notes.append(f"noisy machine: other processes used {foreign_pct:.0f}% of core 1")
        measured = result.requests_total - requests_before
        cpu_s = sum(cpu_after) - sum(cpu_before)
        result.metrics["cpu_us_per_req"] = 1e6 * cpu_s / max(1, measured)
        result.metrics["rss_after_mib"] = rss_mib(pid)


def measure_slow(session: Session, settings: Settings, result: TargetResult) -> None:
    url = session.base_url + SSE.path
    stream_probe(url, SSE.body, 2, SLOW_CONTENT_CHUNKS)  # warm-up
    timing = stream_probe(url, SSE.body, settings.streams, SLOW_CONTENT_CHUNKS)
    result.metrics["ttft_ms"] = timing.ttft_p50_ms
    result.metrics["gap_ms"] = timing.gap_mean_ms
    result.raw["slow_stream"] = asdict(timing)


def measure(
    target: Target, fast: str, slow: str, settings: Settings, scratch: Path, pin: list[str]
) -> TargetResult:
    result = TargetResult(target.name, target.kind)
    started = time.monotonic()
    try:
        with running(target, fast, scratch, pin) as session:
            measure_fast(session, settings, scratch, result)
        with running(target, slow, scratch, pin) as session:
            measure_slow(session, settings, result)
    except StartError as error:
        result.status, result.detail = "failed to start", str(error)[:500]
    except (BenchError, OSError, ValueError, subprocess.SubprocessError) as error:
        result.status, result.detail = "error", f"{type(error).__name__}: {error}"[:500]
    result.raw["seconds"] = round(time.monotonic() - started, 1)
    return result


def versions() -> dict[str, str]:
    found = {}
    for package in ("compatgate", "starlette", "uvicorn", "uvloop", "httptools", "httpx",
                    "httpx2", "aiohttp", "litellm"):  # fmt: skip
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).splitlines()[0] if wrk.stdout or wrk.stderr else ""
    return found


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def select_targets(args: argparse.Namespace) -> tuple[list[Target], list[TargetResult]]:
    direct = Target("direct", "direct", None)
    targets = [direct, *FLOORS, *(gateway_target(v) for v in GATEWAY_VARIANTS)]
    skipped: list[TargetResult] = []
    wanted = {n.strip() for item in args.only or [] for n in item.split(",") if n.strip()}
    if args.litellm or "litellm" in wanted:
        binary = find_litellm(args.litellm_bin)
        if binary is None:
            print("litellm: not installed, skipped (see benchmarks/README.md)", file=sys.stderr)
            skipped.append(TargetResult("litellm", "litellm", "skipped", "litellm not installed"))
        else:
            targets.append(litellm_target(binary))
    if wanted:
        known = {t.name for t in targets} | {"litellm"}
        if unknown := wanted - known:
            sys.exit(f"unknown target(s) {sorted(unknown)}; known: {sorted(known)}")
        targets = [t for t in targets if t.name in wanted or t.kind == "direct"]
    return targets, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (whole run < 3 min)")
    parser.add_argument("--only", action="append", help="comma-separated target names "
                        "(direct is always measured as the baseline)")  # fmt: skip
    parser.add_argument("--litellm", action="store_true", help="also measure a LiteLLM proxy")
    parser.add_argument("--litellm-bin", help="path to the litellm executable")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--replot", action="store_true", help="re-render --output, measure nothing")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(args.output.read_text())["targets"]
        print(render_table([TargetResult(**target) for target in saved]))
        write_png(args.output.with_suffix(".png"), [TargetResult(**t) for t in saved])
        return 0

    if shutil.which("wrk") is None:
        print("wrk is not installed: install it with `apt-get install -y wrk`", file=sys.stderr)
        return 2
    settings = QUICK if args.quick else FULL
    targets, skipped = select_targets(args)
    results: list[TargetResult] = []
    pin: list[str] = []
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        os.sched_setaffinity(0, {0})  # this process, wrk and the upstream: core 0
        pin = ["taskset", "-c", "1"]  # each target: core 1
    else:
        print("warning: fewer than 2 cores or no taskset; running unpinned", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="compatgate-bench-") as tmp:
        scratch = Path(tmp)
        fast_port, slow_port = free_port(), free_port()
        upstream = Process.start(
            [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(fast_port),
             "--slow-port", str(slow_port)],
            scratch / "upstream.log", REPO_ROOT, dict(os.environ),
        )  # fmt: skip
        try:
            fast = f"http://127.0.0.1:{fast_port}/v1"
            slow = f"http://127.0.0.1:{slow_port}/v1"
            wait_ready(fast + CHAT.path, CHAT.body, 15, upstream)
            for target in targets:
                print(f"[{time.strftime('%H:%M:%S')}] {target.name} ...", file=sys.stderr)
                result = measure(target, fast, slow, settings, scratch, pin)
                print(f"    {result.status} in {result.raw['seconds']}s {result.detail}",
                      file=sys.stderr)  # fmt: skip
                results.append(result)
        finally:
            upstream.stop()

    results.extend(skipped)
    compute_ratios(results)
    meta: dict[str, object] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "settings": asdict(settings),
        "pinning": "run.py, wrk, upstream: core 0; target: core 1" if pin else "none",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions(),
        "units": "latency/TTFT/gap: ms (added = target - direct); throughput: req/s; RSS: MiB",
    }
    write_json(args.output, meta, results)
    print(render_table(results))
    print(f"\nwrote {args.output}", end="")
    if write_png(args.output.with_suffix(".png"), results):
        print(f" and {args.output.with_suffix('.png')}", end="")
    print()
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
