"""CPU per request of two checkouts of compatgate, measured interleaved: before and after a change.

    uv run --group bench python benchmarks/compare.py --before ../old-checkout [--rounds 5] [--seconds 4]

run.py measures its rows one after another, minutes apart, and one checkout at a time; on a
shared machine the load of other processes changes in between and moves CPU per request by
tens of percent, more than a change usually costs. This script starts the `compatgate` and
`compatgate+billing+redis` rows of run.py for both checkouts at once (each gateway from its own
checkout, all on core 1) and alternates short wrk runs between the four gateways, scenario by
scenario, round after round, so that each sees the same load. It reports the median over the
rounds of each gateway's CPU time (user + system) per request, the after/before ratio, and
billing's added share in each checkout. The upstream and wrk run on core 0. Needs wrk and, for
the billing rows, Redis.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _configs import billing_key, billing_redis_toml, openai_passthrough_toml
from _measure import Process, process_cpu_s, run_wrk, server_pid, wait_ready
from _targets import BENCH_DIR, CHAT, CONV, EMBEDDINGS, RATE_LIMIT_PREFIX, REPO_ROOT, SSE, free_port

ROWS = ("compatgate", "compatgate+billing+redis")
SCENARIOS = (CHAT, SSE, CONV, EMBEDDINGS)  # what both checkouts serve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (its own uv project)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: install it with `apt-get install -y wrk`", file=sys.stderr)
        return 2
    trees = {"before": args.before.resolve(), "after": REPO_ROOT}
    pin: list[str] = []
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        os.sched_setaffinity(0, {0})
        pin = ["taskset", "-c", "1"]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    with tempfile.TemporaryDirectory(prefix="compatgate-compare-") as tmp:
        scratch = Path(tmp)
        port = free_port()
        upstream = f"http://127.0.0.1:{port}/v1"
        processes = [Process.start([sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(port)],
                                   scratch / "upstream.log", REPO_ROOT, dict(os.environ))]  # fmt: skip
        try:
            served: dict[tuple[str, str], tuple[str, int, str]] = {}
            for tree, root in trees.items():
                for row in ROWS:
                    config = scratch / f"{tree}-{row}.toml"
                    database = scratch / f"{tree}-billing.db"
                    if row == "compatgate":
                        config.write_text(openai_passthrough_toml(upstream))
                        key = "sk-bench"
                    else:
                        config.write_text(billing_redis_toml(upstream, None, database, f"{RATE_LIMIT_PREFIX}:{tree}"))
                        key = billing_key(config, database, root)
                    gw_port = free_port()
                    argv = [*pin, "uv", "run", "compatgate", "serve", "--config", str(config),
                            "--log-level", "warning", "--host", "127.0.0.1", "--port", str(gw_port)]  # fmt: skip
                    process = Process.start(argv, scratch / f"{tree}-{row}.log", root, env)
                    processes.append(process)
                    base = f"http://127.0.0.1:{gw_port}/v1"
                    wait_ready(base + CHAT.request.path, CHAT.request.body, 180, process, api_key=key)
                    served[(tree, row)] = (base, server_pid(process.popen.pid, gw_port), key)
            per_request: dict[tuple[str, str, str], list[float]] = {}
            for round_ in range(args.rounds + 1):  # round 0 warms every gateway and path up
                for scenario in SCENARIOS:
                    body = scratch / f"{scenario.prefix}.json"
                    body.write_bytes(scenario.request.body)
                    for (tree, row), (base, pid, key) in served.items():
                        before = sum(process_cpu_s(pid))
                        outcome = run_wrk(base + scenario.request.path, body, args.connections, args.seconds,
                                          api_key=key)  # fmt: skip
                        used = sum(process_cpu_s(pid)) - before
                        if round_ and outcome.requests:
                            per_request.setdefault((tree, row, scenario.prefix), []).append(1e6 * used / outcome.requests)
        finally:
            for process in reversed(processes):
                process.stop()
    print(f"CPU µs per request, median of {args.rounds} interleaved rounds of {args.seconds:g} s at "
          f"{args.connections} connections (before: {trees['before']}):\n")  # fmt: skip
    print("| scenario | row | before | after | after / before |")
    print("| --- | --- | --- | --- | --- |")
    median = {key: statistics.median(values) for key, values in per_request.items()}
    for scenario in SCENARIOS:
        for row in ROWS:
            before, after = median[("before", row, scenario.prefix)], median[("after", row, scenario.prefix)]
            print(f"| {scenario.prefix} | {row} | {before:.0f} | {after:.0f} | {after / before:.2f} |")
    print("\nbilling + Redis rate limiting over plain, per checkout:\n")
    print("| scenario | before | after |")
    print("| --- | --- | --- |")
    for scenario in SCENARIOS:
        shares = [median[(tree, ROWS[1], scenario.prefix)] / median[(tree, ROWS[0], scenario.prefix)] - 1
                  for tree in trees]
        print(f"| {scenario.prefix} | {shares[0]:+.0%} | {shares[1]:+.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
