"""Fixtures beside those of `compatgate.testing.fixtures` (upstream, gateways...): gateways
served with a ``[plugins.otel]`` table, the in-memory span exporter."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import FakeUpstream

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
def make_gateway(upstream: tuple[FakeUpstream, str], gateways: Callable[..., Served]) -> Callable[..., Served]:
    """``make(otel={...})``: a served gateway with that ``[plugins.otel]`` table (None: no
    table); by default the entry-point plugin, tracing to the in-memory exporter."""

    def make(otel: dict[str, Any] | None = None, *, config: dict[str, Any] | None = None,
             plugins: tuple[object, ...] = ()) -> Served:
        return gateways(config or gateway_config(upstream[1], otel), plugins, usage_log=False, served=Served)

    return make
