"""Fuzz every HTTP operation of a gateway with billing (SQLite) and rate limits (memory):
``uv run python benchmarks/fuzz.py [--examples 10000] [--seed N]``.

The generated requests and the nonsense upstream are those of ``tests/fuzzing.py`` (issue 14);
every request is sent, none stops the run: at the end the script prints how many were sent, the
statuses, the requests per operation, and every problem (a 500, an error body not in the
dialect's shape, the upstream key in an answer) with the request that caused it. Exit status 1
when there was any problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing import Generated, requests, target
from hypothesis import HealthCheck, given, seed, settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    logging.getLogger("compatgate").setLevel(logging.CRITICAL)  # expected failures log a lot
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    logging.getLogger("python_multipart").setLevel(logging.CRITICAL)
    operations: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp, target(Path(tmp)) as served:

        @seed(args.seed)
        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(generated=requests(served.operations))
        def run(generated: Generated) -> None:
            operations[generated.operation] += 1
            served.check(generated)

        started = time.monotonic()
        run()
        elapsed = time.monotonic() - started
    sent = sum(served.statuses.values())
    print(f"requests sent: {sent} in {elapsed:.0f} s; status 500: {served.statuses[500]}; "
          f"problems: {len(served.problems)}")
    print("statuses:", dict(sorted(served.statuses.items())))
    print("operations:", dict(sorted(operations.items())))
    for problem, generated, answer in served.problems[:20]:
        print(f"\n{problem}\n  request: {generated!r}\n  answer: {answer}")
    return 1 if served.problems else 0


if __name__ == "__main__":
    sys.exit(main())
