"""One command: what the gateway adds over calling a fast local upstream directly.

    uv run --group bench python benchmarks/run.py [--quick] [--only NAME,...] [--litellm]

Starts benchmarks/upstream.py (fast, slow and hold ports), then measures each target in turn
(direct upstream, the floor relays in benchmarks/floors/, the gateway configurations in
_targets.GATEWAY_VARIANTS, optionally LiteLLM), see _phases.py: wrk at 1 and 64 connections
for JSON chat, SSE pass-through, SSE converted from Anthropic and embeddings, a memory soak,
an SSE timing probe against the slow streaming port, and the memory of 1,000 open streams
against the hold port. This process, wrk and the upstream run on CPU core 0; every target
runs alone on core 1 (`taskset -c 1`). Prints two Markdown tables with ratios vs direct and
the issue's targets, and writes benchmarks/results/latest.json (and latest.png when
matplotlib is installed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from _goals import render_goals
from _measure import Process, wait_ready
from _phases import Upstreams, measure
from _report import TargetResult, compute_ratios, render_table, write_json, write_png
from _targets import (
    BENCH_DIR,
    CHAT,
    FLOORS,
    FULL,
    GATEWAY_VARIANTS,
    QUICK,
    REPO_ROOT,
    Target,
    find_litellm,
    free_port,
    gateway_target,
    litellm_target,
)

RESULTS_DIR = BENCH_DIR / "results"


def versions() -> dict[str, str]:
    found = {}
    for package in ("compatgate", "compatgate-anthropic", "compatgate-billing",
                    "compatgate-ratelimit", "redis", "starlette", "uvicorn", "uvloop", "httptools",
                    "httpx", "httpx2", "aiohttp", "litellm"):  # fmt: skip
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


def report(results: list[TargetResult]) -> str:
    goals = render_goals(results)
    return render_table(results) + (f"\n\n{goals}" if goals else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (whole run ~ 4 min)")
    parser.add_argument("--only", action="append", help="comma-separated target names "
                        "(direct is always measured as the baseline)")  # fmt: skip
    parser.add_argument("--litellm", action="store_true", help="also measure a LiteLLM proxy")
    parser.add_argument("--litellm-bin", help="path to the litellm executable")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--replot", action="store_true", help="re-render --output, measure nothing")
    args = parser.parse_args()
    if args.replot:
        saved = [TargetResult(**t) for t in json.loads(args.output.read_text())["targets"]]
        print(report(saved))
        write_png(args.output.with_suffix(".png"), saved)
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
        fast_port, slow_port, hold_port = free_port(), free_port(), free_port()
        upstream = Process.start(
            [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(fast_port),
             "--slow-port", str(slow_port), "--hold-port", str(hold_port)],
            scratch / "upstream.log", REPO_ROOT, dict(os.environ),
        )  # fmt: skip
        try:
            upstreams = Upstreams(*(f"http://127.0.0.1:{port}/v1"
                                    for port in (fast_port, slow_port, hold_port)))  # fmt: skip
            wait_ready(upstreams.fast + CHAT.request.path, CHAT.request.body, 15, upstream)
            for target in targets:
                print(f"[{time.strftime('%H:%M:%S')}] {target.name} ...", file=sys.stderr)
                result = measure(target, upstreams, settings, scratch, pin)
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
        "units": "latency/TTFT/gap: ms (added = target - direct); throughput: req/s; RSS: MiB; "
        "per open stream: KiB",
    }
    write_json(args.output, meta, results)
    print(report(results))
    print(f"\nwrote {args.output}", end="")
    if write_png(args.output.with_suffix(".png"), results):
        print(f" and {args.output.with_suffix('.png')}", end="")
    print()
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
