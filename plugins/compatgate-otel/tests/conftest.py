"""Fixtures: a fake upstream, gateways served on loopback, the in-memory span exporter."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import FakeUpstream, fake_upstream, serve_gateway

# --import-mode=importlib puts no test folder on sys.path: make otel_support importable
# (and nameable as ``tracer_provider = "otel_support:tracer_provider"``).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from otel_support import EXPORTER, Served, gateway_config


@pytest.fixture(autouse=True)
def exporter() -> Iterator[None]:
    EXPORTER.clear()
    yield
    EXPORTER.clear()


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as served:
        yield served


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str]) -> Iterator[Callable[..., Served]]:
    """``make(otel={...})``: a served gateway with that ``[plugins.otel]`` table (None: no
    table); by default the entry-point plugin, tracing to the in-memory exporter."""
    with ExitStack() as stack:

        def make(otel: dict[str, Any] | None = None, *, config: dict[str, Any] | None = None,
                 plugins: tuple[object, ...] = ()) -> Served:
            config = config or gateway_config(upstream[1], otel)
            return stack.enter_context(serve_gateway(config, plugins, usage_log=False, served=Served))

        yield make
