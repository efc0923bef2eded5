"""CPU per request of the cache's hits and misses against no cache, measured interleaved.

    uv run --group bench python benchmarks/cache_cpu.py [--rounds 5] [--seconds 4]

run.py measures its rows one after another, minutes apart; on a shared machine the load of
other processes changes in between and moves CPU per request by tens of percent, more than
the difference being measured. This script starts the three gateways at once (the
`compatgate`, `compatgate+cache` and `compatgate+cache-miss` configurations of run.py, all on
core 1) and alternates short wrk runs between them, scenario by scenario, round after round,
so that each sees the same load; it reports the median over the rounds of each gateway's
CPU time (user + system) per request, and the ratios. The miss gateway gets varied requests
(post.lua's $BENCH_VARY_BASE), the others the same request every time (for the hit gateway,
each one a hit). Needs wrk; the upstream and wrk run on core 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _configs import cache_toml, openai_passthrough_toml
from _measure import Process, process_cpu_s, run_wrk, server_pid, wait_ready
from _targets import BENCH_DIR, CHAT, REPO_ROOT, SCENARIOS, free_port

GATEWAYS = {  # name -> (configuration renderer, varied requests)
    "compatgate": (lambda upstream: openai_passthrough_toml(upstream), False),
    "compatgate+cache": (lambda upstream: cache_toml(upstream, None), False),
    "compatgate+cache-miss": (lambda upstream: cache_toml(upstream, None), True),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: install it with `apt-get install -y wrk`", file=sys.stderr)
        return 2
    pin: list[str] = []
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        os.sched_setaffinity(0, {0})
        pin = ["taskset", "-c", "1"]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    with tempfile.TemporaryDirectory(prefix="compatgate-cache-cpu-") as tmp:
        scratch = Path(tmp)
        port = free_port()
        upstream = f"http://127.0.0.1:{port}/v1"
        processes = [Process.start([sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(port)],
                                   scratch / "upstream.log", REPO_ROOT, dict(os.environ))]  # fmt: skip
        try:
            served: dict[str, tuple[str, int, bool]] = {}
            for name, (render, vary) in GATEWAYS.items():
                config = scratch / f"{name}.toml"
                config.write_text(render(upstream))
                gw_port = free_port()
                argv = [*pin, "uv", "run", "compatgate", "serve", "--config", str(config),
                        "--log-level", "warning", "--host", "127.0.0.1", "--port", str(gw_port)]  # fmt: skip
                process = Process.start(argv, scratch / f"{name}.log", REPO_ROOT, env)
                processes.append(process)
                base = f"http://127.0.0.1:{gw_port}/v1"
                wait_ready(base + CHAT.request.path, CHAT.request.body, 180, process)
                served[name] = (base, server_pid(process.popen.pid, gw_port), vary)
            per_request: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.rounds + 1):  # round 0 warms every gateway and path up
                for scenario in SCENARIOS:
                    body = scratch / f"{scenario.prefix}.json"
                    body.write_bytes(scenario.request.body)
                    for name, (base, pid, vary) in served.items():
                        before = sum(process_cpu_s(pid))
                        outcome = run_wrk(base + scenario.request.path, body, args.connections,
                                          args.seconds, vary=vary)  # fmt: skip
                        used = sum(process_cpu_s(pid)) - before
                        if round_ and outcome.requests:
                            per_request.setdefault((name, scenario.prefix), []).append(1e6 * used / outcome.requests)
        finally:
            for process in reversed(processes):
                process.stop()
    print(f"CPU µs per request, median of {args.rounds} interleaved rounds of {args.seconds:g} s at "
          f"{args.connections} connections:\n")  # fmt: skip
    print("| scenario | compatgate | cache hit | cache miss | hit / plain | miss / plain |")
    print("| --- | --- | --- | --- | --- | --- |")
    for scenario in SCENARIOS:
        plain, hit, miss = (statistics.median(per_request[(name, scenario.prefix)]) for name in GATEWAYS)
        print(f"| {scenario.prefix} | {plain:.0f} | {hit:.0f} | {miss:.0f} | {hit / plain:.2f} | {miss / plain:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
