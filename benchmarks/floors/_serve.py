"""Shared command line and uvicorn launcher for the floor relays (one worker, no access log)."""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable, Iterable

import uvicorn
from starlette.applications import Starlette

INBOUND_KEY = "Bearer sk-bench"
UPSTREAM_KEY = "sk-upstream"
# Response headers that describe the upstream framing; the relay's server sets its own.
HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
# Generous, so that 64 benchmark connections never queue for a pooled connection; run.py raises
# it with $BENCH_POOL_SIZE for the phase that holds 1,000 streams open at once.
POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "256"))


def relay_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in items if k.lower() not in HOP_HEADERS}


def run(make_app: Callable[[str], Starlette], description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9100/v1")
    args = parser.parse_args()
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    has_httptools = importlib.util.find_spec("httptools") is not None
    uvicorn.run(
        make_app(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        loop="uvloop" if has_uvloop else "asyncio",
        http="httptools" if has_httptools else "h11",
        log_level="warning",
        access_log=False,
    )
