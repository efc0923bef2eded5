"""Fixtures beside those of `compatgate.testing.fixtures` (openai_schema, redis_url,
key_prefix, gateways...): three fake upstreams, and gateways served on loopback with a
``[plugins.router]`` table."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import FakeUpstream, fake_upstream
from compatgate_router import Router

# --import-mode=importlib puts no test folder on sys.path: make router_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from router_support import Served, gateway_config


@pytest.fixture
def upstreams() -> Iterator[dict[str, tuple[FakeUpstream, str]]]:
    """Three fake upstreams, ``primary``, ``backup`` and ``third``: (fake, base URL)."""
    with ExitStack() as stack:
        yield {name: stack.enter_context(fake_upstream()) for name in ("primary", "backup", "third")}


@pytest.fixture
def make_gateway(upstreams: dict[str, tuple[FakeUpstream, str]],
                 gateways: Callable[..., Served]) -> Callable[..., Served]:
    """``make(router_table, urls=None, **provider_settings)``: a served gateway whose providers
    are the fake upstreams (or ``urls``), with the router and a usage log as its only plugins
    (entry points off: other plugins installed in the environment stay out of these tests)."""

    def make(router: dict[str, Any] | None, urls: dict[str, str] | None = None, **provider: Any) -> Served:
        urls = urls or {name: url for name, (_, url) in upstreams.items()}
        return gateways(gateway_config(urls, router, **provider), (Router,), served=Served)

    return make
