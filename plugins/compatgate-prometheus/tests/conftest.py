"""Fixtures: a fake upstream and gateways served over real HTTP on loopback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import FakeUpstream, fake_upstream, serve_gateway

# --import-mode=importlib puts no test folder on sys.path: make prometheus_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prometheus_support import Served, gateway_config


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as served:
        yield served


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str]) -> Iterator[Callable[..., Served]]:
    """``make(prometheus={...})``: a served gateway with that ``[plugins.prometheus]`` table
    (None: no table), the plugin coming from its entry point."""
    with ExitStack() as stack:

        def make(prometheus: dict[str, Any] | None = None, *, config: dict[str, Any] | None = None,
                 plugins: tuple[object, ...] = ()) -> Served:
            config = config or gateway_config(upstream[1], prometheus)
            return stack.enter_context(serve_gateway(config, plugins, usage_log=False, served=Served))

        yield make
